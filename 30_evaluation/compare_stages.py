"""Compare base, CPT and SFT on the document's questions, scored automatically.

Examples:
  python 30_evaluation/compare_stages.py                  # demo: base, cpt, sft -> results/eval.*
  python 30_evaluation/compare_stages.py --stages base=models/demo-omni-Text \\
      sft=models/demo-omni-Text+adapters/demo_paper-sft --max-tokens 96
  python 30_evaluation/compare_stages.py --questions my_questions.jsonl --output results/mine --no-open-book
  python 30_evaluation/compare_stages.py --questions data/cpt/paper/heldout_questions.jsonl \\
      10_stage1_cpt/control_questions.jsonl

Each stage is loaded once; its questions go through the chat template (reasoning
skipped, greedy, batched). An answer is correct when it holds every key fact
(accepted variants, not negated); the reference answer's NLL given the question is
reported beside it. Kinds: trained, heldout_fact, paraphrase, control. When questions
carry their source `passage`, one more run, open_book, asks the first stage's model
(no adapter) with the passage in the prompt: the upper bound. Writes eval.csv,
eval.md (answers + accuracy per stage and kind), eval.png and eval.json (summary,
inputs, versions).
"""
import omnilm  # noqa: F401  (fast BLAS before mlx)
from omnilm.config import make_parser, parse_options
from omnilm.errors import run_main
from omnilm.evaluation import compare_stages
from omnilm.paths import CONTROL_QUESTIONS, DEMO_QUESTIONS


def build_parser():
    """The options, also read by omnilm.config to check a --config file's every section."""
    p = make_parser(__doc__)
    p.add_argument("--questions", default=[str(DEMO_QUESTIONS), str(CONTROL_QUESTIONS)], nargs="+",
                   help="JSONL question files, read in turn (default: the demo paper's "
                   "10_stage1_cpt/demo_paper.questions.jsonl and the general control_questions.jsonl; stage 10 "
                   "writes heldout_questions.jsonl for any paper)")
    p.add_argument("--stages", nargs="+", help="name=MODEL or name=MODEL+ADAPTER ... (default: demo base, cpt, sft)")
    p.add_argument("--max-tokens", default=48, type=int, help="answer length limit in tokens")
    p.add_argument("--per-kind", default=0, type=int,
                   help="ask only the first N questions of each kind, a quick look; 0 = every question")
    p.add_argument("--output", help="results folder (default: results/)")
    p.add_argument("--no-open-book", dest="open_book", action="store_false", default=True,
                   help="skip the open-book upper bound (the first stage's model with each passage in the prompt)")
    return p


def main():
    compare_stages(parse_options(build_parser(), "eval"))


if __name__ == "__main__":
    run_main(main)
