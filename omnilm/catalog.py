"""What the chat app may load: text models under models/, adapters under adapters/,
and whether an adapter fits a base model (read from safetensors headers, no weights).

A name picked in the app is a plain folder name: it cannot point outside
models/ or adapters/, and a folder or weight file that is a link to somewhere
else is refused, so only safetensors from inside those two folders are loaded."""
import json
import re
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from omnilm.errors import UserError
from omnilm.extract import is_omni
from omnilm.manifest import read_manifest
from omnilm.paths import adapters_dir, display, models_dir, results_dir, stored
from omnilm.safetensors_io import read_header

WEIGHTS = "model*.safetensors"  # the files mlx-lm's load reads
ADAPTER_CONFIG, ADAPTER_WEIGHTS = "adapter_config.json", "adapters.safetensors"
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "tokenizer.model")
LAYER_KEY = re.compile(r"^(?:model\.)?layers\.(\d+)\.")


@dataclass
class ModelEntry:
    name: str
    path: Path
    config: dict


@dataclass
class AdapterEntry:
    name: str
    path: Path
    config: dict = field(default_factory=dict)
    manifest: dict = field(default_factory=dict)
    problem: str = ""        # why it cannot be used with any base (broken folder)
    is_sft: bool = False
    modified: float = 0.0

    @property
    def trained_on(self):
        """Name of the base model its trainer recorded, "" when unknown."""
        from omnilm.manifest import base_model_of

        try:
            base = base_model_of(self.path)
        except UserError:
            return ""
        return base.name if base else ""

    @property
    def unfinished(self):
        """This project's trainer marks a finished run "complete"; until then the
        weights are only the best so far."""
        return bool(self.manifest) and "stage" in self.manifest and not self.manifest.get("complete")


@dataclass
class Compatibility:
    ok: bool
    reason: str = ""                            # why not, one sentence
    notes: list = field(default_factory=list)   # what it was trained on, mismatched names


def child_dir(parent, name, what="folder"):
    """parent/name for a picked name, refusing anything that would leave `parent`."""
    parent = Path(parent).resolve()
    if not name or name.startswith(".") or "/" in name or "\\" in name:
        raise UserError(f"{what} name {name!r} must be a plain folder name inside {display(parent)}")
    path = (parent / name).resolve()
    if path.parent != parent:
        raise UserError(f"{what} {name!r} points outside {display(parent)}; only folders inside it are loaded")
    return path


def _inside(path, parent):
    return Path(path).resolve().is_relative_to(Path(parent).resolve())


def _read_json(path):
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    return data if isinstance(data, dict) else None


def model_problem(folder):
    """Why mlx-lm cannot load `folder` as a text model, or "" when it can."""
    config = _read_json(folder / "config.json")
    if config is None:
        return "no readable config.json"
    if is_omni(config):
        return "omni/VLM checkpoint (extract its text model with 00_extract first)"
    weights = sorted(folder.glob(WEIGHTS))
    if not weights:
        return "no safetensors weights"
    if not all(_inside(w, models_dir()) for w in weights):
        return "weights link outside models/"
    if not any((folder / f).exists() for f in TOKENIZER_FILES):
        return "no tokenizer files"
    try:
        from omnilm.mlx_lm_api import model_classes

        model_classes(config)
    except (KeyError, ValueError, ImportError):
        return f"model type {config.get('model_type')!r} is not supported by mlx-lm"
    return ""


def list_models():
    """([ModelEntry] loadable as text models, [(name, reason)] skipped), by name."""
    root = models_dir()
    entries, skipped = [], []
    for folder in sorted(root.iterdir()) if root.is_dir() else []:
        if folder.name.startswith(".") or not folder.is_dir():
            continue  # staging temps and stray files are not models
        if not _inside(folder, root):
            skipped.append((folder.name, "links outside models/"))
            continue
        problem = model_problem(folder)
        if problem:
            skipped.append((folder.name, problem))
        else:
            entries.append(ModelEntry(folder.name, folder.resolve(), _read_json(folder / "config.json")))
    return entries, skipped


def skipped_note(skipped):
    """One line for the picker: how many folders were left out and why."""
    if not skipped:
        return ""
    reasons = "; ".join(f"{name}: {why}" for name, why in skipped)
    return f"{len(skipped)} folder{'s' if len(skipped) > 1 else ''} under models/ skipped ({reasons})"


