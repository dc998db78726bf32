"""Does a model still hold the paper's facts as text? Complete each fact's statement.

Examples:
  python experiments/fact_recall_probe.py                      # demo: base, cpt, sft adapters
  python experiments/fact_recall_probe.py --stages cpt=adapters/demo_paper-cpt sft=adapters/old-sft

For every fact of stage 10's facts.jsonl, the model gets its statement up to the
answer as plain text (no chat template: "VELLUM was trained for ") and continues it
greedily; a hit is a continuation that holds an accepted form of the answer. Split
by trained and held-out facts, this separates memory from extraction: a held-out
fact the CPT model completes but SFT answers wrongly was there and got lost or was
not reached through the question. On the demo, SFT on questions alone kept 2 of the
15 held-out facts that CPT completed 10 of. Writes fact_recall.csv (one row per
stage and fact), fact_recall.md (hits per stage, trained vs held out) and
manifest.json in results/fact_recall_probe/.
"""
import omnilm  # noqa: F401  (fast BLAS before mlx)

import sys
from pathlib import Path

from omnilm.atomic import write_csv_atomic, write_text_atomic
from omnilm.config import make_parser
from omnilm.errors import UserError, run_main
from omnilm.facts import FACTS_FILE, has_answer
from omnilm.jsonl import read_jsonl
from omnilm.manifest import fingerprint
from omnilm.paths import adapters_dir, cpt_data_dir, demo_text_model, display, resolve

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository, for benchmarks.harness
from benchmarks.harness import results_folder, write_results_manifest  # noqa: E402


def probe_prefix(fact):
    """The statement up to its answer, or None when the answer opens it (nothing to complete)."""
    start = fact["statement"].find(fact["answer"])
    return fact["statement"][:start] if start > 0 else None


def probe(model, tokenizer, facts, max_tokens=8):
    """[(fact, continuation, hit)] for the facts that have a prefix to complete."""
    from mlx_lm import generate

    rows = []
    for fact in facts:
        prefix = probe_prefix(fact)
        if prefix is not None:
            text = generate(model, tokenizer, prefix, max_tokens=max_tokens, verbose=False)
            rows.append((fact, text, has_answer(text, fact["accept"])))
    return rows


def main():
    p = make_parser(__doc__)
    p.add_argument("--data", help="stage-10 data folder with facts.jsonl (default data/cpt/demo_paper)")
    p.add_argument("--model", help="base model folder (default models/demo-omni-Text)")
    p.add_argument("--stages", nargs="+", help="name=ADAPTER or name=none ... (default base=none, cpt and sft of the data)")
    p.add_argument("--output", help="results folder (default results/fact_recall_probe)")
    args = p.parse_args()
    output = results_folder("fact_recall_probe", args.output)
    data = resolve(args.data) if args.data else cpt_data_dir()
    if not (data / FACTS_FILE).is_file():
        raise UserError(f"{display(data)} has no {FACTS_FILE} (run 10_stage1_cpt/prepare_data.py first)")
    facts = read_jsonl(data / FACTS_FILE, "facts")
    model_dir = resolve(args.model) if args.model else demo_text_model()
    stages = args.stages or ["base=none", f"cpt={adapters_dir() / (data.name + '-cpt')}",
                             f"sft={adapters_dir() / (data.name + '-sft')}"]

    from mlx_lm import load

    table, completed = [], {}
    lines = ["| stage | trained facts completed | held-out facts completed |", "|---|---|---|"]
    for spec in stages:
        name, _, adapter = spec.partition("=")
        if not name or not adapter:
            raise UserError(f"--stages {spec!r}: write name=ADAPTER or name=none")
        path = None if adapter == "none" else resolve(adapter)
        if path is not None and not (path / "adapter_config.json").is_file():
            raise UserError(f"{display(path)} is not an adapter folder (no adapter_config.json)")
        model, tokenizer = load(str(model_dir), adapter_path=str(path) if path else None)
        rows = probe(model, tokenizer, facts)
        table += [{"stage": name, "fact_id": f["id"], "heldout": int(bool(f.get("heldout"))),
                   "prefix": probe_prefix(f), "continuation": text, "hit": int(hit)} for f, text, hit in rows]
        counts = {held: [sum(hit for f, _, hit in rows if bool(f.get("heldout")) == held),
                         sum(bool(f.get("heldout")) == held for f, _, _ in rows)] for held in (False, True)}
        completed[name] = {"trained": counts[False], "heldout": counts[True]}
        lines.append(f"| {name} | {counts[False][0]} / {counts[False][1]} | {counts[True][0]} / {counts[True][1]} |")
        print(lines[-1], flush=True)
    write_csv_atomic(output / "fact_recall.csv", table, list(table[0]))
    write_text_atomic(output / "fact_recall.md", f"# Fact statements completed ({display(data)})\n\n"
                      + "\n".join(lines) + "\n")
    write_results_manifest(output, "fact_recall_probe", args, metrics={"completed": completed},
                           inputs={"facts": fingerprint(data / FACTS_FILE)})
    print(f"-> {display(output / 'fact_recall.md')}")


if __name__ == "__main__":
    run_main(main)
