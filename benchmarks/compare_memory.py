"""Peak memory of the chat app's compare mode: three stages on one base vs one stage.

Examples:
  python benchmarks/compare_memory.py                    # demo model + its CPT and SFT adapters
  python benchmarks/compare_memory.py --models models/demo-omni-Text models/demo-omni-Text-4bit \\
      --adapters adapters/demo_paper-cpt adapters/demo_paper-sft --max-tokens 32
  OMNILM_ROOT=/data/omnilm python benchmarks/compare_memory.py --no-separate

Each setup runs in a fresh process (a peak is a process's high-water mark):
  single    the single chat: the base with the last adapter switched on, one answer;
  compare   compare mode: base + every adapter on one base (omnilm.compare), one answer each;
  separate  for reference, what compare mode avoids: one loaded model per stage, all held.
Figures: mlx's peak memory (mx.get_peak_memory, the most ever allocated by mlx at
once, loading and generating) and the process's peak RSS (VmHWM). Writes
results/compare_memory/compare_memory.csv, .md, a .png chart and manifest.json; the goal
is compare <= 1.1x single.
"""
import json
import subprocess
import sys
import time
from pathlib import Path

import omnilm  # noqa: F401  (fast BLAS before mlx)
from omnilm.config import make_parser
from omnilm.errors import UserError, run_main
from omnilm.paths import adapter_dir, demo_text_model, display, resolve

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository, for benchmarks.harness
from benchmarks.harness import machine_line, results_folder, write_results_manifest  # noqa: E402

QUESTION = "What does VELLUM stand for?"
GOAL = 1.1
SETUPS = ("single", "compare", "separate")
COLUMNS = ["model", "setup", "stages", "peak_mlx_gb", "peak_rss_gb", "active_after_gb", "adapters_mb",
           "mlx_vs_single", "rss_vs_single", "seconds"]


def child(setup, model_dir, adapters, question, max_tokens):
    """One setup in this process; returns its figures."""
    import mlx.core as mx

    from omnilm.benchmark import peak_rss_bytes
    from omnilm.chat import load_model
    from omnilm.chat_session import ModelHolder, stream_reply

    started, peaks = time.perf_counter(), []
    messages = [{"role": "user", "content": question}]

    def answer(model, tokenizer):
        peaks.append(mx.get_peak_memory())  # stream_reply resets the peak: keep what came before
        reply = list(stream_reply(model, tokenizer, messages, max_tokens=max_tokens))[-1]
        peaks.append(mx.get_peak_memory())
        return reply

    adapters_mb = ""  # the separate models hold their adapters inside each copy
    if setup == "separate":
        held = [load_model(model_dir, a) for a in [None, *adapters]]
        for model, tokenizer in held:
            answer(model, tokenizer)
        stages = len(held)
    else:
        from omnilm import compare

        holder = ModelHolder()
        stages = [compare.Stage(compare.BASE)] + [compare.Stage(Path(a).name, Path(a)) for a in adapters]
        if setup == "single":
            stages = stages[-1:]
        for stage in stages:  # build every adapter first, so the loading peaks count too
            holder.get(model_dir, stage.adapter)
            peaks.append(mx.get_peak_memory())
        for stage in stages:
            with holder.using(model_dir, stage.adapter) as (model, tokenizer):
                answer(model, tokenizer)
        adapters_mb = round(holder.switcher.nbytes() / 1e6, 2)
        stages = len(stages)
    return {"stages": stages, "peak_mlx_gb": round(max(peaks) / 1e9, 4),
            "peak_rss_gb": round(peak_rss_bytes() / 1e9, 4), "active_after_gb": round(mx.get_active_memory() / 1e9, 4),
            "adapters_mb": adapters_mb, "seconds": round(time.perf_counter() - started, 1)}