def read_adapter(folder, only_under_adapters=True):
    """The AdapterEntry of `folder`; the app's picker loads weights from adapters/ only,
    a folder given on the command line may be anywhere."""
    folder = Path(folder)
    entry = AdapterEntry(folder.name, folder.resolve())
    weights = folder / ADAPTER_WEIGHTS
    config = _read_json(folder / ADAPTER_CONFIG)
    try:
        entry.manifest = read_manifest(folder)
    except UserError:
        entry.manifest = {}
    if config is None:
        entry.problem = f"no readable {ADAPTER_CONFIG}"
    elif not weights.is_file():
        entry.problem = f"no {ADAPTER_WEIGHTS} (training not finished?)"
    elif only_under_adapters and not _inside(weights, adapters_dir()):
        entry.problem = f"{ADAPTER_WEIGHTS} links outside adapters/"
    entry.config = config or {}
    entry.modified = weights.stat().st_mtime if weights.is_file() else 0.0
    stage = str(entry.manifest.get("stage", ""))
    entry.is_sft = "sft" in stage.lower() or folder.name.lower().endswith("sft")
    return entry


def list_adapters():
    """[AdapterEntry] for every folder under adapters/ holding an adapter config or weights."""
    root = adapters_dir()
    found = []
    for folder in sorted(root.iterdir()) if root.is_dir() else []:
        if folder.name.startswith(".") or not folder.is_dir() or not _inside(folder, root):
            continue
        if (folder / ADAPTER_CONFIG).exists() or (folder / ADAPTER_WEIGHTS).exists():
            found.append(read_adapter(folder))
    return found


