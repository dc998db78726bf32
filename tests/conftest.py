"""Shared fixtures: the real demo model (built once, cached) and tiny models built here."""
import fcntl
import json
import os
import shutil
from pathlib import Path

# run_tests.sh runs the tests in parallel workers (pytest-xdist): each worker, and the
# stage processes its tests start, gets its share of the cores for OpenBLAS, which
# reads this when omnilm loads it below. With a thread per core each, the workers'
# BLAS threads fight over the same cores.
_WORKERS = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
if _WORKERS > 1:
    os.environ.setdefault("OPENBLAS_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // _WORKERS)))

import omnilm  # noqa: E402,F401  (fast BLAS before mlx, as in every script)
import pytest  # noqa: E402

from omnilm.atomic import staged_dir
from omnilm.demo_omni import build_demo_omni
from omnilm.extract import extract

REPO = Path(__file__).resolve().parents[1]
CACHE = REPO / "tests" / ".cache"  # git-ignored; rebuilt when the demo builder changes


def _stamp():
    import hashlib

    h = hashlib.sha256()
    for f in ("demo_omni.py", "extract.py", "safetensors_io.py"):
        h.update((REPO / "omnilm" / f).read_bytes())
    return h.hexdigest()[:16]


def _cached(name, build):
    folder = CACHE / name
    stamp = folder / ".stamp"
    CACHE.mkdir(parents=True, exist_ok=True)
    with open(CACHE / f".{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # parallel workers: one builds, the others wait and reuse
        if not (stamp.exists() and stamp.read_text() == _stamp()):
            shutil.rmtree(folder, ignore_errors=True)  # the tests' own cache (a stage replaces only a manifest's folder)
            with staged_dir(folder) as tmp:
                build(tmp)
                (tmp / ".stamp").write_text(_stamp())
    return folder


def pytest_collection_modifyitems(items):
    """The tests marked slow go first, longest first, so the parallel workers never end
    with one of them left running alone (the rest keep their order)."""
    def seconds(item):
        mark = item.get_closest_marker("slow")
        return mark.kwargs.get("seconds", 10) if mark else 0

    items.sort(key=seconds, reverse=True)


@pytest.fixture(scope="session")
def demo_omni_model():
    """The embedded demo omni checkpoint (real SmolLM2-135M weights, float32)."""
    return _cached("demo-omni", build_demo_omni)


@pytest.fixture(scope="session")
def demo_text_model(demo_omni_model):
    """The demo's extracted float32 llama text model, as stage 00 writes it."""
    return _cached("demo-omni-Text", lambda tmp: extract(demo_omni_model, tmp, dtype="float32"))


@pytest.fixture(scope="session")
def tiny_model(demo_text_model, tmp_path_factory):
    """A 2-layer random llama (hidden 64) with the demo's tokenizer: fast to train."""
    import mlx.core as mx
    from mlx.utils import tree_flatten
    from mlx_lm.models import llama

    folder = tmp_path_factory.mktemp("tiny-llama")
    config = {"model_type": "llama", "architectures": ["LlamaForCausalLM"], "hidden_size": 64,
              "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 4,
              "num_key_value_heads": 2, "head_dim": 16, "vocab_size": 49152, "rms_norm_eps": 1e-5,
              "rope_theta": 10000.0, "tie_word_embeddings": False, "max_position_embeddings": 2048}
    mx.random.seed(0)
    model = llama.Model(llama.ModelArgs.from_dict(config))
    mx.save_safetensors(str(folder / "model.safetensors"), dict(tree_flatten(model.parameters())),
                        metadata={"format": "mlx"})
    (folder / "config.json").write_text(json.dumps(config, indent=2))
    for f in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copyfile(demo_text_model / f, folder / f)
    return folder


@pytest.fixture
def project_root(tmp_path, monkeypatch):
    """A fresh project root: artifacts of the code under test land here, not in the repo."""
    monkeypatch.setenv("OMNILM_ROOT", str(tmp_path))
    for d in ("models", "data", "adapters", "results", "logs"):
        (tmp_path / d).mkdir()
    return tmp_path


def snapshot(folder):
    """Every file under `folder`, relative path -> bytes: what must survive byte for byte."""
    folder = Path(folder)
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def plant_user_folder(folder, **files):
    """A user's folder where a stage may write (notes, a subfolder with a file, and
    `files`: name -> text); returns its snapshot, to compare after the stage ran."""
    folder = Path(folder)
    (folder / "sub").mkdir(parents=True, exist_ok=True)
    (folder / "notes.txt").write_text("my own notes\n")
    (folder / "sub" / "cv.pdf").write_bytes(b"%PDF-1.4 not the project's\n")
    for name, text in files.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(text)
    return snapshot(folder)


def assert_one_line_refusal(result, *words):
    """A script's refusal: exit 2, one `error:` line on stderr holding `words`, no traceback."""
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode == 2 and len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    for w in words:
        assert w in lines[0], lines[0]


# --- chat app (stage 04) fixtures ---------------------------------------------

def _link_or_copy(src, dst):
    """Hard link (instant, no extra disk) where the filesystem allows, else a copy."""
    import os

    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def place_model(src, models_folder, name=None):
    """A model folder inside a project's models/ (real files, not symlinks: the app
    refuses links that leave models/)."""
    dst = Path(models_folder) / (name or Path(src).name)
    shutil.copytree(src, dst, copy_function=_link_or_copy, ignore=shutil.ignore_patterns(".stamp"))
    return dst


def make_lora_adapter(model_dir, out_dir, num_layers=2, rank=4, manifest=None, scale=10.0, seed=None):
    """A real mlx-lm LoRA adapter folder for `model_dir` (untrained: lora_b set to
    small random values so it changes the answers), plus an optional manifest.
    seed: also fix lora_a (else drawn from the current random state), for a test
    that needs the very same adapter every run."""
    import mlx.core as mx
    from mlx.utils import tree_flatten
    from mlx_lm import load
    from mlx_lm.tuner.utils import linear_to_lora_layers

    if seed is not None:
        mx.random.seed(seed)
    model, _ = load(str(model_dir), lazy=True)
    model.freeze()
    params = {"rank": rank, "scale": scale, "dropout": 0.0}
    linear_to_lora_layers(model, num_layers, params)
    mx.random.seed(1)
    weights = {k: (mx.random.normal(v.shape) * 0.01 if k.endswith("lora_b") else v)
               for k, v in tree_flatten(model.trainable_parameters())}
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    mx.save_safetensors(str(out / "adapters.safetensors"), weights)
    (out / "adapter_config.json").write_text(json.dumps(
        {"fine_tune_type": "lora", "num_layers": num_layers, "lora_parameters": params}, indent=2))
    if manifest is not None:
        (out / "manifest.json").write_text(json.dumps(manifest, indent=2))
    return out


@pytest.fixture
def chat_project(project_root, demo_text_model, demo_omni_model, tiny_model):
    """A project root as the pipeline leaves it for the chat app: the demo text model,
    the omni checkpoint (to be skipped), an SFT adapter for the demo model and a CPT
    adapter made for the tiny model (incompatible with the demo model)."""
    models, adapters = project_root / "models", project_root / "adapters"
    place_model(demo_text_model, models, "demo-omni-Text")
    place_model(demo_omni_model, models, "demo-omni")
    make_lora_adapter(demo_text_model, adapters / "demo_paper-sft",
                      manifest={"stage": "sft", "base_model": "models/demo-omni-Text", "complete": True})
    make_lora_adapter(tiny_model, adapters / "tiny-cpt",
                      manifest={"stage": "cpt", "args": {"model": str(tiny_model), "data": "data/cpt/tiny"},
                                "complete": True})
    return project_root
