"""Time to first token and tok/s: the chat app's generation path vs plain mlx-lm.

Examples:
  python benchmarks/app_vs_generate.py                      # demo model -> results/app_vs_generate/
  python benchmarks/app_vs_generate.py --model models/demo-omni-Text --adapter adapters/demo_paper-sft \\
      --repeats 5 --max-tokens 64

Same loaded model, same chat-templated prompt, greedy decoding, the three ways
taking turns in every repeat, the order reversed every other one (so machine load
hits them alike); medians with min-max. "app" is omnilm.chat_session.stream_reply,
the function the app streams from (think-tag splitting, stats, lock included; the
Streamlit page updates are not). "mlx_lm.generate" is timed as a whole (it returns
text only); its first token is timed through mlx_lm.stream_generate, which generate
wraps. Writes app_vs_generate.json and manifest.json.
"""
import json
import statistics
import sys
import time
from pathlib import Path

import omnilm  # noqa: F401  (fast BLAS before mlx)
from omnilm.atomic import write_text_atomic
from omnilm.config import make_parser
from omnilm.errors import UserError, run_main
from omnilm.paths import demo_text_model, display, resolve

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository, for benchmarks.harness
from benchmarks.harness import alternate, machine_line, results_folder, write_results_manifest  # noqa: E402

QUESTION = "Explain in a few sentences how a lighthouse helps ships at night."


def time_stream_generate(model, tokenizer, prompt, max_tokens):
    from mlx_lm import stream_generate

    started, first, last, text = time.perf_counter(), None, None, ""
    for last in stream_generate(model, tokenizer, prompt, max_tokens=max_tokens):
        first = first or time.perf_counter() - started
        text += last.text
    wall = time.perf_counter() - started
    return {"ttft_s": first, "tokens": last.generation_tokens, "tok_s": last.generation_tps,
            "wall_s": wall, "text": text}


def time_generate(model, tokenizer, prompt, max_tokens):
    from mlx_lm import generate

    started = time.perf_counter()
    text = generate(model, tokenizer, prompt, max_tokens=max_tokens)
    return {"wall_s": time.perf_counter() - started, "text": text}


def time_app(model, tokenizer, messages, max_tokens, lock):
    from omnilm.chat_session import stream_reply

    started = time.perf_counter()
    for reply in stream_reply(model, tokenizer, messages, max_tokens=max_tokens, lock=lock):
        pass
    return {"ttft_s": reply.time_to_first_token_s, "tokens": reply.tokens, "tok_s": reply.tokens_per_s,
            "wall_s": time.perf_counter() - started, "text": reply.text}


def summary(runs, key):
    values = [r[key] for r in runs if r.get(key) is not None]
    return {"median": round(statistics.median(values), 4), "min": round(min(values), 4), "max": round(max(values), 4)}


def main():
    p = make_parser(__doc__)
    p.add_argument("--model", help="text model folder (default: models/demo-omni-Text)")
    p.add_argument("--adapter", help="adapter folder (default: none)")
    p.add_argument("--question", default=QUESTION)
    p.add_argument("--max-tokens", type=int, default=48)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--output", help="results folder (default results/app_vs_generate)")
    args = p.parse_args()
    out = results_folder("app_vs_generate", args.output)
    model_dir = resolve(args.model) if args.model else demo_text_model()
    adapter = resolve(args.adapter) if args.adapter else None

    from omnilm.chat import chat_prompt
    from omnilm.chat_session import ModelHolder

    if not model_dir.is_dir():
        raise UserError(f"{display(model_dir)} does not exist; build the demo model first (00_extract)")
    holder = ModelHolder()
    model, tokenizer = holder.get(model_dir, adapter)
    messages = [{"role": "user", "content": args.question}]
    prompt = chat_prompt(tokenizer, messages)
    time_app(model, tokenizer, messages, 4, holder.lock)  # warm-up: first-call allocations out of the figures
    ways = {"mlx_lm.generate": lambda: time_generate(model, tokenizer, prompt, args.max_tokens),
            "mlx_lm.stream_generate": lambda: time_stream_generate(model, tokenizer, prompt, args.max_tokens),
            "app": lambda: time_app(model, tokenizer, messages, args.max_tokens, holder.lock)}
    runs = {name: timed.results for name, timed in alternate(ways, args.repeats).items()}
    texts = {r["text"] for v in runs.values() for r in v}
    result = {
        "model": display(model_dir), "adapter": display(adapter) if adapter else None, "question": args.question,
        "prompt_tokens": len(tokenizer.encode(prompt)), "max_tokens": args.max_tokens, "repeats": args.repeats,
        "same_text_everywhere": len(texts) == 1, "machine": machine_line(),
        "figures": {name: {key: summary(v, key) for key in ("ttft_s", "tok_s", "wall_s", "tokens")
                           if any(r.get(key) is not None for r in v)} for name, v in runs.items()},
    }
    fig = result["figures"]
    result["app_over_stream_generate"] = {
        "ttft": round(fig["app"]["ttft_s"]["median"] / fig["mlx_lm.stream_generate"]["ttft_s"]["median"], 3),
        "tok_s": round(fig["app"]["tok_s"]["median"] / fig["mlx_lm.stream_generate"]["tok_s"]["median"], 3),
        "wall_vs_generate": round(fig["app"]["wall_s"]["median"] / fig["mlx_lm.generate"]["wall_s"]["median"], 3)}
    write_text_atomic(out / "app_vs_generate.json", json.dumps(result, indent=2) + "\n")
    write_results_manifest(out, "app_vs_generate", args, metrics=result["app_over_stream_generate"])
    for name, f in fig.items():
        ttft = f"first token {f['ttft_s']['median']:.3f} s, " if "ttft_s" in f else ""
        tps = f"{f['tok_s']['median']:.1f} tok/s, " if "tok_s" in f else ""
        print(f"{name:24} {ttft}{tps}total {f['wall_s']['median']:.2f} s (median of {args.repeats})")
    print(f"app / mlx-lm: {result['app_over_stream_generate']}; wrote {display(out)}/app_vs_generate.json")


if __name__ == "__main__":
    run_main(main)
