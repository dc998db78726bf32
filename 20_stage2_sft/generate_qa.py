"""Question/answer pairs from the document's chunks -> SFT chat data (train/valid).

Examples:
  python 20_stage2_sft/generate_qa.py                      # data/cpt/demo_paper -> data/sft/demo_paper, CPT model
  python 20_stage2_sft/generate_qa.py --chunks data/cpt/mypaper --adapter adapters/mypaper-cpt --force
  python 20_stage2_sft/generate_qa.py --per-chunk 0        # fact + golden pairs only, no model
  python 20_stage2_sft/generate_qa.py --per-fact 3 --force # three questions for every trained fact
  python 20_stage2_sft/generate_qa.py --model models/demo-omni-Text --adapter none --per-chunk 3
  python 20_stage2_sft/generate_qa.py --replay-share 0 --force   # no replay pairs

Pairs come from three sources, each tagged in pairs.jsonl:
  golden  10_stage1_cpt/demo_paper.golden.jsonl, hand-written; always in train
  fact    --per-fact pairs for every trained fact of stage 10's facts.jsonl (numbers,
          names, definitions, acronyms, table cells), each asked its own ways and
          tagged with its fact_id; held-out facts get none
  model   the CPT model (base model + --adapter, default adapters/<stem>-cpt), asked in
          batches through its chat template (reasoning skipped), parsed strictly
A pair that states a held-out fact is dropped (reason heldout_fact), whatever its source.
Statements: --statements K restatements of every fact, held-out ones too, join train as
plain text rows (source=statement, like CPT's text, never a question): training on
questions alone overwrites what CPT memorized of the facts it does not ask about.
Every candidate passes filters (length, prompt leakage/format debris, chunk-dependent
wording, grounding in its chunk) and near-duplicate removal; questions that
near-duplicate an evaluation `paraphrase` question (10_stage1_cpt/demo_paper.questions.jsonl) are
held out. Kept pairs are asked with and without the document's name.
Replay against forgetting: the base model's own answers to general questions that
stage 10 wrote (replay.jsonl next to the chunks) are added, tagged source=replay, as
--replay-share of the train rows and, other pairs, of the valid rows: the validation
loss that picks the best weights then rises when general answers drift. Output:
train.jsonl ({"messages"}, then the {"text"} statement rows) / valid.jsonl ({"messages"}), pairs.jsonl, dropped.jsonl (with reasons),
manifest.json (counts by reason, generation throughput).
"""
import omnilm  # noqa: F401  (fast BLAS before mlx)

from omnilm.config import FRACTION, make_parser, parse_options
from omnilm.errors import run_main
from omnilm.paths import DEMO_GOLDEN, DEMO_QUESTIONS
from omnilm.qa_stage import build_sft_data


def build_parser():
    """The options, also read by omnilm.config to check a --config file's every section."""
    p = make_parser(__doc__)
    p.add_argument("--chunks", help="stage-10 data folder holding chunks.jsonl (default data/cpt/demo_paper)")
    p.add_argument("--model", help="model folder (default: the adapter's base model, else models/demo-omni-Text)")
    p.add_argument("--adapter", help="adapter folder, or 'none' (default adapters/<stem>-cpt when present)")
    p.add_argument("--per-chunk", default=2, type=int, help="model prompts per chunk, 0 = no model")
    p.add_argument("--per-fact", default=2, type=int, help="question/answer pairs for every trained fact")
    p.add_argument("--statements", default=2, type=int, help="restatements of every fact (held-out ones too) "
                   "added to train as plain text, packed, so SFT keeps what CPT memorized; 0 = none")
    p.add_argument("--output", help="SFT data folder (default data/sft/<stem>)")
    p.add_argument("--golden", default=str(DEMO_GOLDEN), help="the paper's hand-written pairs, always in train; "
                   "'none' for a paper without (default 10_stage1_cpt/demo_paper.golden.jsonl, the demo's)")
    p.add_argument("--questions", default=str(DEMO_QUESTIONS), help="the paper's evaluation questions, whose "
                   "`paraphrase` ones are held out; 'none' for a paper without (default "
                   "10_stage1_cpt/demo_paper.questions.jsonl, the demo's)")
    p.add_argument("--max-tokens", default=80, type=int, help="tokens generated per prompt")
    p.add_argument("--batch-size", default=16, type=int, help="prompts decoded together")
    p.add_argument("--temp", default=0.0, type=float, help="sampling temperature, 0 = greedy")
    p.add_argument("--seed", default=0, type=int, help="seed for sampling and the train/valid split")
    p.add_argument("--valid-fraction", default=0.2, type=FRACTION,
                   help="share of pairs for validation: other wordings of facts kept in train")
    p.add_argument("--min-overlap", default=0.8, type=FRACTION, help="share of an answer's content words found in its chunk")
    p.add_argument("--context-name", help="the document's name used in question variants (default: from its title)")
    p.add_argument("--replay-share", default=0.5, type=FRACTION, help="share of the train rows, and of the valid rows, "
                   "taken by the replay pairs of the chunks folder (as many as exist at most), 0 = none")
    return p


def main():
    build_sft_data(parse_options(build_parser(), "qa", force="replace an existing output folder"))

if __name__ == "__main__":
    run_main(main)
