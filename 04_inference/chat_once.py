"""Ask one question to a model (+ adapter) through its chat template, streaming the answer.

Examples:
  python 04_inference/chat_once.py "What is the capital of France?"
  python 04_inference/chat_once.py --model models/demo-omni-Text --adapter adapters/demo_paper-sft "What is SCP?"
"""
import sys

import omnilm  # noqa: F401  (fast BLAS before mlx)
from omnilm.chat import ask
from omnilm.config import make_parser
from omnilm.errors import run_main
from omnilm.paths import demo_text_model, resolve


def main():
    p = make_parser(__doc__)
    p.add_argument("question")
    p.add_argument("--model", help="text model folder (default: models/demo-omni-Text)")
    p.add_argument("--adapter", help="LoRA adapter folder (default: none)")
    p.add_argument("--max-tokens", type=int, default=128)
    args = p.parse_args()
    model = resolve(args.model) if args.model else demo_text_model()
    stats = ask(model, args.question, adapter=resolve(args.adapter) if args.adapter else None,
                max_tokens=args.max_tokens, on_text=lambda t: print(t, end="", flush=True))
    print(f"\n[{stats['tokens']} tokens, {stats['generation_tps']:.1f} tok/s, "
          f"peak {stats['peak_memory_gb']:.2f} GB]", file=sys.stderr)


if __name__ == "__main__":
    run_main(main)
