"""Stage 01 quantization: the scales' dtype choice, the figures, the refusals, the real convert."""
import json
import subprocess
import sys
from argparse import Namespace
from pathlib import Path

import pytest
from conftest import plant_user_folder, snapshot

from omnilm.errors import UserError
from omnilm.quantize import choose_scales_dtype, quantize_models, weight_dtype, weights_summary
from omnilm.safetensors_io import read_header

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "01_quantize" / "quantize.py"


def options(model, bits, output, **more):
    """Stage 01's options as its script resolves them (the defaults, then these)."""
    return Namespace(**{"model": str(model), "bits": bits, "group_size": 64, "output": str(output) if output else None,
                        "dtype": "auto", "force": False, "config": None, **more})


def scales_dtypes(folder):
    header = {}
    for shard in Path(folder).glob("*.safetensors"):
        header.update(read_header(shard)[0])
    return {t["dtype"] for name, t in header.items() if name.endswith(".scales")}


def test_scales_dtype_is_float32_on_cpu_and_the_source_dtype_on_a_gpu():
    dtype, why = choose_scales_dtype("auto", "cpu", "bfloat16")
    assert dtype == "float32" and "CPU" in why and "slower" in why
    dtype, why = choose_scales_dtype("auto", "gpu", "bfloat16")
    assert dtype == "bfloat16" and "GPU" in why
    assert choose_scales_dtype("auto", "gpu", "float16")[0] == "float16"
    assert choose_scales_dtype("bfloat16", "cpu", "float32") == ("bfloat16", "asked for")


def test_source_dtype_comes_from_the_config_else_the_tensors(tiny_model, demo_text_model):
    assert weight_dtype(demo_text_model, {"torch_dtype": "bfloat16"}) == "bfloat16"
    assert weight_dtype(tiny_model, {}) == "float32"  # no dtype in its config: read from the header


