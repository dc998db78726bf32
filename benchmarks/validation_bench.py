"""Validation cost in SFT: every row once vs the whole set repeated to whole batches.

Examples:
  python benchmarks/validation_bench.py                 # demo: data/sft/demo_paper + adapters/demo_paper-sft
  python benchmarks/validation_bench.py --batch-size 4 --repeats 5 --output results/validation_bench

mlx-lm's batching drops a partial last batch. The trainer used to repeat the
validation set until it filled whole batches (25 rows at batch 4: 100 rows a
pass); it now evaluates every row once (omnilm.training.every_row_batches). Both
are timed side by side, alternating, on the same model and adapter, and must give
the same loss. Writes validation_bench.{json,md}.
"""
import json
import math
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
import omnilm  # noqa: E402,F401  (fast BLAS before mlx)
from omnilm.config import make_parser  # noqa: E402
from omnilm.errors import run_main  # noqa: E402
from omnilm.paths import adapter_dir, demo_text_model, display, resolve, results_dir, sft_data_dir  # noqa: E402


def repeated_batches(dataset, batch_size, max_seq_length, comm_group=None):
    """The former way: the set repeated to a whole number of batches."""
    from mlx_lm.tuner.trainer import iterate_batches

    from omnilm.training import Rows

    n = len(dataset)
    times = batch_size // math.gcd(n, batch_size)
    yield from iterate_batches(Rows(dataset, [i % n for i in range(n * times)]), batch_size, max_seq_length,
                               comm_group=comm_group)


def main():
    p = make_parser(__doc__)
    p.add_argument("--model", default=str(demo_text_model()))
    p.add_argument("--adapter", default=str(adapter_dir()))
    p.add_argument("--data", default=str(sft_data_dir()))
    p.add_argument("--batch-size", type=int, default=4)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--output", default=str(results_dir() / "validation_bench"))
    args = p.parse_args()
    from mlx_lm.tuner.trainer import evaluate

    from omnilm.chat import load_model
    from omnilm.training import every_row_batches, load_split

    model, tokenizer = load_model(resolve(args.model), resolve(args.adapter))
    valid = load_split(resolve(args.data) / "valid.jsonl", tokenizer, True)
    ways = {"every row once": every_row_batches, "repeated to whole batches": repeated_batches}
    seconds, losses = {k: [] for k in ways}, {}
    for _ in range(args.repeats):
        for name, batches in ways.items():
            start = time.perf_counter()
            losses[name] = evaluate(model, valid, args.batch_size, -1, iterate_batches=batches)
            seconds[name].append(time.perf_counter() - start)
    med = {k: statistics.median(v) for k, v in seconds.items()}
    result = {"rows": len(valid), "batch_size": args.batch_size, "repeats": args.repeats, "seconds": seconds,
              "median_seconds": med, "loss": losses,
              "speedup": med["repeated to whole batches"] / med["every row once"],
              "model": display(resolve(args.model)), "adapter": display(resolve(args.adapter))}
    out = resolve(args.output)
    out.mkdir(parents=True, exist_ok=True)
    (out / "validation_bench.json").write_text(json.dumps(result, indent=1))
    lines = [f"# Validation pass: {len(valid)} rows, batch {args.batch_size}, {args.repeats} repeats", "",
             "| way | median s | min-max s | loss |", "|---|---|---|---|"]
    lines += [f"| {k} | {med[k]:.2f} | {min(v):.2f}-{max(v):.2f} | {losses[k]:.5f} |" for k, v in seconds.items()]
    lines += ["", f"every row once is {result['speedup']:.2f}x faster"]
    (out / "validation_bench.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    if not math.isclose(*losses.values(), rel_tol=1e-3):
        raise SystemExit("the two ways gave different losses")


if __name__ == "__main__":
    run_main(main)
