"""Compare base, CPT and SFT on the document's questions, scored automatically.

Examples:
  python 30_evaluation/compare_stages.py                  # demo: base, cpt, sft -> results/eval.*
  python 30_evaluation/compare_stages.py --stages base=models/demo-omni-Text \\
      sft=models/demo-omni-Text+adapters/demo_paper-sft --max-tokens 96
  python 30_evaluation/compare_stages.py --questions my_questions.jsonl --output results/mine --no-open-book
  python 30_evaluation/compare_stages.py --questions data/cpt/paper/heldout_questions.jsonl \\
      30_evaluation/control_questions.jsonl

Each stage is loaded once; its questions go through the chat template (reasoning
skipped, greedy, batched). An answer is correct when it holds every key fact
(accepted variants, not negated); the reference answer's NLL given the question is
reported beside it. Kinds: trained, heldout_fact, paraphrase, control. When questions
carry their source `passage`, one more run, open_book, asks the first stage's model
(no adapter) with the passage in the prompt: the upper bound. Writes eval.csv,
eval.md (answers + accuracy per stage and kind), eval.png and eval.json (summary,
inputs, versions).
"""
import os
import shutil

import omnilm  # noqa: F401  (fast BLAS before mlx)
from omnilm.config import make_parser, resolve_options
from omnilm.errors import UserError, run_main
from omnilm.evaluation import (KINDS, OPEN_BOOK, OPEN_BOOK_NOTE, default_stages, load_questions, parse_stage,
                               plan_runs, run_comparison)
from omnilm.manifest import fingerprint, write_manifest
from omnilm.paths import CONTROL_QUESTIONS, DEMO_QUESTIONS, display, resolve, results_dir
from omnilm.progress import bar

DEFAULTS = {"questions": [str(DEMO_QUESTIONS), str(CONTROL_QUESTIONS)], "stages": None,
            "max_tokens": 48, "output": None, "open_book": True}


def check_stage(name, model, adapter):
    if not (model / "config.json").exists():
        raise UserError(f"stage {name}: model {display(model)} does not exist")
    if adapter is not None and not (adapter / "adapters.safetensors").exists():
        raise UserError(f"stage {name}: adapter {display(adapter)} does not exist (train it first)")


def main():
    p = make_parser(__doc__)
    p.add_argument("--questions", nargs="+", help="JSONL question files, read in turn (default: the demo paper's "
                   "30_evaluation/questions.jsonl and the general control_questions.jsonl; stage 10 writes "
                   "heldout_questions.jsonl for any paper)")
    p.add_argument("--stages", nargs="+", help="name=MODEL or name=MODEL+ADAPTER ... (default: demo base, cpt, sft)")
    p.add_argument("--max-tokens", type=int, help="answer length limit in tokens (default 48)")
    p.add_argument("--output", help="results folder (default: results/)")
    p.add_argument("--no-open-book", dest="open_book", action="store_false", default=None,
                   help="skip the open-book upper bound (the first stage's model with each passage in the prompt)")
    p.add_argument("--config", help="YAML file with these options (section: eval)")
    args = resolve_options(p.parse_args(), DEFAULTS, section="eval")
    files = [resolve(f) for f in ([args.questions] if isinstance(args.questions, str) else args.questions)]
    questions = [q for f in files for q in load_questions(f)]
    if args.stages:
        stages = [(n, resolve(m), resolve(a) if a else None) for n, m, a in map(parse_stage, args.stages)]
    else:
        stages = default_stages()
    for stage in stages:
        check_stage(*stage)
    if OPEN_BOOK in (name for name, _, _ in stages):
        raise UserError(f"stage name {OPEN_BOOK} is kept for the open-book upper bound: choose another")
    runs = plan_runs(stages, questions, args.open_book)
    out = resolve(args.output) if args.output else results_dir()
    out.mkdir(parents=True, exist_ok=True)
    tmp = out / f".eval.tmp-{os.getpid()}"
    tmp.mkdir()
    try:
        with bar(total=sum(len(r[3]) for r in runs), desc="evaluating", unit="q") as progress:
            rows, summary, seconds = run_comparison(runs, tmp, args.max_tokens, progress)
        inputs = {f"questions:{f.name}": fingerprint(f) for f in files}
        for name, model, adapter, _, _ in runs:
            inputs[name] = {"model": fingerprint(model / "config.json"),
                            "adapter": fingerprint(adapter / "adapters.safetensors") if adapter else None}
        write_manifest(tmp, "evaluate", args, inputs=inputs, metrics={"summary": summary, "seconds": round(seconds, 1)},
                       stages={n: {"model": display(m), "adapter": display(a) if a else None}
                               for n, m, a, _, _ in runs})
        os.replace(tmp / "manifest.json", tmp / "eval.json")
        for f in tmp.iterdir():  # every file complete before any replaces the old results
            os.replace(f, out / f.name)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"\nevaluation ({len(questions)} questions x {len(stages)} stages"
          f"{' + open book' if len(runs) > len(stages) else ''}, {seconds:.0f}s) -> "
          f"{display(out / 'eval.md')}, eval.csv, eval.png")
    print(f"{'stage':10}" + "".join(f"{k:>14}" for k in KINDS) + f"{'answer NLL':>12}{'tok/s':>8}")
    for name, s in summary.items():
        print(f"{name:10}" + "".join(f"{s[k]:14.2f}" if k in s else f"{'-':>14}" for k in KINDS)
              + f"{s['answer_nll']:12.3f}{s['generation_tps']:8.1f}")
    if OPEN_BOOK in summary:
        print(OPEN_BOOK_NOTE)


if __name__ == "__main__":
    run_main(main)
