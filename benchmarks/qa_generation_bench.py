"""Q&A generation throughput: batched (mlx-lm BatchGenerator) vs one prompt at a time.

Examples:
  python benchmarks/qa_generation_bench.py                      # demo model, 6 prompts, 3 runs each
  python benchmarks/qa_generation_bench.py --prompts 12 --runs 5 --model models/demo-omni-Text

Both ways get the same stage-20 prompts, greedy, the same token limit; runs alternate
(batched, one-at-a-time, ...) so machine load hits both alike. Reports medians of
end-to-end generated tokens/s (prefill included) and their ratio, and how many
outputs agree word for word. Writes results/qa_generation_bench.json.
"""
import omnilm  # noqa: F401  (fast BLAS before mlx)

import json
import statistics
import time

from omnilm.config import make_parser
from omnilm.errors import run_main
from omnilm.paths import REPO_DIR, cpt_data_dir, demo_text_model, display, resolve, results_dir
from omnilm.runtime import machine_summary


def bench_chunks(folder):
    """The stage-10 chunks when present, else the demo paper's paragraphs."""
    path = folder / "chunks.jsonl"
    if path.is_file():
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    paras = [p for p in (REPO_DIR / "10_stage1_cpt" / "demo_paper.md").read_text().split("\n\n") if len(p) > 300]
    return [{"id": i, "text": p} for i, p in enumerate(paras)]


def one_at_a_time(model, tokenizer, prompts, max_tokens):
    from mlx_lm import stream_generate

    texts, tokens, started = [], 0, time.perf_counter()
    for prompt in prompts:
        ids = tokenizer.encode(prompt, add_special_tokens=False)
        pieces, last = [], None
        for last in stream_generate(model, tokenizer, ids, max_tokens=max_tokens):
            pieces.append(last.text)
        texts.append("".join(pieces))
        tokens += last.generation_tokens if last else 0
    return texts, tokens, time.perf_counter() - started


def main():
    from omnilm.chat import load_model
    from omnilm.qa_generation import build_prompts, generate_batched

    p = make_parser(__doc__)
    p.add_argument("--model", default=str(demo_text_model()))
    p.add_argument("--chunks", default=str(cpt_data_dir()))
    p.add_argument("--prompts", type=int, default=6)
    p.add_argument("--max-tokens", type=int, default=48)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--output", default=str(results_dir() / "qa_generation_bench.json"))
    args = p.parse_args()

    model, tokenizer = load_model(resolve(args.model))
    jobs = build_prompts(tokenizer, bench_chunks(resolve(args.chunks)), per_chunk=3)[:args.prompts]
    prompts = [j["prompt"] for j in jobs]
    generate_batched(model, tokenizer, prompts[:1], max_tokens=4)  # warm-up (kernels, caches)
    batched, single, agree = [], [], 0
    for run in range(args.runs):
        b = generate_batched(model, tokenizer, prompts, max_tokens=args.max_tokens, batch_size=args.batch_size)
        texts, tokens, seconds = one_at_a_time(model, tokenizer, prompts, args.max_tokens)
        batched.append(b.generated_tokens / b.seconds)
        single.append(tokens / seconds)
        agree = sum(x.strip() == y.strip() for x, y in zip(b.texts, texts))
        print(f"run {run + 1}: batched {batched[-1]:.1f} tok/s ({b.seconds:.1f}s), "
              f"one at a time {single[-1]:.1f} tok/s ({seconds:.1f}s)")
    result = {
        "model": display(resolve(args.model)), "prompts": len(prompts),
        "prompt_tokens": sum(len(tokenizer.encode(x, add_special_tokens=False)) for x in prompts),
        "max_tokens": args.max_tokens, "batch_size": args.batch_size, "runs": args.runs,
        "batched_tokens_per_second": [round(x, 2) for x in batched],
        "one_at_a_time_tokens_per_second": [round(x, 2) for x in single],
        "median_batched": round(statistics.median(batched), 2),
        "median_one_at_a_time": round(statistics.median(single), 2),
        "speedup": round(statistics.median(batched) / statistics.median(single), 2),
        "identical_outputs": f"{agree}/{len(prompts)}",
        "note": "end-to-end generated tokens per second, prompt processing included; greedy",
        "machine": machine_summary(),
    }
    out = resolve(args.output)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"median: batched {result['median_batched']} tok/s vs one at a time {result['median_one_at_a_time']} "
          f"tok/s = {result['speedup']}x; {result['identical_outputs']} identical outputs -> {display(out)}")


if __name__ == "__main__":
    run_main(main)
