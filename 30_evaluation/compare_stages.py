"""Compare base, CPT and SFT on the document's questions, scored automatically.

Examples:
  python 30_evaluation/compare_stages.py                  # demo: base, cpt, sft -> results/eval.*
  python 30_evaluation/compare_stages.py --stages base=models/demo-omni-Text \\
      sft=models/demo-omni-Text+adapters/demo_paper-sft --max-tokens 96
  python 30_evaluation/compare_stages.py --questions my_questions.jsonl --output results/mine

Each stage is loaded once; questions go through the chat template (reasoning
skipped, greedy). An answer is correct when it holds every key fact (accepted
variants, not negated); the reference answer's NLL given the question is reported
beside it. Writes eval.csv, eval.md (answers + accuracy per stage and kind),
eval.png and eval.json (summary, inputs, versions).
"""
import os
import shutil

import omnilm  # noqa: F401  (fast BLAS before mlx)
from omnilm.config import make_parser, resolve_options
from omnilm.errors import UserError, run_main
from omnilm.evaluation import KINDS, load_questions, parse_stage, run_comparison
from omnilm.manifest import fingerprint, write_manifest
from omnilm.paths import REPO_DIR, adapters_dir, display, models_dir, resolve, results_dir
from omnilm.progress import bar

DEFAULTS = {"questions": str(REPO_DIR / "30_evaluation" / "questions.jsonl"), "stages": None,
            "max_tokens": 48, "output": None}


def default_stages():
    base = models_dir() / "demo-omni-Text"
    return [("base", base, None), ("cpt", base, adapters_dir() / "demo_paper-cpt"),
            ("sft", base, adapters_dir() / "demo_paper-sft")]


def check_stage(name, model, adapter):
    if not (model / "config.json").exists():
        raise UserError(f"stage {name}: model {display(model)} does not exist")
    if adapter is not None and not (adapter / "adapters.safetensors").exists():
        raise UserError(f"stage {name}: adapter {display(adapter)} does not exist (train it first)")


def main():
    p = make_parser(__doc__)
    p.add_argument("--questions", help="JSONL questions (default: 30_evaluation/questions.jsonl)")
    p.add_argument("--stages", nargs="+", help="name=MODEL or name=MODEL+ADAPTER ... (default: demo base, cpt, sft)")
    p.add_argument("--max-tokens", type=int, help="answer length limit in tokens (default 48)")
    p.add_argument("--output", help="results folder (default: results/)")
    p.add_argument("--config", help="YAML file with these options (section: eval)")
    args = resolve_options(p.parse_args(), DEFAULTS, section="eval")
    questions = load_questions(resolve(args.questions))
    if args.stages:
        stages = [(n, resolve(m), resolve(a) if a else None) for n, m, a in map(parse_stage, args.stages)]
    else:
        stages = default_stages()
    for stage in stages:
        check_stage(*stage)
    out = resolve(args.output) if args.output else results_dir()
    out.mkdir(parents=True, exist_ok=True)
    tmp = out / f".eval.tmp-{os.getpid()}"
    tmp.mkdir()
    try:
        with bar(total=len(stages) * len(questions), desc="evaluating", unit="q") as progress:
            rows, summary, seconds = run_comparison(stages, questions, tmp, args.max_tokens, progress.update)
        inputs = {"questions": fingerprint(resolve(args.questions))}
        for name, model, adapter in stages:
            inputs[name] = {"model": fingerprint(model / "config.json"),
                            "adapter": fingerprint(adapter / "adapters.safetensors") if adapter else None}
        write_manifest(tmp, "evaluate", args, inputs=inputs, metrics={"summary": summary, "seconds": round(seconds, 1)},
                       stages={n: {"model": display(m), "adapter": display(a) if a else None} for n, m, a in stages})
        os.replace(tmp / "manifest.json", tmp / "eval.json")
        for f in tmp.iterdir():  # every file complete before any replaces the old results
            os.replace(f, out / f.name)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"\nevaluation ({len(questions)} questions x {len(stages)} stages, {seconds:.0f}s) -> "
          f"{display(out / 'eval.md')}, eval.csv, eval.png")
    header = f"{'stage':8}" + "".join(f"{k:>12}" for k in KINDS) + f"{'answer NLL':>12}{'tok/s':>8}"
    print(header)
    for name, s in summary.items():
        print(f"{name:8}" + "".join(f"{s.get(k, float('nan')):12.2f}" for k in KINDS)
              + f"{s['answer_nll']:12.3f}{s['generation_tps']:8.1f}")


if __name__ == "__main__":
    run_main(main)
