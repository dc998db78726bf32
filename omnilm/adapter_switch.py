"""Several LoRA adapters on one loaded base model, switched in place.

mlx-lm applies an adapter by replacing some of the base's linear layers with LoRA
layers that wrap them (each keeps a reference to its base layer and adds its own
small lora_a / lora_b arrays). So one base copy can serve every adapter: for each
adapter we let mlx-lm's own `load_adapters` build its LoRA layers once, keep them,
and put the plain base layers back. Switching is then only swapping which modules
sit at those paths: no weights are copied or loaded, the base stays one copy, and
an adapter costs only its own arrays (a few MB). "Base" puts the plain layers back,
so it runs exactly the base's graph, and each adapter runs exactly the graph a fresh
`mlx_lm.load(adapter_path=...)` builds. Adapters of different rank, scale or layer
span can share one base this way; a full fine-tune (whole weights) cannot and is
refused, as is an adapter whose tensors do not fit the base."""
from pathlib import Path

from omnilm.adapters import read_adapter_config
from omnilm.errors import UserError
from omnilm.paths import display

KEPT = 4  # adapters kept built at once: compare mode's two plus the single chat's, and one spare


def _stamp(adapter_dir):
    weights = Path(adapter_dir) / "adapters.safetensors"
    st = weights.stat()
    return st.st_mtime_ns, st.st_size


class AdapterSwitcher:
    """Wraps one loaded base model (from omnilm.chat.load_model, no adapter). `use(dir)`
    switches to an adapter (built on first use), `use(None)` back to the plain base."""

    def __init__(self, model):
        self.model = model
        self.plain = {}      # path -> the base module some adapter wraps there
        self.adapters = {}   # adapter key -> (file stamp, [(path, adapter module)])
        self.active = None   # key of the adapter switched on, None: the base

    @staticmethod
    def key(adapter_dir):
        return None if adapter_dir is None else str(Path(adapter_dir).resolve())

    def _config(self, adapter_dir):
        folder = Path(adapter_dir)
        if not (folder / "adapters.safetensors").is_file():
            raise UserError(f"{display(folder)} is not an adapter folder (no adapters.safetensors)")
        config = read_adapter_config(folder)  # missing, unreadable or not an object: one line
        if config.get("fine_tune_type", "lora") == "full":
            raise UserError(f"{display(folder)} is a full fine-tune (whole weights, not LoRA): it cannot share "
                            "the loaded base with other stages; chat with it alone")
        return config

    def add(self, adapter_dir):
        """Build the adapter's layers on the base (once per version of its weights file);
        the plain base is switched on afterwards."""
        key = self.key(adapter_dir)
        held = self.adapters.get(key)
        if held and held[0] == _stamp(adapter_dir):
            return
        self._config(adapter_dir)
        import mlx.core as mx

        from omnilm.mlx_lm_api import load_adapter_layers
        from omnilm.quantize import float32_scales_on_cpu

        self.use(None)
        before = dict(self.model.named_modules())
        try:
            load_adapter_layers(self.model, str(adapter_dir))
        except (ValueError, KeyError, TypeError) as e:
            now = dict(self.model.named_modules())
            self._put({p: m for p, m in before.items() if p in now and now[p] is not m})  # the base as it was
            lines = [line.strip() for line in str(e).strip().splitlines()] or [type(e).__name__]
            detail = lines[1] if len(lines) > 1 else lines[0]  # mlx-lm's first offending tensor
            raise UserError(f"{display(adapter_dir)} does not fit the loaded base model ({detail})") from None
        wrapped = [(p, m) for p, m in self.model.named_modules() if before.get(p) is not m and p in before]
        float32_scales_on_cpu(self.model)  # what load_model does to a freshly loaded adapter too
        self.model.eval()
        mx.eval([m.parameters() for _, m in wrapped])
        for path, _ in wrapped:
            self.plain.setdefault(path, before[path])
        self.adapters[key] = (_stamp(adapter_dir), wrapped)
        self._put({p: self.plain[p] for p, _ in wrapped})
        self.active = None

    def _put(self, modules):
        from mlx.utils import tree_unflatten

        if modules:
            self.model.update_modules(tree_unflatten(list(modules.items())))

    def use(self, adapter_dir):
        """Switch the model to `adapter_dir` (None: the plain base). Returns the model."""
        key = self.key(adapter_dir)
        if key is not None:
            self.add(adapter_dir)  # no-op when already built from these weights
            self.adapters[key] = self.adapters.pop(key)  # most recently used last
        if key == self.active and len(self.adapters) <= KEPT:
            return self.model
        modules = dict(self.plain)
        if key is not None:
            modules.update(self.adapters[key][1])
        self._put(modules)
        self.active = key
        for old in [k for k in self.adapters if k != key][:max(len(self.adapters) - KEPT, 0)]:
            del self.adapters[old]  # the least recently used: its arrays are freed
        return self.model

    def forget(self, adapter_dir):
        """Drop an adapter's layers (its arrays are freed); the base is switched on if it was active."""
        key = self.key(adapter_dir)
        if key == self.active:
            self.use(None)
        self.adapters.pop(key, None)

    def nbytes(self):
        """Bytes the adapters' own arrays take (the shared base layers not counted)."""
        from mlx.utils import tree_flatten

        total = 0
        for _, wrapped in self.adapters.values():
            for _, module in wrapped:
                own = {k: v for k, v in module.parameters().items() if k not in ("linear", "embedding")}
                total += sum(v.nbytes for _, v in tree_flatten(own))
        return total
