"""What the two CPU defaults are worth: the OpenBLAS preload and float32 quantization scales.

Examples:
  python benchmarks/cpu_speed_bench.py                  # -> results/cpu_speed_bench/
  python benchmarks/cpu_speed_bench.py --rounds 5 --prompt-tokens 256 --scales-max-tokens 16

Side by side in one run, round after round, the order reversed every other round (so
a busy machine slows every variant alike), each variant in its own process through
the benchmark's child:
  - the float model with OpenBLAS (the default) vs the mlx wheel's reference BLAS
    (OMNILM_BLAS=reference);
  - the model quantized to 4 bits with float32 scales (the CPU default) vs bfloat16
    scales (what a GPU run or a downloaded mlx-community model would have).
Medians (min-max) of prompt and generation tok/s over the rounds, and the ratios.
The scales comparison uses a short prompt and generation: bfloat16 scales decode at
~0.5 tok/s here. Writes cpu_speed_bench.json, .md and manifest.json.
"""
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
from functools import partial
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from benchmarks.harness import alternate, machine_line, results_folder, write_results_manifest  # noqa: E402
from omnilm.atomic import write_text_atomic  # noqa: E402
from omnilm.benchmark import BUILTIN_PASSAGE, measure_in_subprocess  # noqa: E402
from omnilm.config import make_parser  # noqa: E402
from omnilm.errors import run_main  # noqa: E402
from omnilm.paths import demo_text_model, display, resolve  # noqa: E402

COMPARISONS = ("OpenBLAS vs reference BLAS (float model)", "float32 vs bfloat16 scales (4-bit model)")


def quantize_4bit(model, output, dtype):
    cmd = [sys.executable, str(REPO / "01_quantize" / "quantize.py"), "--model", str(model), "--bits", "4",
           "--dtype", dtype, "--output", str(output), "--force"]
    if subprocess.call(cmd, stdout=subprocess.DEVNULL) != 0:
        raise SystemExit(f"quantizing {model} with {dtype} scales failed")


def summary(values):
    return {"median": round(statistics.median(values), 3), "min": round(min(values), 3), "max": round(max(values), 3)}


def main():
    p = make_parser(__doc__)
    p.add_argument("--model", help="float text model (default: models/demo-omni-Text)")
    p.add_argument("--rounds", type=int, default=5, help="rounds; each runs every variant once (default 5)")
    p.add_argument("--prompt-tokens", type=int, default=128, help="BLAS comparison: prompt length (default 128)")
    p.add_argument("--max-tokens", type=int, default=32, help="BLAS comparison: tokens generated (default 32)")
    p.add_argument("--scales-prompt-tokens", type=int, default=16,
                   help="scales comparison: prompt length (default 16; bfloat16 scales are very slow)")
    p.add_argument("--scales-max-tokens", type=int, default=8, help="scales comparison: tokens generated (default 8)")
    p.add_argument("--output", help="results folder (default results/cpu_speed_bench)")
    args = p.parse_args()
    out = results_folder("cpu_speed_bench", args.output)
    model = resolve(args.model) if args.model else demo_text_model()
    if not (model / "config.json").exists():
        raise SystemExit(f"{display(model)} is not a model folder; build the demo first (00_extract)")
    work = Path(tempfile.mkdtemp(prefix="cpu-speed-bench-"))
    blas = (args.prompt_tokens, args.max_tokens)
    scales = (args.scales_prompt_tokens, args.scales_max_tokens)
    # (comparison, variant, folder, extra environment, (prompt tokens, generated tokens)); default first
    variants = [(COMPARISONS[0], "float, OpenBLAS", model, {}, blas),
                (COMPARISONS[0], "float, reference BLAS", model, {"OMNILM_BLAS": "reference"}, blas),
                (COMPARISONS[1], "4-bit, float32 scales", work / "q4-float32", {}, scales),
                (COMPARISONS[1], "4-bit, bfloat16 scales", work / "q4-bfloat16", {}, scales)]
    try:
        quantize_4bit(model, work / "q4-float32", "float32")
        quantize_4bit(model, work / "q4-bfloat16", "bfloat16")
        text = BUILTIN_PASSAGE.read_text()
        measures = {name: partial(measure_in_subprocess, folder, text, prompt_tokens, max_tokens, repeats=1,
                                  perplexity_tokens=0, env=env)
                    for _, name, folder, env, (prompt_tokens, max_tokens) in variants}
        runs = {name: timed.results for name, timed in alternate(measures, args.rounds).items()}
    finally:
        shutil.rmtree(work, ignore_errors=True)

    rows = {}
    for name, results in runs.items():
        rows[name] = {"blas": results[0]["blas"], "scales_dtype": results[0]["scales_dtype"],
                      "bits_per_weight": results[0]["bits_per_weight"],
                      "prompt_tps": summary([x["prompt_tps"][0] for x in results]),
                      "generation_tps": summary([x["generation_tps"][0] for x in results])}
    if "reference" not in rows["float, reference BLAS"]["blas"] or "OpenBLAS" not in rows["float, OpenBLAS"]["blas"]:
        raise SystemExit("the BLAS setting did not take effect in the children: " +
                         "; ".join(f"{n}: {rows[n]['blas']}" for n in ("float, OpenBLAS", "float, reference BLAS")))
    ratios = {}
    for title in COMPARISONS:
        (_, fast, *_, tokens), (_, slow, *_) = [v for v in variants if v[0] == title]
        ratios[title] = {k: round(rows[fast][k]["median"] / rows[slow][k]["median"], 2)
                         for k in ("prompt_tps", "generation_tps")}
        ratios[title].update(prompt_tokens=tokens[0], generated_tokens=tokens[1])
    result = {"machine": machine_line(), "model": display(model), "rounds": args.rounds, "variants": rows,
              "speedups": ratios}
    write_text_atomic(out / "cpu_speed_bench.json", json.dumps(result, indent=2) + "\n")
    text = markdown(result)
    write_text_atomic(out / "cpu_speed_bench.md", text)
    write_results_manifest(out, "cpu_speed_bench", args, metrics={"speedups": ratios})
    print(text + f"-> {display(out)}/cpu_speed_bench.md, .json")


def markdown(result):
    fmt = lambda s: f"{s['median']:.2f} ({s['min']:.2f}-{s['max']:.2f})"  # noqa: E731
    lines = ["# CPU speed: OpenBLAS preload and quantization scales' dtype", "",
             f"Machine: {result['machine']}", "",
             f"{result['model']}; {result['rounds']} rounds, each variant in its own process, once a round (the "
             f"order reversed every other round); median (min-max).", "",
             "| variant | BLAS | scales | bits/weight | prompt tok/s | generation tok/s |", "|---|---|---|---|---|---|"]
    for name, row in result["variants"].items():
        lines.append(f"| {name} | {row['blas'].split(' (')[0]} | {row['scales_dtype'] or '-'} | "
                     f"{row['bits_per_weight']:.2f} | {fmt(row['prompt_tps'])} | {fmt(row['generation_tps'])} |")
    lines += ["", "| default vs alternative | prompt / generated tokens | prompt speedup | generation speedup |",
              "|---|---|---|---|"]
    lines += [f"| {t} | {v['prompt_tokens']} / {v['generated_tokens']} | {v['prompt_tps']}x | {v['generation_tps']}x |"
              for t, v in result["speedups"].items()]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    run_main(main)