def test_quantize_8_and_4_bits_in_one_call(tiny_model, tmp_path):
    """The real script in its own process: both outputs load in mlx-lm, the figures match mlx-lm's own."""
    import mlx.core as mx
    from mlx_lm import load
    from mlx_lm.utils import compute_bits_per_weight

    model = tmp_path / "tiny"
    model.symlink_to(tiny_model, target_is_directory=True)
    done = subprocess.run([sys.executable, str(SCRIPT), "--model", str(model), "--bits", "8", "4"],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    expected_dtype = "float32"  # CPU: float32 by choice; GPU: the tiny model's own dtype, float32 too
    assert f"scales dtype: {expected_dtype}" in done.stdout
    for bits, low, high in ((8, 8.9, 9.6), (4, 4.9, 5.6)):
        out = tmp_path / f"tiny-{bits}bit"
        config = json.loads((out / "config.json").read_text())
        assert config["quantization"]["bits"] == bits and config["quantization"]["group_size"] == 64
        manifest = json.loads((out / "manifest.json").read_text())
        m = manifest["metrics"]
        assert (m["bits"], m["group_size"], m["scales_dtype"]) == (bits, 64, expected_dtype)
        assert manifest["scales_dtype_reason"] and manifest["inputs"]["source"]["size"] > 0
        assert scales_dtypes(out) == {"F32"}
        assert low < m["bits_per_weight"] < high
        loaded, _ = load(str(out))
        assert abs(compute_bits_per_weight(loaded) - m["bits_per_weight"]) < 0.01
        assert m["size_bytes"] == weights_summary(out)["size_bytes"] - (out / "manifest.json").stat().st_size
        mx.eval(loaded(mx.array([[1, 2, 3]])))
        assert f"{bits}-bit: {out}" in done.stdout


def test_bfloat16_scales_on_request(tiny_model, tmp_path):
    out = tmp_path / "q4-bf16"
    quantize_models(options(tiny_model, [4], out, dtype="bfloat16"))
    assert scales_dtypes(out) == {"BF16"}
    assert json.loads((out / "manifest.json").read_text())["scales_dtype_reason"] == "asked for"


@pytest.mark.parametrize("case", ["omni", "quantized", "missing", "no-weights", "bad-bits", "output-and-two-bits"])
def test_refusals_are_one_sentence_and_write_nothing(case, tiny_model, demo_omni_model, tmp_path):
    out = tmp_path / "out"
    args = {"omni": options(demo_omni_model, [4], out), "missing": options(tmp_path / "nowhere", [4], out),
            "bad-bits": options(tiny_model, [7], out), "output-and-two-bits": options(tiny_model, [8, 4], out)}
    words = {"omni": "omni/VLM", "quantized": "already quantized", "missing": "does not exist",
             "no-weights": "no .safetensors", "bad-bits": "not supported", "output-and-two-bits": "several --bits"}
    if case == "quantized":
        quantized = tmp_path / "q"
        quantized.mkdir()
        (quantized / "config.json").write_text(json.dumps({"model_type": "llama",
                                                           "quantization": {"bits": 4, "group_size": 64}}))
        (quantized / "model.safetensors").write_bytes(b"")
        args[case] = options(quantized, [4], out)
    if case == "no-weights":
        empty = tmp_path / "empty"
        empty.mkdir()
        (empty / "config.json").write_text(json.dumps({"model_type": "llama"}))
        args[case] = options(empty, [4], out)
    with pytest.raises(UserError) as refused:
        quantize_models(args[case])
    assert words[case] in str(refused.value) and "\n" not in str(refused.value)
    assert not (tmp_path / "out").exists()
    assert not list(tmp_path.glob(".out.tmp-*"))


def test_a_users_folder_is_never_replaced_and_the_projects_only_with_force(tiny_model, tmp_path):
    out = tmp_path / "q8"
    mine = plant_user_folder(out)
    for force in (False, True):
        with pytest.raises(UserError, match="did not make.*even with --force") as refused:
            quantize_models(options(tiny_model, [8], out, force=force))
        assert "\n" not in str(refused.value) and snapshot(out) == mine
    ours = tmp_path / "ours"
    quantize_models(options(tiny_model, [8], ours))
    with pytest.raises(UserError, match="already exists; pass --force"):
        quantize_models(options(tiny_model, [8], ours))
    quantize_models(options(tiny_model, [8], ours, force=True))
    assert json.loads((ours / "manifest.json").read_text())["stage"] == "quantize"


def test_16bit_scales_are_cast_to_float32_on_cpu_only(tiny_model, tmp_path):
    """A model quantized elsewhere (bfloat16 scales) runs with float32 scales on CPU, same outputs."""
    import mlx.core as mx
    from mlx.utils import tree_flatten
    from mlx_lm import load

    from omnilm.quantize import float32_scales_on_cpu, quantize

    quantize(tiny_model, tmp_path / "q4-bf16", bits=4, group_size=64, dtype="bfloat16")
    model, _ = load(str(tmp_path / "q4-bf16"))
    tokens = mx.array([[5, 17, 230, 4000]])
    before = model(tokens).astype(mx.float32)
    assert float32_scales_on_cpu(model, device="gpu") == 0
    assert float32_scales_on_cpu(model, device="cpu") > 0
    floats = {v.dtype for _, v in tree_flatten(model.parameters()) if mx.issubdtype(v.dtype, mx.floating)}
    assert floats == {mx.float32}
    after = model(tokens)
    assert after.dtype == mx.float32
    gap = (mx.linalg.norm(after - before) / mx.linalg.norm(before)).item()
    assert gap < 0.1  # bfloat16 rounding of the activations only
    float_model, _ = load(str(tiny_model))
    assert float32_scales_on_cpu(float_model, device="cpu") == 0


def test_quantizing_shows_a_per_layer_count_and_the_elapsed_time(tiny_model, tmp_path, capsys):
    """mlx-lm's convert is silent for minutes on an 8B model: stage 01 counts the layers."""
    quantize_models(options(tiny_model, [4], tmp_path / "q4"))
    shown = capsys.readouterr().err.replace("\r", "\n")
    assert "4-bit: quantizing: 100%" in shown and "2/2 [00:" in shown and "layer/s" in shown  # count, elapsed, rate
    assert f"4-bit: writing {tmp_path / 'q4'}: done in " in shown
