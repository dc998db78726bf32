"""How much of an evaluation result is the SFT seed? Train stage 20 once per seed, evaluate all.

Examples:
  python experiments/sft_seed_spread.py                        # seeds 0 1 2 on the demo (about 25 min on 2 CPU cores)
  python experiments/sft_seed_spread.py --seeds 0 1 2 3 --train-args="--learning-rate 5e-5"

On the demo, a 135M model fine-tuned on about a hundred pairs, one seed (LoRA init
and data order) moved control accuracy from 0.60 to 0.80: compare configurations by
their spread over seeds, never by one run. Each seed trains its own adapter
(adapters/<data>-sft-seedN, one process each) from the same CPT adapter and data
(the pipeline's own adapters/<data>-sft stands for its seed, 0, when no --train-args
are given: it was trained with the defaults);
then one compare_stages run asks every adapter the same questions (no open-book
run: that upper bound does not depend on the seed). Writes seed_spread.md and
seed_spread.json (accuracy per seed for each kind: trained, heldout_fact,
paraphrase, control; median, mean, min, max) and manifest.json beside that run's
eval.* in --output.
"""
import omnilm  # noqa: F401  (fast BLAS before mlx)

import json
import shlex
import statistics
import sys
from pathlib import Path

from omnilm.atomic import write_text_atomic
from omnilm.config import make_parser
from omnilm.errors import UserError, run_main
from omnilm.evaluation import KINDS
from omnilm.paths import adapters_dir, demo_text_model, display, resolve, root, sft_data_dir
from omnilm.pipeline import run_or_fail

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository, for benchmarks.harness
from benchmarks.harness import results_folder, write_results_manifest  # noqa: E402


def spread(summary, seeds):
    """{kind: {"per_seed": [...], "mean", "min", "max"}} from compare_stages' summary,
    for the kinds that have questions."""
    table = {}
    for kind in KINDS:
        values = [summary[f"seed{s}"][kind] for s in seeds if summary[f"seed{s}"].get(f"{kind}_n")]
        if values:
            table[kind] = {"per_seed": values, "median": round(statistics.median(values), 3),
                           "mean": round(statistics.mean(values), 3), "min": min(values), "max": max(values)}
    return table


def pipeline_adapter(name, data, seed):
    """adapters/<name>-sft when the pipeline trained it finished, on `data`, with this seed
    and every other option at its default; else None."""
    from omnilm.adapters import is_complete

    own = adapters_dir() / f"{name}-sft"
    try:
        used = json.loads((own / "manifest.json").read_text())["args"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    same = used.get("seed") == seed and root() / (used.get("data") or "") == data  # the pipeline's runs: from the root
    return own if same and is_complete(own) and not used.get("config") else None


def write_report(table, seeds, train_args, out):
    lines = [f"# SFT seed spread ({len(seeds)} seeds{', train args: ' + train_args if train_args else ''})", "",
             "| kind | " + " | ".join(f"seed {s}" for s in seeds) + " | median | min-max |",
             "|---|" + "---|" * (len(seeds) + 2)]
    for kind in KINDS:
        row = table.get(kind)
        cells = ([f"{v:.2f}" for v in row["per_seed"]] + [f"{row['median']:.2f}", f"{row['min']:.2f}-{row['max']:.2f}"]
                 if row else ["-"] * (len(seeds) + 2))  # a kind without questions
        lines.append(f"| {kind} | " + " | ".join(cells) + " |")
    write_text_atomic(out / "seed_spread.md", "\n".join(lines) + "\n")
    write_text_atomic(out / "seed_spread.json", json.dumps(
        {"seeds": seeds, "train_args": train_args, "accuracy": table}, indent=2) + "\n")


def main():
    p = make_parser(__doc__)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="SFT seeds (default 0 1 2)")
    p.add_argument("--train-args", default="", help="more train_sft.py flags, one quoted string after '='")
    p.add_argument("--data", default="demo_paper", help="SFT data folder name under data/sft (default demo_paper)")
    p.add_argument("--model", help="text model (default models/demo-omni-Text)")
    p.add_argument("--questions", nargs="+", help="evaluation question files (default: compare_stages.py's own, "
                   "the demo's questions and the controls)")
    p.add_argument("--output", help="results folder (default results/sft_seed_spread)")
    args = p.parse_args()
    if len(set(args.seeds)) != len(args.seeds) or len(args.seeds) < 2:
        raise UserError("--seeds needs at least two different seeds")
    model = resolve(args.model) if args.model else demo_text_model()
    out = results_folder("sft_seed_spread", args.output)
    data = sft_data_dir(args.data)
    if not (data / "train.jsonl").is_file():
        raise UserError(f"{display(data)} has no train.jsonl (run 20_stage2_sft/generate_qa.py first)")
    stages = []
    for seed in args.seeds:
        adapter = adapters_dir() / f"{args.data}-sft-seed{seed}"
        if not args.train_args and (own := pipeline_adapter(args.data, data, seed)):
            print(f"seed {seed}: the pipeline's own {display(own)} (same data, seed and defaults), not trained again")
            stages.append(f"seed{seed}={model}+{own}")
            continue
        # absolute paths: the scripts run from the repo root, not from the user's folder
        run_or_fail("20_stage2_sft/train_sft.py", ["--data", str(data), "--model", str(model), "--seed", str(seed),
                                                   "--adapter-path", str(adapter), "--force",
                                                   *shlex.split(args.train_args)])
        stages.append(f"seed{seed}={model}+{adapter}")
    run_or_fail("30_evaluation/compare_stages.py", ["--output", str(out), "--no-open-book", "--stages", *stages]
                + (["--questions", *(str(resolve(q)) for q in args.questions)] if args.questions else []))
    summary = json.loads((out / "eval.json").read_text())["metrics"]["summary"]
    table = spread(summary, args.seeds)
    write_report(table, args.seeds, args.train_args, out)
    write_results_manifest(out, "sft_seed_spread", args, metrics={"accuracy": table})
    print((out / "seed_spread.md").read_text() + f"-> {display(out)}/seed_spread.md")


if __name__ == "__main__":
    run_main(main)
