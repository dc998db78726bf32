"""Shared fixtures: the real demo model (built once, cached) and tiny models built here."""
import json
import shutil
from pathlib import Path

import omnilm  # noqa: F401  (fast BLAS before mlx, as in every script)
import pytest

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
    if not (stamp.exists() and stamp.read_text() == _stamp()):
        with staged_dir(folder, force=True) as tmp:
            build(tmp)
            (tmp / ".stamp").write_text(_stamp())
    return folder


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
