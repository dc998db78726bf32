"""Stage 01's benchmark: speed, memory and quality of text models, one process per model.

The parent (run_benchmark) starts `python -m omnilm.benchmark SPEC OUT` for each
model so that memory and caches never bleed from one model into the next; the
child (measure) loads the model, warms up, times N repeats and computes the
perplexity, and writes its figures as JSON for the parent to collect."""
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from omnilm.errors import UserError
from omnilm.paths import REPO_DIR, data_dir, display

BUILTIN_PASSAGE = REPO_DIR / "01_quantize" / "benchmark_passage.txt"
WARMUP_PROMPT_TOKENS, WARMUP_GENERATED = 16, 4
PERPLEXITY_WINDOW = 512
CSV_COLUMNS = ["model", "bits_per_weight", "size_mb", "load_s", "prompt_tps", "generation_tps", "peak_memory_gb",
               "perplexity", "quantization", "scales_dtype", "load_s_min", "load_s_max", "prompt_tps_min",
               "prompt_tps_max", "generation_tps_min", "generation_tps_max", "peak_rss_gb", "prompt_tokens",
               "generated_tokens", "perplexity_tokens", "perplexity_method", "repeats", "path"]


# ---------------------------------------------------------------- held-out text

def read_text(path):
    """The text of a .jsonl of {"text"} lines (joined by blank lines) or of a plain file."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"text file {display(path)} does not exist")
    if path.suffix == ".jsonl":
        texts = []
        for n, line in enumerate(path.read_text().splitlines(), 1):
            if not line.strip():
                continue
            try:
                texts.append(json.loads(line)["text"])
            except (json.JSONDecodeError, KeyError, TypeError):
                raise UserError(f"{display(path)} line {n} is not a JSON object with a \"text\" field")
        text = "\n\n".join(texts)
    else:
        text = path.read_text()
    if not text.strip():
        raise UserError(f"text file {display(path)} holds no text")
    return text


def default_text_file():
    """The newest document validation split (data/cpt/*/valid.jsonl), else the built-in passage."""
    splits = sorted(data_dir().glob("cpt/*/valid.jsonl"), key=lambda p: p.stat().st_mtime)
    return splits[-1] if splits else BUILTIN_PASSAGE


# ---------------------------------------------------------------- child: one model

def timed_generation(model, prompt_ids, max_tokens):
    """Greedy generation of exactly max_tokens (no stop at EOS): prompt and generation tok/s."""
    import mlx.core as mx
    from mlx_lm.generate import generate_step

    start = time.perf_counter()
    first = last = None
    n = 0
    for _token, _ in generate_step(mx.array(prompt_ids), model, max_tokens=max_tokens):
        last = time.perf_counter()
        first = first or last
        n += 1
    return len(prompt_ids) / (first - start), (n - 1) / (last - first) if n > 1 else 0.0


def for_perplexity(model, device):
    """On CPU, the quantized layers dequantized to float32: the same weight values, but the
    float matmul uses BLAS where CPU quantized kernels crawl on long inputs (~20x slower)."""
    import mlx.core as mx
    from mlx.utils import tree_map
    from mlx_lm.utils import dequantize_model

    if device != "cpu":
        return model, "quantized kernels"
    model = dequantize_model(model)
    model.update(tree_map(lambda a: a.astype(mx.float32) if mx.issubdtype(a.dtype, mx.floating) else a,
                          model.parameters()))
    return model, "float32 forward of the (dequantized) weights"


def perplexity(model, ids, window=PERPLEXITY_WINDOW, on_window=None):
    """exp(mean next-token loss) over ids, in independent windows of `window` targets."""
    import math

    import mlx.core as mx
    import mlx.nn as nn

    total, count = 0.0, 0
    for start in range(0, len(ids) - 1, window):
        chunk = mx.array(ids[start:start + window + 1])[None]
        if chunk.shape[1] < 2:
            break
        logits = model(chunk[:, :-1]).astype(mx.float32)
        loss = nn.losses.cross_entropy(logits, chunk[:, 1:], reduction="sum")
        total += loss.item()
        count += chunk.shape[1] - 1
        if on_window:
            on_window()
    return math.exp(total / count), count


def token_ids(tokenizer, text, need):
    """The text's tokens, repeated when it is shorter than `need` (prompt length)."""
    ids = tokenizer.encode(text)
    if not ids:
        raise UserError("the benchmark text tokenizes to nothing")
    while len(ids) < need:
        ids = ids + ids
    return ids


def peak_rss_bytes():
    """This process's high-water RSS. VmHWM is the process's own, whereas ru_maxrss can
    carry the parent's peak across fork+exec."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * (1 if sys.platform == "darwin" else 1024)


def measure(model_dir, text, prompt_tokens, max_tokens, repeats, perplexity_tokens):
    """Every figure of one model, measured in this process."""
    import gc

    import mlx.core as mx
    from mlx_lm import load

    from omnilm.progress import bar
    from omnilm.quantize import describe_quantization, text_model_config, weights_summary
    from omnilm.runtime import device_name, use_fast_blas

    config = text_model_config(model_dir)
    windows = -(-perplexity_tokens // PERPLEXITY_WINDOW)
    progress = bar(desc=Path(model_dir).name, total=2 * repeats + 1 + windows, unit="step")
    loads = []
    for _ in range(repeats):
        model = tokenizer = None
        gc.collect()
        mx.clear_cache()
        started = time.perf_counter()
        model, tokenizer = load(str(model_dir))
        loads.append(time.perf_counter() - started)
        progress.update()
    ids = token_ids(tokenizer, text, prompt_tokens)
    timed_generation(model, ids[:WARMUP_PROMPT_TOKENS], WARMUP_GENERATED)
    progress.update()
    prompt_tps, generation_tps = [], []
    for _ in range(repeats):
        p, g = timed_generation(model, ids[:prompt_tokens], max_tokens)
        prompt_tps.append(p)
        generation_tps.append(g)
        progress.update()
    peak_memory = mx.get_peak_memory() / 1e9  # load + generation, before the perplexity pass
    peak_rss = peak_rss_bytes() / 1e9
    ppl, ppl_count, method = None, 0, None
    if perplexity_tokens > 0:
        quality_model, method = for_perplexity(model, device_name())
        ppl, ppl_count = perplexity(quality_model, tokenizer.encode(text)[:perplexity_tokens + 1],
                                    on_window=progress.update)
    progress.close()
    return {"model": Path(model_dir).name, "path": display(model_dir), "quantization": describe_quantization(config),
            **weights_summary(model_dir, config), "load_s": loads, "prompt_tps": prompt_tps,
            "generation_tps": generation_tps, "peak_memory_gb": peak_memory, "peak_rss_gb": peak_rss,
            "perplexity": ppl, "perplexity_tokens": ppl_count, "perplexity_method": method,
            "prompt_tokens": prompt_tokens, "generated_tokens": max_tokens, "repeats": repeats,
            "device": device_name(), "blas": use_fast_blas()}


def child_main(spec_path, out_path):
    spec = json.loads(Path(spec_path).read_text())
    result = measure(spec["model"], Path(spec["text_file"]).read_text(), spec["prompt_tokens"], spec["max_tokens"],
                     spec["repeats"], spec["perplexity_tokens"])
    Path(out_path).write_text(json.dumps(result, indent=2))


# ---------------------------------------------------------------- parent

def measure_in_subprocess(model_dir, text, prompt_tokens=128, max_tokens=64, repeats=3, perplexity_tokens=1024,
                          env=None):
    """measure() in a fresh Python process (its own memory peak, caches, BLAS setting)."""
    with tempfile.TemporaryDirectory(prefix="omnilm-bench-") as tmp:
        spec, out, text_file = Path(tmp) / "spec.json", Path(tmp) / "result.json", Path(tmp) / "text.txt"
        text_file.write_text(text)
        spec.write_text(json.dumps({"model": str(model_dir), "text_file": str(text_file),
                                    "prompt_tokens": prompt_tokens, "max_tokens": max_tokens, "repeats": repeats,
                                    "perplexity_tokens": perplexity_tokens}))
        rc = subprocess.call([sys.executable, "-m", "omnilm.benchmark", str(spec), str(out)], cwd=REPO_DIR,
                             env={**os.environ, **(env or {})})
        if rc != 0 or not out.exists():
            raise UserError(f"benchmarking {display(model_dir)} failed (exit {rc}); see the lines above")
        return json.loads(out.read_text())


def spread(values):
    """(median, min, max) of repeated measurements."""
    return statistics.median(values), min(values), max(values)


def to_row(result):
    """One CSV row: medians with min-max for every repeated figure."""
    row = {k: result.get(k) for k in CSV_COLUMNS}
    for key in ("load_s", "prompt_tps", "generation_tps"):
        row[key], row[f"{key}_min"], row[f"{key}_max"] = (round(v, 3) for v in spread(result[key]))
    for key in ("peak_memory_gb", "peak_rss_gb", "perplexity"):
        row[key] = round(result[key], 3) if result[key] is not None else None
    return row


def write_csv(rows, path):
    import csv

    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=CSV_COLUMNS)
        writer.writeheader()
        writer.writerows(rows)


def _change(fraction, up, down):
    return f"{abs(fraction):.0%} {up if fraction >= 0 else down}"


def improvement(row, base):
    """The seed's wording, relative to the first model: 44% smaller, 42% less memory, 58% faster."""
    parts = [_change(1 - row["size_mb"] / base["size_mb"], "smaller", "larger"),
             _change(1 - row["peak_memory_gb"] / base["peak_memory_gb"], "less memory", "more memory"),
             _change(row["generation_tps"] / base["generation_tps"] - 1, "faster", "slower")]
    if row["perplexity"] and base["perplexity"]:
        parts.append(f"perplexity x{row['perplexity'] / base['perplexity']:.2f}")
    return ", ".join(parts)


def markdown(rows, machine, text_source):
    first = rows[0]
    fmt = lambda row, k, d: f"{row[k]:.{d}f} ({row[k + '_min']:.{d}f}-{row[k + '_max']:.{d}f})"  # noqa: E731
    lines = [f"Machine: {machine_line(machine)}", "",
             f"Prompt {first['prompt_tokens']} tokens, {first['generated_tokens']} generated tokens (greedy), "
             f"{first['repeats']} repeats after a warm-up: median (min-max). Perplexity on "
             f"{first['perplexity_tokens']} held-out tokens of {text_source}. Each model in its own process.", "",
             f"| model | quantization | bits/weight | size (MB) | load (s) | prompt tok/s | generation tok/s | "
             f"peak memory (GB) | perplexity | vs {first['model']} |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for row in rows:
        ppl = f"{row['perplexity']:.2f}" if row["perplexity"] else "-"
        vs = "baseline" if row is first else improvement(row, first)
        lines.append(f"| {row['model']} | {row['quantization']} | {row['bits_per_weight']:.2f} | {row['size_mb']:.0f} | "
                     f"{fmt(row, 'load_s', 2)} | {fmt(row, 'prompt_tps', 1)} | {fmt(row, 'generation_tps', 1)} | "
                     f"{row['peak_memory_gb']:.2f} | {ppl} | {vs} |")
    methods = {r["perplexity_method"] for r in rows if r["perplexity_method"]}
    if methods:
        lines += ["", "Perplexity computed with: " + "; ".join(sorted(methods)) + "."]
    return "\n".join(lines) + "\n"


def machine_line(machine):
    return ", ".join(f"{k} {v}" for k, v in machine.items())


def plot(rows, path, machine):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [r["model"] for r in rows]
    panels = [("size on disk (MB)", "size_mb", False), ("peak memory (GB)", "peak_memory_gb", False),
              ("generation tok/s", "generation_tps", True), ("perplexity (lower is better)", "perplexity", False)]
    fig, axes = plt.subplots(1, len(panels), figsize=(4 * len(panels), 3.8))
    colors = plt.cm.tab10.colors
    for ax, (title, key, ranged) in zip(axes, panels):
        values = [r[key] or 0 for r in rows]
        errors = None
        if ranged:
            errors = [[v - r[f"{key}_min"] for v, r in zip(values, rows)],
                      [r[f"{key}_max"] - v for v, r in zip(values, rows)]]
        ax.bar(range(len(rows)), values, yerr=errors, capsize=4, color=colors[:len(rows)])
        ax.set_xticks(range(len(rows)), names, rotation=20, ha="right", fontsize=8)
        ax.set_title(title, fontsize=10)
        for i, v in enumerate(values):
            top = errors[1][i] + v if errors else v  # above the error bar
            ax.annotate(f"{v:.3g}", (i, top), ha="center", va="bottom", fontsize=8)
    fig.suptitle(f"{machine.get('cpu', '')} / mlx {machine.get('mlx_device', '')} / {machine.get('blas', '')}",
                 fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    import omnilm  # noqa: F401  (fast BLAS before mlx; already imported by `python -m`)
    from omnilm.errors import run_main

    run_main(lambda: child_main(*sys.argv[1:3]))
