"""Stage 01's benchmark: speed, memory and quality of text models, one process per model.

The parent (run_benchmark) starts `python -m omnilm.benchmark SPEC OUT` for each
model so that memory and caches never bleed from one model into the next; the
child (measure) loads the model, warms up, times N repeats and computes the
perplexity, and writes its figures as JSON for the parent to collect."""
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from omnilm.errors import UserError
from omnilm.jsonl import json_lines
from omnilm.paths import REPO_DIR, cpt_data_root, demo_text_model, display, quantized_dir

BUILTIN_PASSAGE = REPO_DIR / "01_quantize" / "benchmark_passage.txt"
PERPLEXITY_WINDOW = 512

# ---------------------------------------------------------------- held-out text

def read_text(path):
    """The text of a .jsonl of {"text"} lines (joined by blank lines) or of a plain file."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"text file {display(path)} does not exist")
    if path.suffix == ".jsonl":
        def bad_line(n, _=None):
            return f"{display(path)} line {n} is not a JSON object with a \"text\" field"

        texts = []
        for n, row in json_lines(path, bad_line):
            try:
                texts.append(row["text"])
            except (KeyError, TypeError):
                raise UserError(bad_line(n))
        text = "\n\n".join(texts)
    else:
        text = path.read_text()
    if not text.strip():
        raise UserError(f"text file {display(path)} holds no text")
    return text


def default_text_file():
    """The newest document validation split (data/cpt/*/valid.jsonl), else the built-in passage."""
    splits = sorted(cpt_data_root().glob("*/valid.jsonl"), key=lambda p: p.stat().st_mtime)
    return splits[-1] if splits else BUILTIN_PASSAGE


# ---------------------------------------------------------------- child: one model

def timed_generation(model, prompt_ids, max_tokens):
    """Greedy generation of exactly max_tokens (no stop at EOS): prompt and generation tok/s."""
    import mlx.core as mx

    from omnilm.mlx_lm_api import generate_steps

    start = time.perf_counter()
    first = last = None
    n = 0
    for _token, _ in generate_steps(mx.array(prompt_ids), model, max_tokens=max_tokens):
        last = time.perf_counter()
        first = first or last
        n += 1
    return len(prompt_ids) / (first - start), (n - 1) / (last - first) if n > 1 else 0.0


def warm_then_time(run, repeats, on_run=None):
    """[run() for each timed repeat], after one untimed run of the very same call.

    The warm-up must have the timed shape (prompt length and generated tokens): on a
    GPU a shape first met inside a timed repeat pays for kernel compilation there (on
    an H200, a warm-up shorter than the timed run left one repeat's prompt rate orders
    of magnitude below the other's)."""
    run()
    if on_run:
        on_run()
    results = []
    for _ in range(repeats):
        results.append(run())
        if on_run:
            on_run()
    return results


def for_perplexity(model, device):
    """On CPU, the quantized layers dequantized to float32: the same weight values, but the
    float matmul uses BLAS where CPU quantized kernels crawl on long inputs (~20x slower)."""
    import mlx.core as mx
    from mlx.utils import tree_map

    from omnilm.mlx_lm_api import dequantize_weights

    if device != "cpu":
        return model, "quantized kernels"
    model = dequantize_weights(model)
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
    timings = warm_then_time(lambda: timed_generation(model, ids[:prompt_tokens], max_tokens), repeats,
                             on_run=progress.update)
    prompt_tps, generation_tps = [p for p, _ in timings], [g for _, g in timings]
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


# ---------------------------------------------------------------- the stage

def default_models():
    base = demo_text_model()
    found = [m for m in (base, quantized_dir(base, 8), quantized_dir(base, 4)) if m.exists()]
    if not found:
        raise UserError(f"no models to benchmark: {display(base)} does not exist (run 00_extract and "
                        f"01_quantize/quantize.py first, or pass --models)")
    return found


def positive(name, value, allow_zero=False):
    try:
        value = int(value)
    except (TypeError, ValueError):
        raise UserError(f"{name} must be a whole number, got {value!r}")
    if value < (0 if allow_zero else 1):
        raise UserError(f"{name} must be {'0 or more' if allow_zero else 'at least 1'}, got {value}")
    return value


def run_benchmark(args):
    """Stage 01's benchmark for resolved options (models, output, repeats, text_file,
    prompt_tokens, max_tokens, perplexity_tokens, force); returns the results folder."""
    from omnilm.atomic import check_output, staged_dir, write_csv_atomic
    from omnilm.benchmark_report import CSV_COLUMNS, machine_line, markdown, plot, to_row
    from omnilm.manifest import fingerprint, write_manifest
    from omnilm.paths import benchmark_dir, resolve
    from omnilm.quantize import text_model_config
    from omnilm.runtime import machine_summary

    repeats = positive("--repeats", args.repeats)
    prompt_tokens = positive("--prompt-tokens", args.prompt_tokens)
    max_tokens = positive("--max-tokens", args.max_tokens)
    ppl_tokens = positive("--perplexity-tokens", args.perplexity_tokens, allow_zero=True)

    models = [resolve(m) for m in args.models] if args.models else default_models()
    for m in models:  # every folder must load as a text model before any process starts
        text_model_config(m)
    text_file = resolve(args.text_file) if args.text_file else default_text_file()
    text = read_text(text_file)
    # like every stage's: only a results folder of its own is replaced, and only with --force
    output = check_output(resolve(args.output) if args.output else benchmark_dir(),
                          getattr(args, "force", False), "results folder")
    machine = machine_summary()
    print(f"machine: {machine_line(machine)}")
    print(f"held-out text: {display(text_file)}; {len(models)} model(s), one process each")

    results = []
    for i, m in enumerate(models, 1):
        print(f"[{i}/{len(models)}] {display(m)}", flush=True)
        r = measure_in_subprocess(m, text, prompt_tokens, max_tokens, repeats, ppl_tokens)
        results.append(r)
        ppl = f", perplexity {r['perplexity']:.2f}" if r["perplexity"] else ""
        print(f"  {r['bits_per_weight']:.2f} bits/weight, {r['size_mb']:.0f} MB, generation "
              f"{sorted(r['generation_tps'])[len(r['generation_tps']) // 2]:.1f} tok/s, "
              f"peak {r['peak_memory_gb']:.2f} GB{ppl}", flush=True)
    rows = [to_row(r) for r in results]
    table = markdown(rows, machine, display(text_file))

    first, last = rows[0], rows[-1]
    metrics = {f"{r['model']} tok/s": r["generation_tps"] for r in rows}
    metrics.update({f"{r['model']} perplexity": r["perplexity"] for r in rows})
    if len(rows) > 1 and first["perplexity"] and last["perplexity"]:
        metrics["perplexity ratio last/first"] = round(last["perplexity"] / first["perplexity"], 3)
        metrics["peak memory ratio last/first"] = round(last["peak_memory_gb"] / first["peak_memory_gb"], 3)
    with staged_dir(output, force=getattr(args, "force", False), what="results folder") as tmp:
        write_csv_atomic(tmp / "benchmark.csv", rows, CSV_COLUMNS)
        (tmp / "benchmark.md").write_text(table)
        (tmp / "results.json").write_text(json.dumps(results, indent=2) + "\n")
        plot(rows, tmp / "benchmark.png", machine)
        write_manifest(tmp, "benchmark", args, inputs={"text_file": fingerprint(text_file),
                                                      **{f"model {display(m)}": fingerprint(m) for m in models}},
                       metrics=metrics, machine=machine, models=[display(m) for m in models])
    print("\n" + table)
    print(f"written: {display(output)}/benchmark.csv, benchmark.md, benchmark.png, manifest.json")
    return output


if __name__ == "__main__":
    import omnilm  # noqa: F401  (fast BLAS before mlx; already imported by `python -m`)
    from omnilm.errors import run_main

    run_main(lambda: child_main(*sys.argv[1:3]))
