"""Compare base, CPT and SFT on the document's questions, scored automatically.

Examples:
  python 30_evaluation/compare_stages.py                  # demo: base, cpt, sft -> results/eval.*
  python 30_evaluation/compare_stages.py --stages base=models/demo-omni-Text \\
      sft=models/demo-omni-Text+adapters/demo_paper-sft --max-tokens 96
  python 30_evaluation/compare_stages.py --questions my_questions.jsonl --output results/mine --no-open-book
  python 30_evaluation/compare_stages.py --stages base=models/demo-omni-Text \\
      cpt=models/demo-omni-Text+adapters/paper-cpt sft=models/demo-omni-Text+adapters/paper-sft \\
      --questions data/cpt/paper/independent_questions.jsonl data/cpt/paper/cloze_probes.jsonl \\
      10_stage1_cpt/control_questions.jsonl --facts data/cpt/paper/facts.jsonl \\
      --training-data data/cpt/paper data/sft/paper   # your paper.pdf, as the pipeline asks it

Each stage is loaded once; its questions go through the chat template (reasoning
skipped, greedy, batched). An answer is correct when it holds every key fact
(accepted variants, not negated); the reference answer's NLL given the question is
reported beside it for the hand-written kinds. Kinds: trained, heldout_fact,
paraphrase, reader (hand-written), independent (question forms no training row has),
cloze (completed as plain text) and control (broad general knowledge; its answers
give the bleed: the paper's terms where the first stage used none). Every figure
carries its count and 90% interval, and eval.md opens with the stage to use, picked
by everything but the trained questions. When questions carry their source
`passage`, one more run, open_book, asks the first stage's model (no adapter) with
the passage in the prompt: the upper bound. Writes eval.csv, eval.md, eval.png and
eval.json (summary, recommendation, inputs, versions).
"""
import omnilm  # noqa: F401  (fast BLAS before mlx)
from omnilm.config import at_least, make_parser, parse_options
from omnilm.errors import run_main
from omnilm.evaluation import compare_stages
from omnilm.facts import FACTS_FILE
from omnilm.paths import CONTROL_QUESTIONS, DEMO_QUESTIONS, cpt_data_dir, sft_data_dir
from omnilm.probes import CLOZE_FILE, INDEPENDENT_FILE


def build_parser():
    """The options, also read by omnilm.config to check a --config file's every section."""
    paper = cpt_data_dir()
    p = make_parser(__doc__)
    p.add_argument("--questions", nargs="+",
                   default=[str(DEMO_QUESTIONS), str(paper / INDEPENDENT_FILE), str(paper / CLOZE_FILE),
                            str(CONTROL_QUESTIONS)],
                   help="JSONL question files, read in turn (default: the demo paper's hand-written "
                   "10_stage1_cpt/demo_paper.questions.jsonl, the independent questions and cloze probes stage 10 "
                   "made from its facts, and the broad control_questions.jsonl)")
    p.add_argument("--stages", nargs="+", help="name=MODEL or name=MODEL+ADAPTER ... (default: demo base, cpt, sft); "
                   "the first is the reference the bleed and the control are measured against")
    p.add_argument("--adapter", action="append", metavar="NAME=ADAPTER_DIR",
                   help="a stage's adapter, for a path that holds a '+' (e.g. --stages sft=MODEL --adapter sft=DIR)")
    p.add_argument("--facts", default=str(paper / FACTS_FILE),
                   help="the paper's facts.jsonl (stage 10), whose terms make the bleed figure; 'none' for no bleed "
                   "(default: the demo paper's)")
    p.add_argument("--training-data", nargs="*", default=[str(paper), str(sft_data_dir())],
                   help="the folders trained on (train.jsonl, valid.jsonl): an independent question whose form or "
                   "wording a training row has is dropped (default: the demo paper's CPT and SFT data)")
    p.add_argument("--max-tokens", default=48, type=at_least(1), help="answer length limit in tokens")
    p.add_argument("--batch-size", default=64, type=at_least(1),
                   help="questions generated at once; lower it when memory is short (an 8B model on 16 GB: 16)")
    p.add_argument("--per-kind", default=0, type=int,
                   help="ask only the first N questions of each kind, a quick look; 0 = every question")
    p.add_argument("--output", help="results folder (default: results/)")
    p.add_argument("--no-open-book", dest="open_book", action="store_false", default=True,
                   help="skip the open-book upper bound (the first stage's model with each passage in the prompt)")
    return p


def main():
    args = parse_options(build_parser(), "eval")
    if args.facts and args.facts.lower() == "none":
        args.facts = None
    compare_stages(args)


if __name__ == "__main__":
    run_main(main)