def recommended_stage(results=None):
    """The last evaluation's pick (results/eval.json): {"stage", "model", "adapter"}, or None."""
    path = Path(results or results_dir()) / "eval.json"
    try:
        rec = json.loads(path.read_text())["metrics"]["recommended"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return rec if isinstance(rec, dict) and rec.get("stage") else None


def default_adapter(adapters, model, results=None):
    """The adapter the last evaluation recommends when it fits `model` (a ModelEntry),
    None when it recommends no adapter (the base was best); with no such evaluation,
    the newest SFT adapter that fits, else None."""
    fitting = [a for a in adapters if not a.unfinished and check_adapter(a, model).ok]
    rec = recommended_stage(results)
    if rec is not None and not rec.get("adapter"):
        if rec.get("model") and stored(rec["model"]).resolve() == Path(model.path).resolve():
            return None
    elif rec is not None:
        picked = [a for a in fitting if stored(rec["adapter"]).resolve() == (adapters_dir() / a.name).resolve()]
        if picked:
            return picked[0].name
    sft = [a for a in fitting if a.is_sft]
    return max(sft, key=lambda a: a.modified).name if sft else None


def _stat_key(path):
    return tuple((str(p), p.stat().st_mtime_ns, p.stat().st_size) for p in sorted(Path(path).glob(WEIGHTS)))


@lru_cache(maxsize=16)
def _base_shapes(folder, _stamp):
    shapes = {}
    for shard in sorted(Path(folder).glob(WEIGHTS)):
        header, _, _ = read_header(shard)
        shapes.update({k: tuple(v["shape"]) for k, v in header.items()})
    return shapes


def base_shapes(folder):
    """{tensor name: shape} of a model's weights, from the headers only (cached per file state)."""
    return _base_shapes(str(folder), _stat_key(folder))


@lru_cache(maxsize=32)
def _adapter_shapes(path, _mtime):
    header, _, _ = read_header(path)
    return {k: tuple(v["shape"]) for k, v in header.items()}


def _linear_dims(shapes, config, module):
    """(in, out) of a base linear/embedding, undoing the packing of a quantized weight."""
    weight = shapes[f"{module}.weight"]
    if f"{module}.scales" not in shapes:
        return weight[-1], weight[0]
    quant = config.get("quantization") or config.get("quantization_config") or {}
    own = quant.get(module)  # mlx-lm's per-layer override (mixed-bit quantization)
    bits = (own.get("bits") if isinstance(own, dict) else None) or quant.get("bits", 4)
    return weight[-1] * 32 // bits, weight[0]


def _expected_shape(leaf, module, dims, rank):
    """Shape mlx-lm gives an adapter tensor on this module (None: not a 2-D module we know)."""
    n_in, n_out = dims
    if module.endswith("embed_tokens"):  # LoRAEmbedding: a (vocab, r), b (r, dims)
        n_in, n_out = n_out, n_in
    return {"lora_a": (n_in, rank), "lora_b": (rank, n_out), "m": (n_out,)}.get(leaf)


def check_adapter(adapter, model):
    """Does `adapter` (AdapterEntry) fit `model` (ModelEntry)? Compares its tensor names
    and shapes, its layer span and rank with the base's config and weight headers."""
    if adapter.problem:
        return Compatibility(False, adapter.problem)
    notes = []
    if adapter.trained_on:
        notes.append(f"trained on {adapter.trained_on}")
        if adapter.trained_on != model.name:
            notes.append(f"picked base is {model.name}: fine when it is the same model in another precision")
    if adapter.unfinished:
        notes.append("training not finished: these are the best weights so far")
    data = (adapter.manifest.get("args") or {}).get("data")
    if data:
        notes.append(f"data: {Path(str(data)).name}")
    try:
        return _check_tensors(adapter, model, notes)
    except UserError as e:  # a corrupt header is an incompatible adapter, never a crash
        return Compatibility(False, str(e), notes)


def require_fitting_adapter(adapter, model, what="adapter"):
    """The app's check (check_adapter) for folders given on the command line, before any
    model loads: a truncated or mismatched adapter is one line, never mlx-lm's traceback."""
    adapter, model = Path(adapter), Path(model)
    config = _read_json(model / "config.json")
    if config is None:
        raise UserError(f"model {display(model)} has no readable config.json")
    check = check_adapter(read_adapter(adapter, only_under_adapters=False), ModelEntry(model.name, model, config))
    if not check.ok:
        raise UserError(f"{what} {display(adapter)} does not fit {display(model)}: {check.reason}")
    return adapter


def _check_tensors(adapter, model, notes):
    cfg, base_cfg = adapter.config, model.config
    layers = base_cfg.get("num_hidden_layers") or base_cfg.get("n_layers") or 0
    kind = cfg.get("fine_tune_type", "lora")
    weights = adapter.path / ADAPTER_WEIGHTS
    tensors = _adapter_shapes(str(weights), weights.stat().st_mtime_ns)
    shapes = base_shapes(model.path)
    if not tensors:
        return Compatibility(False, f"{ADAPTER_WEIGHTS} holds no tensors", notes)
    if kind == "full":
        for name, shape in tensors.items():
            if shapes.get(name) != shape:
                return Compatibility(False, f"{name} {shape} does not match the base ({shapes.get(name)})", notes)
        return Compatibility(True, "", notes)
    rank = (cfg.get("lora_parameters") or {}).get("rank")
    adapted = set()
    for name, shape in sorted(tensors.items()):
        module, _, leaf = name.rpartition(".")
        hit = LAYER_KEY.match(name)
        if hit:
            adapted.add(int(hit.group(1)))
        if hit and int(hit.group(1)) >= layers:
            return Compatibility(False, f"it adapts layer {hit.group(1)} but {model.name} has {layers} layers", notes)
        if f"{module}.weight" not in shapes:
            return Compatibility(False, f"it adapts {module}, which {model.name} does not have", notes)
        dims = _linear_dims(shapes, base_cfg, module)
        own_rank = shape[1] if leaf == "lora_a" else shape[0]
        if rank and leaf in ("lora_a", "lora_b") and own_rank != rank:
            return Compatibility(False, f"{name} has shape {shape}: rank {own_rank}, but its {ADAPTER_CONFIG} "
                                        f"says rank {rank}", notes)
        expected = _expected_shape(leaf, module, dims, rank or own_rank)
        if len(shapes[f"{module}.weight"]) == 2 and expected is not None and shape != expected:
            return Compatibility(False, f"{name} has shape {shape}, {model.name} needs {expected} "
                                        f"(hidden size {base_cfg.get('hidden_size')})", notes)
    span = cfg.get("num_layers", layers)
    first = 0 if span is None or span < 0 else max(layers - span, 0)
    if adapted and min(adapted) < first:  # mlx-lm converts only the last `span` layers of the base
        if len(adapted) > span:
            return Compatibility(False, f"its weights cover {len(adapted)} layers but its config converts only "
                                        f"the last {span}", notes)
        return Compatibility(False, f"it adapts layers {min(adapted)}-{max(adapted)} as the last {span}, so it was "
                                    f"made for a {max(adapted) + 1}-layer model; {model.name} has {layers}", notes)
    return Compatibility(True, "", notes)
