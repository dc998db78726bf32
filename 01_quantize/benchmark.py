"""Compare text models on this machine: size, bits/weight, load time, speed, memory, perplexity.

Examples:
  python 01_quantize/benchmark.py                      # demo float / 8-bit / 4-bit -> results/benchmark/
  python 01_quantize/benchmark.py --models models/demo-omni-Text models/demo-omni-Text-4bit --repeats 5
  python 01_quantize/benchmark.py --models models/My-Text models/My-Text-4bit \\
      --text-file data/cpt/my_paper/valid.jsonl --output results/my-benchmark

Each model runs in its own process (numbers never bleed from one into the next):
load (repeated), a warm-up, then N repeats of a greedy generation (prompt tok/s,
generation tok/s), peak memory, and perplexity on held-out text: --text-file (a
.jsonl of {"text"} lines or a .txt); without it the newest data/cpt/*/valid.jsonl,
else a built-in passage (01_quantize/benchmark_passage.txt). Writes benchmark.csv,
benchmark.md (with the change relative to the first model), benchmark.png and
manifest.json (with the machine: figures only compare on one machine).
"""
import json

import omnilm  # noqa: F401  (fast BLAS before mlx)
from omnilm.atomic import staged_dir
from omnilm.benchmark import (default_text_file, machine_line, markdown, measure_in_subprocess, plot, read_text,
                              to_row, write_csv)
from omnilm.config import make_parser, resolve_options
from omnilm.errors import UserError, run_main
from omnilm.manifest import fingerprint, write_manifest
from omnilm.paths import demo_text_model, display, resolve, results_dir
from omnilm.quantize import text_model_config
from omnilm.runtime import machine_summary

DEFAULTS = {"models": None, "output": None, "repeats": 3, "text_file": None, "prompt_tokens": 64,
            "max_tokens": 32, "perplexity_tokens": 1024}


def default_models():
    base = demo_text_model()
    found = [m for m in (base, base.parent / f"{base.name}-8bit", base.parent / f"{base.name}-4bit") if m.exists()]
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


def main():
    p = make_parser(__doc__)
    p.add_argument("--models", nargs="+", metavar="DIR", help="model folders, the first is the reference "
                   "(default: models/demo-omni-Text and its -8bit/-4bit versions)")
    p.add_argument("--output", help="results folder (default: results/benchmark)")
    p.add_argument("--repeats", type=int, help="timed repeats after the warm-up (default 3)")
    p.add_argument("--text-file", help="held-out text: .jsonl of {\"text\"} lines or .txt (default: see above)")
    p.add_argument("--prompt-tokens", type=int, help="prompt length (default 64)")
    p.add_argument("--max-tokens", type=int, help="tokens generated per repeat (default 32)")
    p.add_argument("--perplexity-tokens", type=int, help="held-out tokens scored for perplexity, 0 to skip "
                   "(default 1024)")
    p.add_argument("--config", help="YAML file with these options (section: benchmark)")
    args = resolve_options(p.parse_args(), DEFAULTS, section="benchmark")
    repeats = positive("--repeats", args.repeats)
    prompt_tokens = positive("--prompt-tokens", args.prompt_tokens)
    max_tokens = positive("--max-tokens", args.max_tokens)
    ppl_tokens = positive("--perplexity-tokens", args.perplexity_tokens, allow_zero=True)

    models = [resolve(m) for m in args.models] if args.models else default_models()
    for m in models:  # every folder must load as a text model before any process starts
        text_model_config(m)
    text_file = resolve(args.text_file) if args.text_file else default_text_file()
    text = read_text(text_file)
    output = resolve(args.output) if args.output else results_dir() / "benchmark"
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
    with staged_dir(output, force=True, what="results folder") as tmp:  # results are always regenerated
        write_csv(rows, tmp / "benchmark.csv")
        (tmp / "benchmark.md").write_text(table)
        (tmp / "results.json").write_text(json.dumps(results, indent=2) + "\n")
        plot(rows, tmp / "benchmark.png", machine)
        write_manifest(tmp, "benchmark", args, inputs={"text_file": fingerprint(text_file),
                                                      **{f"model {display(m)}": fingerprint(m) for m in models}},
                       metrics=metrics, machine=machine, models=[display(m) for m in models])
    print("\n" + table)
    print(f"written: {display(output)}/benchmark.csv, benchmark.md, benchmark.png, manifest.json")


if __name__ == "__main__":
    run_main(main)
