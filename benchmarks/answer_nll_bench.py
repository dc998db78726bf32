"""Evaluation's answer NLL: logits at every position (before) vs the head and the
log-sum-exp at the answer's positions only (omnilm.evaluation.answer_nlls now).

Examples:
  python benchmarks/answer_nll_bench.py                 # demo base, cpt, sft + open book, 3 repeats
  python benchmarks/answer_nll_bench.py --stages base=models/demo-omni-Text --repeats 5 --no-open-book

The runs compare_stages makes (same questions and references), each model loaded
once; per repeat both ways score every question, alternating which goes first so
machine load hits both alike. Both batch the same rows into the same forwards; only
where the head and the log-sum-exp run differs, so the values must agree to float
rounding. Reports the median seconds of each (all runs summed), their ratio, and the
largest difference. Writes results/answer_nll_bench/bench.json and bench.md.
"""
import omnilm  # noqa: F401  (fast BLAS before mlx)

import json
import statistics
import time

from omnilm.atomic import write_text_atomic
from omnilm.benchmark_report import machine_line
from omnilm.config import make_parser
from omnilm.errors import run_main
from omnilm.evaluation import (NLL_BATCH_TOKENS, answer_ids, answer_nlls, asked, default_stages, fuse_lora,
                               load_questions, nll_batches, parse_stage, plan_runs)
from omnilm.paths import REPO_DIR, display, resolve, results_dir
from omnilm.runtime import machine_summary


def full_logit_nlls(model, tokenizer, pairs, batch_tokens=NLL_BATCH_TOKENS):
    """answer_nlls as it was: the same batches, logits and cross-entropy at every position."""
    import mlx.core as mx
    import mlx.nn as nn

    seqs = [answer_ids(tokenizer, q, r) for q, r in pairs]
    out = [None] * len(seqs)
    for rows, batch in nll_batches(seqs, tokenizer.eos_token_id, batch_tokens):
        losses = nn.losses.cross_entropy(model(batch[:, :-1]).astype(mx.float32), batch[:, 1:], reduction="none")
        for row, i in enumerate(rows):
            ids, prompt_len = seqs[i]
            out[i] = float(losses[row, prompt_len - 1:len(ids) - 1].mean())
    return out


def bench_run(model_dir, adapter, pairs, repeats):
    from omnilm.chat import load_model

    model, tokenizer = load_model(model_dir, adapter)
    fuse_lora(model)
    answer_nlls(model, tokenizer, pairs[:1])  # warm-up
    ways = {"full": full_logit_nlls, "answer": answer_nlls}
    seconds, values = {"full": [], "answer": []}, {}
    for r in range(repeats):
        for way in (("full", "answer") if r % 2 == 0 else ("answer", "full")):
            started = time.perf_counter()
            values[way] = ways[way](model, tokenizer, pairs)
            seconds[way].append(time.perf_counter() - started)
        print(f"  repeat {r + 1}: every position {seconds['full'][-1]:.1f}s, "
              f"answer positions {seconds['answer'][-1]:.1f}s", flush=True)
    gap = max(abs(a - b) / max(abs(a), 1e-9) for a, b in zip(values["full"], values["answer"]))
    return seconds, gap


def main():
    p = make_parser(__doc__)
    p.add_argument("--stages", nargs="+", help="name=MODEL or name=MODEL+ADAPTER ... (default: demo base, cpt, sft)")
    p.add_argument("--questions", default=str(REPO_DIR / "10_stage1_cpt" / "demo_paper.questions.jsonl"))
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--no-open-book", dest="open_book", action="store_false")
    p.add_argument("--output", help="results folder (default results/answer_nll_bench)")
    args = p.parse_args()
    if args.repeats < 1:
        p.error("--repeats must be at least 1")
    stages = ([(n, resolve(m), resolve(a) if a else None) for n, m, a in map(parse_stage, args.stages)]
              if args.stages else default_stages())
    runs = plan_runs(stages, load_questions(resolve(args.questions)), args.open_book)
    per_run, totals = {}, {"full": [0.0] * args.repeats, "answer": [0.0] * args.repeats}
    for name, model_dir, adapter, questions, open_book in runs:
        print(f"{name}: {len(questions)} questions", flush=True)
        pairs = [(asked(q, open_book), q["reference"]) for q in questions]
        seconds, gap = bench_run(model_dir, adapter, pairs, args.repeats)
        for way in totals:
            totals[way] = [t + s for t, s in zip(totals[way], seconds[way])]
        per_run[name] = {"questions": len(questions), "largest_relative_gap": gap,
                         **{f"{way}_seconds": [round(s, 2) for s in seconds[way]] for way in seconds}}
    full, answer = statistics.median(totals["full"]), statistics.median(totals["answer"])
    result = {"repeats": args.repeats, "runs": per_run, "median_full_seconds": round(full, 2),
              "median_answer_seconds": round(answer, 2), "ratio": round(answer / full, 2),
              "largest_relative_gap": max(r["largest_relative_gap"] for r in per_run.values()),
              "machine": machine_summary()}
    lines = ["# Evaluation answer NLL: every position vs the answer's positions", "",
             f"Machine: {machine_line(result['machine'])}", "",
             f"{args.repeats} repeats, alternating; seconds to score every question of a run; medians.", "",
             "| run | questions | every position (s) | answer positions (s) | ratio | largest relative gap |",
             "|---|---|---|---|---|---|"]
    for name, r in per_run.items():
        f, a = statistics.median(r["full_seconds"]), statistics.median(r["answer_seconds"])
        lines.append(f"| {name} | {r['questions']} | {f:.2f} | {a:.2f} | {a / f:.2f} | {r['largest_relative_gap']:.1g} |")
    lines.append(f"| **all** | {sum(r['questions'] for r in per_run.values())} | {full:.2f} | {answer:.2f} | "
                 f"{answer / full:.2f} | {result['largest_relative_gap']:.1g} |")
    out = resolve(args.output) if args.output else results_dir() / "answer_nll_bench"
    out.mkdir(parents=True, exist_ok=True)
    write_text_atomic(out / "bench.md", "\n".join(lines) + "\n")
    write_text_atomic(out / "bench.json", json.dumps(result, indent=2) + "\n")
    print((out / "bench.md").read_text() + f"-> {display(out)}/bench.md, bench.json")


if __name__ == "__main__":
    run_main(main)
