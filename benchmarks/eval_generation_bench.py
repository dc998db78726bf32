"""Evaluation answers: one question at a time (stream_generate) vs all of a stage batched.

Examples:
  python benchmarks/eval_generation_bench.py                 # demo base, cpt, sft + open book, 3 repeats
  python benchmarks/eval_generation_bench.py --stages base=models/demo-omni-Text --repeats 5 --no-open-book

The runs compare_stages makes (same questions, greedy, same token limit), each model
loaded once; per repeat, the old path (generate_answer per question) and the new one
(generate_answers: one mlx-lm BatchGenerator) answer every question, alternating
which goes first so machine load hits both alike. Reports the median seconds of each
(all runs summed; loading and NLL excluded), their ratio, and whether every answer
is identical. Writes results/eval_generation_bench/bench.json and bench.md.
"""
import omnilm  # noqa: F401  (fast BLAS before mlx)

import json
import statistics
import time

from omnilm.atomic import write_text_atomic
from omnilm.config import make_parser
from omnilm.errors import run_main
from omnilm.evaluation import (asked, default_stages, fuse_lora, generate_answer, generate_answers, load_questions,
                               parse_stage, plan_runs)
from omnilm.paths import REPO_DIR, display, resolve, results_dir
from omnilm.runtime import machine_summary


def timed(fn):
    started = time.perf_counter()
    answers = fn()
    return answers, time.perf_counter() - started


def bench_run(model_dir, adapter, messages, max_tokens, repeats):
    """{'old': [seconds per repeat], 'new': [...], 'differ': {(index, old answer, new answer)}}."""
    from omnilm.chat import load_model

    model, tokenizer = load_model(model_dir, adapter)
    fuse_lora(model)
    generate_answers(model, tokenizer, messages[:1], 4)  # warm-up (kernels, caches)
    ways = {"old": lambda: [generate_answer(model, tokenizer, m, max_tokens)[0] for m in messages],
            "new": lambda: generate_answers(model, tokenizer, messages, max_tokens)[0]}
    out = {"old": [], "new": [], "differ": set()}
    for r in range(repeats):
        got = {}
        for way in (("old", "new") if r % 2 == 0 else ("new", "old")):
            got[way], seconds = timed(ways[way])
            out[way].append(seconds)
        out["differ"] |= {(i, a, b) for i, (a, b) in enumerate(zip(got["old"], got["new"])) if a != b}
        print(f"  repeat {r + 1}: one at a time {out['old'][-1]:.1f}s, batched {out['new'][-1]:.1f}s", flush=True)
    return out


def medians(old, new):
    old, new = statistics.median(old), statistics.median(new)
    return {"median_old_seconds": round(old, 1), "median_new_seconds": round(new, 1), "speedup": round(old / new, 2)}


def write_results(result, out):
    lines = ["# Evaluation generation: one question at a time vs batched", "",
             f"Greedy, max {result['max_tokens']} tokens, {result['repeats']} repeats alternating; seconds to answer "
             "every question (model loading and NLL excluded); medians.", "",
             "| run | questions | one at a time (s) | batched (s) | speed-up | identical answers |",
             "|---|---|---|---|---|---|"]
    for name, r in result["runs"].items():
        lines.append(f"| {name} | {r['questions']} | {r['median_old_seconds']} | {r['median_new_seconds']} | "
                     f"{r['speedup']}x | {'yes' if r['identical'] else 'no'} |")
    lines.append(f"| **all** | {sum(r['questions'] for r in result['runs'].values())} | "
                 f"{result['median_old_seconds']} | {result['median_new_seconds']} | {result['speedup']}x | "
                 f"{'yes' if result['identical'] else 'no'} |")
    lines += ["", "Machine: " + ", ".join(f"{k} {v}" for k, v in result["machine"].items())]
    for d in result["differences"]:
        lines.append(f"- {d['run']} {d['id']}: one at a time {d['old']!r} vs batched {d['new']!r}")
    write_text_atomic(out / "bench.md", "\n".join(lines) + "\n")
    write_text_atomic(out / "bench.json", json.dumps(result, indent=2) + "\n")


def main():
    p = make_parser(__doc__)
    p.add_argument("--stages", nargs="+", help="name=MODEL or name=MODEL+ADAPTER ... (default: demo base, cpt, sft)")
    p.add_argument("--questions", default=str(REPO_DIR / "10_stage1_cpt" / "demo_paper.questions.jsonl"))
    p.add_argument("--max-tokens", type=int, default=48)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--no-open-book", dest="open_book", action="store_false")
    p.add_argument("--output", help="results folder (default results/eval_generation_bench)")
    args = p.parse_args()
    stages = ([(n, resolve(m), resolve(a) if a else None) for n, m, a in map(parse_stage, args.stages)]
              if args.stages else default_stages())
    runs = plan_runs(stages, load_questions(resolve(args.questions)), args.open_book)
    per_run, differences, totals = {}, [], {"old": [0.0] * args.repeats, "new": [0.0] * args.repeats}
    for name, model_dir, adapter, questions, open_book in runs:
        print(f"{name}: {len(questions)} questions", flush=True)
        r = bench_run(model_dir, adapter, [asked(q, open_book) for q in questions], args.max_tokens, args.repeats)
        mine = [{"run": name, "id": questions[i]["id"], "old": a, "new": b} for i, a, b in sorted(r["differ"])]
        differences += mine
        for way in totals:
            totals[way] = [t + s for t, s in zip(totals[way], r[way])]
        per_run[name] = {"questions": len(questions), "old_seconds": [round(s, 2) for s in r["old"]],
                         "new_seconds": [round(s, 2) for s in r["new"]], **medians(r["old"], r["new"]),
                         "identical": not mine}
    result = {"max_tokens": args.max_tokens, "repeats": args.repeats, "runs": per_run,
              **medians(totals["old"], totals["new"]), "identical": not differences, "differences": differences,
              "machine": machine_summary()}
    out = resolve(args.output) if args.output else results_dir() / "eval_generation_bench"
    out.mkdir(parents=True, exist_ok=True)
    write_results(result, out)
    print((out / "bench.md").read_text() + f"-> {display(out)}/bench.md, bench.json")


if __name__ == "__main__":
    run_main(main)