def run_setup(setup, model_dir, adapters, args):
    cmd = [sys.executable, __file__, "--child", setup, "--models", str(model_dir), "--adapters",
           *map(str, adapters), "--max-tokens", str(args.max_tokens), "--question", args.question]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        raise UserError(f"the {setup} run on {display(model_dir)} failed: "
                        f"{(done.stderr.strip().splitlines() or ['no output'])[-1]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def markdown(rows, machine, args):
    lines = ["# Compare mode: peak memory, three stages on one base vs one stage", "",
             f"Machine: {machine}. Question: {args.question!r}, greedy, {args.max_tokens} tokens max. "
             "Each setup in a fresh process. `single` = the base with one adapter (the single chat); `compare` = "
             "base + each adapter switched on one loaded base; `separate` = one loaded model per stage (reference, "
             "what compare mode avoids).", "",
             "| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(str(r[c]) for c in COLUMNS) + " |" for r in rows]
    lines.append("")
    for r in rows:
        if r["setup"] == "compare":
            ok = "meets" if r["mlx_vs_single"] <= GOAL and r["rss_vs_single"] <= GOAL else "misses"
            lines.append(f"- {r['model']}: compare mode with {r['stages']} stages peaks at {r['mlx_vs_single']}x "
                         f"(mlx) and {r['rss_vs_single']}x (RSS) of one stage: {ok} the {GOAL}x goal.")
    return "\n".join(lines) + "\n"


def chart(rows, path):
    """Peak memory per setup, one group of bars per model."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    models = list(dict.fromkeys(r["model"] for r in rows))
    setups = list(dict.fromkeys(r["setup"] for r in rows))
    fig, ax = plt.subplots(figsize=(3 + 2.5 * len(models), 4))
    width = 0.8 / len(setups)
    for i, setup in enumerate(setups):
        values = [next((r["peak_mlx_gb"] for r in rows if r["model"] == m and r["setup"] == setup), 0) for m in models]
        bars = ax.bar([x + i * width for x in range(len(models))], values, width, label=setup)
        ax.bar_label(bars, fmt="%.3f", fontsize=8)
    ax.set_xticks([x + 0.4 - width / 2 for x in range(len(models))], models)
    ax.set_ylabel("peak mlx memory (GB)")
    ax.set_title("Compare mode: stages on one base vs one stage")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main():
    p = make_parser(__doc__)
    p.add_argument("--models", nargs="+", help="text model folders (default: models/demo-omni-Text)")
    p.add_argument("--adapters", nargs="+", help="adapter folders, all for these models "
                   "(default: adapters/demo_paper-cpt adapters/demo_paper-sft)")
    p.add_argument("--question", default=QUESTION)
    p.add_argument("--max-tokens", type=int, default=32)
    p.add_argument("--no-separate", action="store_true", help="skip the one-model-per-stage reference run")
    p.add_argument("--output", help="results folder (default results/compare_memory)")
    p.add_argument("--child", choices=SETUPS, help=argparse_hidden())
    args = p.parse_args()
    models = [resolve(m) for m in args.models] if args.models else [demo_text_model()]
    adapters = [resolve(a) for a in args.adapters] if args.adapters else [adapter_dir(kind="cpt"), adapter_dir()]
    if args.child:
        print(json.dumps(child(args.child, models[0], adapters, args.question, args.max_tokens)))
        return
    out = results_folder("compare_memory", args.output)
    for path in [*models, *adapters]:
        if not path.is_dir():
            raise UserError(f"{display(path)} does not exist; run the demo pipeline first (./run_pipeline.sh)")

    from omnilm.atomic import write_csv_atomic, write_text_atomic

    setups = SETUPS[:2] if args.no_separate else SETUPS
    rows = []
    for model_dir in models:
        by_setup = {}
        for setup in setups:
            print(f"{model_dir.name}: {setup}...", file=sys.stderr, flush=True)
            by_setup[setup] = {"model": model_dir.name, "setup": setup, **run_setup(setup, model_dir, adapters, args)}
        single = by_setup["single"]
        for r in by_setup.values():
            r["mlx_vs_single"] = round(r["peak_mlx_gb"] / single["peak_mlx_gb"], 3)
            r["rss_vs_single"] = round(r["peak_rss_gb"] / single["peak_rss_gb"], 3)
            rows.append(r)
    machine = machine_line()
    write_csv_atomic(out / "compare_memory.csv", rows, COLUMNS)
    write_text_atomic(out / "compare_memory.md", markdown(rows, machine, args))
    chart(rows, out / "compare_memory.png")
    write_results_manifest(out, "compare_memory", args, metrics={"rows": rows})
    for r in rows:
        print(f"{r['model']:24} {r['setup']:9} {r['stages']} stage(s): mlx peak {r['peak_mlx_gb']:.3f} GB "
              f"({r['mlx_vs_single']}x), RSS peak {r['peak_rss_gb']:.3f} GB ({r['rss_vs_single']}x)")
    print(f"wrote {display(out / 'compare_memory.csv')}, compare_memory.md and .png ({machine})")


def argparse_hidden():
    import argparse

    return argparse.SUPPRESS  # internal: one setup in a child process


if __name__ == "__main__":
    run_main(main)
