"""PDF -> clean text -> chunks measured in the model's tokens -> train/valid for mlx-lm.

Examples:
  python 10_stage1_cpt/prepare_data.py                       # data/demo_paper.pdf -> data/cpt/demo_paper
  python 10_stage1_cpt/prepare_data.py --pdf papers/my.pdf --model models/HyperCLOVAX-SEED-Omni-8B-Text
  python 10_stage1_cpt/prepare_data.py --pdf papers/ --chunk-tokens 1024 --keep-references --force
  python 10_stage1_cpt/prepare_data.py --replay 0 --force    # document only, no replay pairs
  python 10_stage1_cpt/prepare_data.py --rephrasings 0 --qa-in-cpt 0 --force   # the raw text alone
  python 10_stage1_cpt/prepare_data.py --rephrasings-file 10_stage1_cpt/demo_paper.rephrasings.jsonl --force

Text comes from poppler's pdftotext where installed, else pdfplumber (--extractor).
Cleaning removes (cid:NN) placeholders, ligatures, running headers/footers and page
numbers, hyphenation across line ends and (unless --keep-references) the references.
Chunks hold at most --chunk-tokens tokens of the model's tokenizer, cut at paragraph
or sentence ends, overlapping by about --overlap tokens. A document too short to
give --min-chunks chunks is cut in smaller chunks (down to 128 tokens) so that
training and validation both get enough. The validation chunks are trained on too:
the document is what CPT must teach, and a held-out chunk's facts were never learned
(on the demo it was the Results section, whose numbers SFT then got wrong); their
loss says how well the document is learned. --hold-out keeps them out (a classic
held-out perplexity, for a corpus large enough to spare them).

Replay against forgetting: the model answers --replay general questions
(10_stage1_cpt/replay_questions.txt) greedily; an answer longer than 20 words or cut
by the token limit keeps its first whole sentences ("shortened": true); those that
pass the leakage filters go to replay.jsonl. As plain text (question, then answer),
packed like chunks, they make --replay-share of the rows of train.jsonl, repeated
in new orders to get there (each answer at most 4 times); valid.jsonl stays the
document. Stage 20 draws its own replay share, for train and valid, from replay.jsonl.
Fact inventory (omnilm.facts): every number with what it counts, name, definition,
acronym and table cell of the text becomes a fact with its source sentence, page and
questions (facts.jsonl). A seeded --heldout-fraction of the source sentences is held
out: their facts get no question in any training row (stage 30 asks them as
`heldout_fact`); sentences whose facts the golden pairs (--golden) state stay trained.
--relations adds subject-relation-object facts (owns, is located in, was founded by,
succeeded, is part of, led to, 'X, the mayor of Y, ...'), asked both ways (off by default).
CPT also reads --rephrasings K restatements of every fact (subject named in full,
shuffled) and --qa-in-cpt question/answer pairs of each trained fact, as plain text.
The K are the statement, then up to 3 rewrites in other sentence structures (from a
model of at least --rephrase-min-params, or --rephrasings-file), then the rules'
other shapes (every table cell; a sentence fact where its structure is plain: the
passive, a phrase fronted, a name reversed), then the statement in frames
("According to the ... paper, ...").
Output: train.jsonl and valid.jsonl ({"text"} lines), chunks.jsonl ({"id", "source",
"text", "pages", "tokens"}), facts.jsonl, heldout_questions.jsonl (the held-out facts
asked in stage 30's format), replay.jsonl ({"question", "answer"}),
manifest.json.
"""
import omnilm  # noqa: F401  (fast BLAS before mlx)
from omnilm.config import FRACTION, make_parser, parse_options
from omnilm.errors import run_main
from omnilm.paths import CONTROL_QUESTIONS, DEMO_GOLDEN, REPLAY_QUESTIONS, demo_pdf, demo_text_model
from omnilm.pdf_text import EXTRACTORS
from omnilm.prepare import prepare_document


