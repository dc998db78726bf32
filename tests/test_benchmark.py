"""Stage 01 benchmark: held-out text, perplexity, the seed's wording, and the real script on tiny models."""
import csv
import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from omnilm.benchmark import BUILTIN_PASSAGE, default_text_file, for_perplexity, perplexity, read_text, warm_then_time
from omnilm.benchmark_report import improvement, markdown, to_row
from omnilm.errors import UserError
from omnilm.quantize import quantize

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "01_quantize" / "benchmark.py"
REQUIRED = ["model", "bits_per_weight", "size_mb", "load_s", "prompt_tps", "generation_tps", "peak_memory_gb",
            "perplexity"]


@pytest.fixture(scope="module")
def tiny_4bit(tiny_model, tmp_path_factory):
    out = tmp_path_factory.mktemp("q") / "tiny-4bit"
    quantize(tiny_model, out, bits=4, group_size=64, dtype="float32")
    return out


def test_held_out_text_from_jsonl_or_txt(tmp_path):
    jsonl = tmp_path / "valid.jsonl"
    jsonl.write_text('{"text": "first chunk"}\n\n{"text": "second chunk"}\n')
    assert read_text(jsonl) == "first chunk\n\nsecond chunk"
    txt = tmp_path / "p.txt"
    txt.write_text("plain words")
    assert read_text(txt) == "plain words"
    jsonl.write_text('{"text": "ok"}\n{"messages": []}\n')
    with pytest.raises(UserError, match="line 2"):
        read_text(jsonl)
    with pytest.raises(UserError, match="does not exist"):
        read_text(tmp_path / "absent.jsonl")
    assert len(BUILTIN_PASSAGE.read_text().split()) > 500  # enough for a 128-token prompt and ~1k scored tokens


def test_default_text_is_the_newest_validation_split_else_the_passage(project_root):
    assert default_text_file() == BUILTIN_PASSAGE
    split = project_root / "data" / "cpt" / "paper" / "valid.jsonl"
    split.parent.mkdir(parents=True)
    split.write_text('{"text": "held out"}\n')
    assert default_text_file() == split


def test_improvement_column_speaks_like_the_seed():
    """The seed's own figures: 8-bit 9.24 GB, 15.9 tok/s -> 4-bit 5.33 GB, 25.2 tok/s."""
    base = {"size_mb": 9000, "peak_memory_gb": 9.24, "generation_tps": 15.9, "perplexity": 10.0}
    row = {"size_mb": 5000, "peak_memory_gb": 5.33, "generation_tps": 25.2, "perplexity": 11.2}
    assert improvement(row, base) == "44% smaller, 42% less memory, 58% faster, perplexity x1.12"
    slower = dict(row, generation_tps=7.95, peak_memory_gb=10.0)
    assert "50% slower" in improvement(slower, base) and "more memory" in improvement(slower, base)


def test_dequantized_perplexity_equals_the_quantized_kernels(tiny_4bit):
    """On CPU perplexity runs on the dequantized weights (BLAS): it must be the same number."""
    from mlx_lm import load

    model, tokenizer = load(str(tiny_4bit))
    ids = tokenizer.encode(BUILTIN_PASSAGE.read_text())[:97]
    direct, n = perplexity(model, ids, window=48)
    assert n == 96
    dequantized, method = for_perplexity(model, "cpu")
    assert "dequantized" in method
    again, _ = perplexity(dequantized, ids, window=48)
    assert math.isfinite(direct) and abs(again - direct) / direct < 1e-4


def test_demo_4bit_perplexity_within_2x_of_float(demo_text_model, tmp_path):
    """The acceptance figure on the real demo model: 4 bits cost quality, but less than 2x."""
    from mlx_lm import load

    q4 = tmp_path / "demo-4bit"
    quantize(demo_text_model, q4, bits=4, group_size=64, dtype="float32")
    scores = []
    for folder in (demo_text_model, q4):
        model, tokenizer = load(str(folder))
        ids = tokenizer.encode(BUILTIN_PASSAGE.read_text())[:257]
        scores.append(perplexity(for_perplexity(model, "cpu")[0], ids)[0])
    float_ppl, q4_ppl = scores
    assert float_ppl < 200  # a trained model on plain English prose
    assert float_ppl < q4_ppl < 2 * float_ppl


