"""Stage 00: extraction on the real 8B layout (tiny shapes), on the demo, and its refusals."""
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import plant_user_folder, snapshot
from safetensors.numpy import load_file, save_file

from omnilm.errors import UserError
from omnilm.extract import extract, language_shards

REPO = Path(__file__).resolve().parents[1]
REAL = REPO / "tests" / "fixtures" / "hyperclovax-seed-omni-8b"
TINY_TEXT = {"hidden_size": 8, "num_attention_heads": 2, "num_key_value_heads": 1, "head_dim": 4,
             "intermediate_size": 16, "vocab_size": 32}


def _tiny_shape(name, text):
    h, hd = text["hidden_size"], text["head_dim"]
    q, kv = text["num_attention_heads"] * hd, text["num_key_value_heads"] * hd
    table = {"embed_tokens": (text["vocab_size"], h), "lm_head": (text["vocab_size"], h), "q_proj": (q, h),
             "k_proj": (kv, h), "v_proj": (kv, h), "o_proj": (h, q), "gate_proj": (text["intermediate_size"], h),
             "up_proj": (text["intermediate_size"], h), "down_proj": (h, text["intermediate_size"])}
    for key, shape in table.items():
        if f".{key}." in name:
            return shape
    return (h,) if "language_model" in name else (2,)


def make_real_layout(folder):
    """Every one of the real checkpoint's 1860 tensor names, in its 10 shards, at tiny shapes."""
    folder.mkdir(parents=True)
    config = json.loads((REAL / "config.json").read_text())
    config["text_config"].update(TINY_TEXT)
    (folder / "config.json").write_text(json.dumps(config))
    index = json.loads((REAL / "model.safetensors.index.json").read_text())
    shutil.copyfile(REAL / "model.safetensors.index.json", folder / "model.safetensors.index.json")
    rng = np.random.default_rng(1)
    by_shard = {}
    for name, shard in index["weight_map"].items():
        shape = _tiny_shape(name, config["text_config"])
        by_shard.setdefault(shard, {})[name] = rng.standard_normal(shape).astype(np.float32)
    for shard, tensors in by_shard.items():
        save_file(tensors, str(folder / shard), metadata={"format": "pt"})
    (folder / "tokenizer.json").write_text("{}")
    (folder / "tokenizer_config.json").write_text("{}")
    return {n: t for tensors in by_shard.values() for n, t in tensors.items()}


@pytest.fixture
def real_layout(tmp_path):
    src = tmp_path / "HyperCLOVAX-SEED-Omni-8B"
    return src, make_real_layout(src)


def _load_all(folder):
    index = json.loads((folder / "model.safetensors.index.json").read_text())
    out = {}
    for shard in sorted(set(index["weight_map"].values())):
        out.update(load_file(str(folder / shard)))
    assert set(out) == set(index["weight_map"])
    return out


def test_real_layout_extracts_327_tensors_bit_for_bit(real_layout, tmp_path):
    src, tensors = real_layout
    out = tmp_path / "out"
    out.mkdir()
    info = extract(src, out, max_shard_gb=1e-6)  # tiny shard limit: many output shards
    got = _load_all(out)
    assert len(got) == 327 == 36 * 9 + 3
    for name, value in got.items():
        old = name.replace("model.", "model.language_model.model.", 1) if name.startswith("model.") \
            else "model.language_model." + name
        assert value.dtype == np.float32 and np.array_equal(value, tensors[old]), name
    config = json.loads((out / "config.json").read_text())
    assert config["model_type"] == "llama" and config["tie_word_embeddings"] is False
    assert config["rope_theta"] == 5000000 and config["num_hidden_layers"] == 36
    for leftover in ("max_length", "id2label", "label2id", "num_beams"):
        assert leftover not in config
    assert info["shards"] > 1 and info["source_shards_read"] == [f"model-{i:05d}-of-00010.safetensors" for i in range(3, 11)]