def build_parser():
    p = make_parser(__doc__)
    p.add_argument("--pdf", default=str(demo_pdf()),
                   help="a PDF file or a folder of PDFs (default: data/demo_paper.pdf)")
    p.add_argument("--model", default=str(demo_text_model()),
                   help="model folder whose tokenizer measures the chunks (default: models/demo-omni-Text)")
    p.add_argument("--output", help="output folder (default: data/cpt/<pdf stem or folder name>)")
    p.add_argument("--chunk-tokens", default=512, type=int, help="most tokens in a chunk")
    p.add_argument("--overlap", default=64, type=int, help="tokens a chunk repeats from the one before")
    p.add_argument("--min-chunks", default=8, type=int,
                   help="halve the chunk size (down to 128) until the corpus gives this many chunks; "
                        "0 keeps --chunk-tokens")
    p.add_argument("--valid-fraction", default=0.1, type=FRACTION, help="share of chunks for validation, at least one")
    p.add_argument("--seed", default=0, type=int, help="seed of the train/valid split")
    p.add_argument("--hold-out", action="store_true", default=False,
                   help="keep the validation chunks out of training (default: train on every chunk)")
    p.add_argument("--keep-references", action="store_true", default=False, help="keep the references section")
    p.add_argument("--extractor", default="auto", choices=EXTRACTORS,
                   help="auto (pdftotext if installed, else pdfplumber)")
    p.add_argument("--replay", default=200, type=int,
                   help="general questions the model answers for replay against forgetting, 0 = none")
    p.add_argument("--replay-share", default=0.35, type=FRACTION,
                   help="share of the CPT train rows taken by replay text (its answers repeated to reach it, 4 times at most)")
    p.add_argument("--replay-questions", default=str(REPLAY_QUESTIONS),
                   help="one question a line (default 10_stage1_cpt/replay_questions.txt)")
    p.add_argument("--replay-max-tokens", default=64, type=int,
                   help="an answer not finished within this many tokens is dropped")
    p.add_argument("--eval-questions", default=str(CONTROL_QUESTIONS),
                   help="evaluation questions; replay skips near-duplicates of the `control` ones "
                        "(default 10_stage1_cpt/control_questions.jsonl)")
    p.add_argument("--golden", default=str(DEMO_GOLDEN),
                   help="the paper's hand-written pairs: the facts they state are never held out; 'none' for a "
                        "paper without (default 10_stage1_cpt/demo_paper.golden.jsonl, the demo's)")
    p.add_argument("--heldout-fraction", default=0.35, type=FRACTION,
                   help="share of the fact sentences whose facts no training question asks, for stage 30's "
                        "heldout_fact")
    p.add_argument("--relations", action="store_true", default=False,
                   help="also find subject-relation-object facts in sentences ('X founded Y', 'X is located in Y', "
                        "'X, the mayor of Y, ...'), each asked for its object and for its subject; off until measured "
                        "on seeds")
    p.add_argument("--rephrasings", default=5, type=int,
                   help="restatements of each fact added to the CPT text (K): the statement, a capable model's "
                        "rewrites, the rules' other sentence structures (passive, a phrase fronted, ...), then "
                        "frames; 0 = none")
    p.add_argument("--rephrase-min-params", default=1e9, type=float,
                   help="a model this large (parameters) also rewrites each fact in up to 3 other sentence "
                        "structures (at most K-1), its grounded output kept; a smaller one writes text the grounding "
                        "check rejects (default 1e9: the 8B does, the demo's 135M does not)")
    p.add_argument("--rephrasings-file",
                   help="rephrasings written elsewhere (a bigger model, a person), used instead of asking --model: "
                        "JSON lines {\"statement\": a statement of facts.jsonl, \"rephrasings\": [...]}; each goes "
                        "through the grounding check (the demo paper's: 10_stage1_cpt/demo_paper.rephrasings.jsonl)")
    p.add_argument("--qa-in-cpt", default=1, type=int,
                   help="question/answer pairs of each trained fact in the CPT text")
    p.add_argument("--restatements-apart", action="store_true", default=False,
                   help="pack the CPT text so that no training row holds two restatements or questions of one "
                        "fact (side by side, the model can copy a fact instead of storing it); off: packed in order")
    p.add_argument("--force", action="store_true", help="replace an existing output folder")
    return p


def main():
    prepare_document(parse_options(build_parser(), "prepare"))


if __name__ == "__main__":
    run_main(main)
