"""Replay answers: generation stopped once the kept sentences are settled, against every answer to its end.

Examples:
  python benchmarks/replay_stop_bench.py                    # the demo model, stage 10's 191 questions, 2 repeats
  python benchmarks/replay_stop_bench.py --questions 48 --repeats 3

Stage 10 keeps of each general answer its first whole sentences up to
omnilm.replay.MAX_WORDS words, so generate_replay ends an answer as soon as it has
more words than that (omnilm.replay.past_max_words). This asks the questions stage 10
asks (same list, same control filter, same token limit, greedy, batched) both ways,
alternating which goes first, and reports the median seconds and generated tokens of
each, their ratio, and whether select_answers keeps the very same pairs from both.
Writes results/replay_stop_bench/bench.json and bench.md.
"""
import omnilm  # noqa: F401  (fast BLAS before mlx)

import json
import statistics

from omnilm.atomic import write_text_atomic
from omnilm.benchmark_report import machine_line
from omnilm.config import make_parser
from omnilm.errors import run_main
from omnilm.paths import CONTROL_QUESTIONS, REPLAY_QUESTIONS, demo_text_model, display, resolve, results_dir
from omnilm.runtime import machine_summary


def both_ways(model, tokenizer, questions, max_tokens, first):
    """{way: GenerationRun}, `first` going first."""
    from omnilm.replay import generate_replay

    ways = {"stopped": lambda: generate_replay(model, tokenizer, questions, max_tokens),
            "whole": lambda: generate_replay(model, tokenizer, questions, max_tokens, stop_when_settled=False)}
    order = [first] + [w for w in ways if w != first]
    return {way: ways[way]() for way in order}


def main():
    from omnilm.chat import load_model
    from omnilm.replay import load_replay_questions, select_answers
    from omnilm.sft_data import load_eval_questions

    p = make_parser(__doc__)
    p.add_argument("--model", help="model folder (default: the demo's text model)")
    p.add_argument("--questions", type=int, default=200, help="first N replay questions, as prepare_data.py "
                                                              "--replay (default 200)")
    p.add_argument("--max-tokens", type=int, default=64, help="as prepare_data.py --replay-max-tokens (default 64)")
    p.add_argument("--repeats", type=int, default=2, help="runs of each way (default 2)")
    p.add_argument("--output", help="results folder (default results/replay_stop_bench)")
    args = p.parse_args()
    if min(args.questions, args.max_tokens, args.repeats) < 1:
        p.error("--questions, --max-tokens and --repeats must be at least 1")
    model_dir = resolve(args.model) if args.model else demo_text_model()
    questions, _ = load_replay_questions(REPLAY_QUESTIONS, load_eval_questions(CONTROL_QUESTIONS, "control"))
    questions = questions[:args.questions]
    model, tokenizer = load_model(model_dir)

    runs, same = [], True
    for n in range(args.repeats):
        got = both_ways(model, tokenizer, questions, args.max_tokens, "stopped" if n % 2 == 0 else "whole")
        kept = {way: select_answers(questions, r.texts, r.truncated) for way, r in got.items()}
        reasons = {way: [(d["question"], d["reason"]) for d in dropped] for way, (_, dropped) in kept.items()}
        same = same and kept["stopped"][0] == kept["whole"][0] and reasons["stopped"] == reasons["whole"]
        runs.append({way: {"seconds": round(r.seconds, 2), "generated_tokens": r.generated_tokens,
                           "kept": len(kept[way][0])} for way, r in got.items()})
        print(f"repeat {n + 1}/{args.repeats}: " + ", ".join(
            f"{w} {v['seconds']}s {v['generated_tokens']} tokens {v['kept']} kept" for w, v in runs[-1].items()),
            flush=True)

    median = {way: {k: statistics.median(r[way][k] for r in runs) for k in ("seconds", "generated_tokens")}
              for way in ("stopped", "whole")}
    result = {"machine": machine_summary(), "model": display(model_dir), "questions": len(questions),
              "max_tokens": args.max_tokens, "runs": runs, "median": median, "same_pairs_kept": same,
              "time_ratio": round(median["stopped"]["seconds"] / median["whole"]["seconds"], 3)}
    out = resolve(args.output) if args.output else results_dir() / "replay_stop_bench"
    write_text_atomic(out / "bench.json", json.dumps(result, indent=1))
    text = "\n".join([
        "# Replay answers: stopped once settled against generated to the end", "",
        f"Machine: {machine_line(result['machine'])}", "",
        f"{display(model_dir)}, {len(questions)} questions, up to {args.max_tokens} tokens, greedy, batched; "
        f"{args.repeats} runs of each way, alternating which goes first.", "",
        "| way | median seconds | median generated tokens | pairs kept |", "|---|---|---|---|",
        *(f"| {way} | {median[way]['seconds']:.1f} | {median[way]['generated_tokens']:,.0f} | "
          f"{runs[0][way]['kept']} |" for way in ("stopped", "whole")), "",
        f"Time ratio (stopped / whole): {result['time_ratio']:.2f}. "
        f"select_answers keeps the same pairs (and drops the rest for the same reasons) both ways, every run: "
        f"{'yes' if same else '**no**'}."]) + "\n"
    write_text_atomic(out / "bench.md", text)
    print("\n" + text + f"-> {display(out)}/bench.md, bench.json")


if __name__ == "__main__":
    run_main(main)