def test_bfloat16_output_rounds_like_numpy(real_layout, tmp_path):
    src, tensors = real_layout
    out = tmp_path / "out"
    out.mkdir()
    extract(src, out, dtype="bfloat16")
    header_len = int.from_bytes((out / "model.safetensors").read_bytes()[:8], "little")
    header = json.loads((out / "model.safetensors").read_bytes()[8:8 + header_len])
    meta = header["model.norm.weight"]
    raw = (out / "model.safetensors").read_bytes()[8 + header_len + meta["data_offsets"][0]:
                                                   8 + header_len + meta["data_offsets"][1]]
    back = (np.frombuffer(raw, np.uint16).astype(np.uint32) << 16).view(np.float32)
    src_values = tensors["model.language_model.model.norm.weight"]
    assert meta["dtype"] == "BF16"
    assert np.allclose(back, src_values, rtol=2 ** -8) and not np.array_equal(back, src_values)


def test_hf_shard_selection_skips_vision_audio_shards():
    index = json.loads((REAL / "model.safetensors.index.json").read_text())
    shards = language_shards(index["weight_map"])
    assert shards == [f"model-{i:05d}-of-00010.safetensors" for i in range(3, 11)]


@pytest.mark.slow
def test_demo_extracted_model_matches_gguf_and_answers(demo_omni_model, demo_text_model):
    from mlx_lm import generate, load

    from omnilm.chat import chat_prompt
    from omnilm.demo_omni import read_gguf

    config = json.loads((demo_omni_model / "config.json").read_text())
    assert config["model_type"] == "vlm" and "text_config" in config
    weight_map = json.loads((demo_omni_model / "model.safetensors.index.json").read_text())["weight_map"]
    straddling = {n.split(".")[4] for n in weight_map if ".layers." in n}
    assert any(len({weight_map[n] for n in weight_map if f".layers.{layer}." in n}) == 2 for layer in straddling)

    _, gguf_tensors, _ = read_gguf()
    got = _load_all(demo_text_model)
    assert set(got) == set(gguf_tensors) | {"lm_head.weight"}
    for name, value in gguf_tensors.items():
        assert np.array_equal(got[name], value), name
    assert np.array_equal(got["lm_head.weight"], gguf_tensors["model.embed_tokens.weight"])

    model, tokenizer = load(str(demo_text_model))
    prompt = chat_prompt(tokenizer, [{"role": "user", "content": "What is the capital of France?"}])
    assert prompt.endswith("<|im_start|>assistant\n<think>\n\n</think>\n\n")
    assert "Paris" in generate(model, tokenizer, prompt, max_tokens=24)


def test_demo_builder_is_deterministic(demo_omni_model, tmp_path):
    from omnilm.demo_omni import build_demo_omni

    again = tmp_path / "again"
    again.mkdir()
    build_demo_omni(again)
    for f in sorted(again.iterdir()):
        assert f.read_bytes() == (demo_omni_model / f.name).read_bytes(), f.name


# --- refusals: one sentence, exit 2, nothing written -------------------------

def run_extract(*args, root):
    env = {**os.environ, "OMNILM_ROOT": str(root)}
    return subprocess.run([sys.executable, str(REPO / "00_extract" / "extract_text_backbone.py"), *args],
                          capture_output=True, text=True, env=env)


def assert_refused(result, *words):
    assert result.returncode == 2, result.stderr
    lines = [l for l in result.stderr.splitlines() if l.strip() and "it/s" not in l and "B/s" not in l]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    for w in words:
        assert w in lines[0], lines[0]


def _no_output(tmp_path):
    return not any(p.name.startswith(("out", ".out")) for p in tmp_path.iterdir())


def test_refuses_missing_shard(real_layout, tmp_path):
    src, _ = real_layout
    (src / "model-00004-of-00010.safetensors").unlink()
    r = run_extract("--source", str(src), "--output", str(tmp_path / "out"), root=tmp_path)
    assert_refused(r, "model-00004-of-00010.safetensors", "missing")
    assert _no_output(tmp_path)


def test_refuses_truncated_shard(real_layout, tmp_path):
    src, _ = real_layout
    shard = src / "model-00007-of-00010.safetensors"
    os.truncate(shard, shard.stat().st_size - 10)
    r = run_extract("--source", str(src), "--output", str(tmp_path / "out"), root=tmp_path)
    assert_refused(r, "model-00007-of-00010.safetensors", "truncated")
    assert _no_output(tmp_path)