def test_benchmark_script_writes_csv_markdown_png(tiny_model, tiny_4bit, tmp_path):
    out = tmp_path / "bench"
    done = subprocess.run([sys.executable, str(SCRIPT), "--models", str(tiny_model), str(tiny_4bit),
                           "--output", str(out), "--repeats", "2", "--prompt-tokens", "16", "--max-tokens", "4",
                           "--perplexity-tokens", "64"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("machine: ") and "mlx_device" in done.stdout.splitlines()[0]
    with open(out / "benchmark.csv") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0])[:len(REQUIRED)] == REQUIRED
    assert [r["quantization"] for r in rows] == ["none", "4-bit g64"]
    for r in rows:
        assert float(r["generation_tps_min"]) <= float(r["generation_tps"]) <= float(r["generation_tps_max"])
        assert all(float(r[k]) > 0 for k in REQUIRED[1:])
        assert r["repeats"] == "2" and r["perplexity_tokens"] == "64"
    assert float(rows[0]["bits_per_weight"]) == 32.0 and float(rows[1]["bits_per_weight"]) < 6
    assert float(rows[1]["size_mb"]) < float(rows[0]["size_mb"])
    table = (out / "benchmark.md").read_text()
    assert "| baseline |" in table and "smaller" in table and "Machine:" in table
    assert (out / "benchmark.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["machine"]["mlx_device"] in ("cpu", "gpu") and len(manifest["models"]) == 2

    # its own results folder is measured again with --force only (the pipeline passes it)
    again = [sys.executable, str(SCRIPT), "--models", str(tiny_4bit), "--output", str(out), "--repeats", "1",
             "--prompt-tokens", "16", "--max-tokens", "2", "--perplexity-tokens", "0"]
    refused = subprocess.run(again, capture_output=True, text=True)
    assert refused.returncode == 2 and "already exists; pass --force" in refused.stderr
    assert json.loads((out / "manifest.json").read_text()) == manifest
    done = subprocess.run([*again, "--force"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert len(json.loads((out / "manifest.json").read_text())["models"]) == 1


def test_benchmark_refuses_an_omni_folder_before_measuring(demo_omni_model, tiny_model, tmp_path):
    done = subprocess.run([sys.executable, str(SCRIPT), "--models", str(tiny_model), str(demo_omni_model),
                           "--output", str(tmp_path / "bench")], capture_output=True, text=True)
    assert done.returncode == 2 and "omni/VLM" in done.stderr and "Traceback" not in done.stderr
    assert "[1/" not in done.stdout and not (tmp_path / "bench").exists()


def test_the_warm_up_is_the_timed_call_itself_and_is_not_counted():
    shapes = []

    def run():  # what a timed generation would see: its prompt length and token count
        shapes.append((64, 32))
        return len(shapes)

    assert warm_then_time(run, 3) == [2, 3, 4]  # the first call (the warm-up) is dropped
    assert shapes == [(64, 32)] * 4


def _result(name, prompt_tps, generation_tps):
    return {"model": name, "path": name, "quantization": "none", "bits_per_weight": 32.0, "size_mb": 100.0,
            "load_s": [1.0, 1.1, 1.2], "prompt_tps": prompt_tps, "generation_tps": generation_tps,
            "peak_memory_gb": 1.0, "peak_rss_gb": 1.5, "perplexity": None, "perplexity_tokens": 0,
            "perplexity_method": None, "prompt_tokens": 64, "generated_tokens": 32, "repeats": 3}


def test_a_figure_whose_repeats_differ_more_than_2x_is_flagged_not_given_a_median():
    steady = to_row(_result("float", [100.0, 110.0, 120.0], [20.0, 21.0, 22.0]))
    shaky = to_row(_result("gpu-4bit", [2.0, 837.0, 1672.0], [30.0, 31.0, 32.0]))
    table = markdown([steady, shaky], {"cpu": "test"}, "a passage")
    float_line, shaky_line = (next(line for line in table.splitlines() if line.startswith(f"| {m} |"))
                              for m in ("float", "gpu-4bit"))
    assert "110.0 (100.0-120.0)" in float_line and "unsteady" not in float_line
    assert "**unsteady** 2.0-1672.0" in shaky_line and "837" not in shaky_line
    assert "31.0 (30.0-32.0)" in shaky_line  # only the unsteady figure loses its median
    assert "gpu-4bit prompt_tps differ by more than 2x" in table