def test_refuses_source_without_language_model(real_layout, tmp_path):
    src, _ = real_layout
    index = json.loads((src / "model.safetensors.index.json").read_text())
    index["weight_map"] = {k: v for k, v in index["weight_map"].items() if "language_model" not in k}
    (src / "model.safetensors.index.json").write_text(json.dumps(index))
    with pytest.raises(UserError, match="no language-model tensors"):
        extract(src, tmp_path / "x")
    config = json.loads((src / "config.json").read_text())
    (src / "config.json").write_text(json.dumps(config["text_config"]))  # a plain text model
    r = run_extract("--source", str(src), "--output", str(tmp_path / "out"), root=tmp_path)
    assert_refused(r, "no language model", "already a text model")


def test_refuses_unsupported_text_model_type(real_layout, tmp_path):
    src, _ = real_layout
    config = json.loads((src / "config.json").read_text())
    config["text_config"]["model_type"] = "qwen2_moe"
    (src / "config.json").write_text(json.dumps(config))
    r = run_extract("--source", str(src), "--output", str(tmp_path / "out"), root=tmp_path)
    assert_refused(r, "qwen2_moe", "supported: llama")
    assert _no_output(tmp_path)


def test_refuses_missing_and_misshapen_tensors(real_layout, tmp_path):
    src, tensors = real_layout
    shard = src / "model-00005-of-00010.safetensors"
    data = load_file(str(shard))
    victim = next(n for n in data if n.endswith("self_attn.k_proj.weight"))
    data[victim] = np.zeros((3, 3), np.float32)
    save_file(data, str(shard))
    config = json.loads((src / "config.json").read_text())
    config["text_config"]["num_hidden_layers"] = 37  # text_config now wants a layer that is not there
    (src / "config.json").write_text(json.dumps(config))
    with pytest.raises(UserError) as err:
        extract(src, tmp_path / "x")
    msg = str(err.value)
    assert "9 missing" in msg and "model.layers.36.input_layernorm.weight" in msg
    assert "misshapen" in msg and victim.replace("model.language_model.", "") in msg


def test_a_users_folder_is_never_replaced_and_the_projects_only_with_force(real_layout, tmp_path):
    """The user's X-Text folder (no manifest of a stage) survives with and without
    --force; a text model stage 00 wrote is replaced with --force (the pipeline's reruns)."""
    src, _ = real_layout
    out = tmp_path / "out"
    mine = plant_user_folder(out)
    for force in ([], ["--force"]):
        r = run_extract("--source", str(src), "--output", str(out), *force, root=tmp_path)
        assert_refused(r, "out holds files this project did not make", "even with --force", "pick another --output")
        assert snapshot(out) == mine and not list(tmp_path.glob(".out.*"))
    r = run_extract("--source", str(src), "--output", str(out / "sub" / ".."), "--force", root=tmp_path)
    assert_refused(r, "does not name a folder of its own")
    assert snapshot(out) == mine

    empty = tmp_path / "empty"
    empty.mkdir()  # an empty folder is used as is, without --force
    assert run_extract("--source", str(src), "--output", str(empty), root=tmp_path).returncode == 0
    r = run_extract("--source", str(src), "--output", str(empty), root=tmp_path)
    assert_refused(r, "already exists", "--force")
    (empty / "notes.txt").write_text("added to the project's folder")
    r = run_extract("--source", str(src), "--output", str(empty), "--force", root=tmp_path)
    assert r.returncode == 0, r.stderr
    assert not (empty / "notes.txt").exists() and (empty / "manifest.json").exists()
    manifest = json.loads((empty / "manifest.json").read_text())
    assert manifest["stage"] == "extract" and manifest["metrics"]["tensors"] == 327


def test_refuses_missing_source(tmp_path):
    r = run_extract("--source", str(tmp_path / "nope"), root=tmp_path)
    assert_refused(r, "does not exist")
