"""Held-out fact accuracy against the number of rephrasings per fact in the CPT text.

Examples:
  python experiments/rephrasing_gain.py                     # K = 0 1 3 5 on the demo (about 80 min on 2 CPU cores)
  python experiments/rephrasing_gain.py --k 0 5 --qa-args="--per-chunk 0"

For each K the chain after stage 10 runs again in its own folders (data/cpt/<stem>-kK,
adapters/<stem>-kK-cpt, -sft): prepare with --rephrasings K (the replay answers come
from the cache), CPT, Q&A, SFT, all with the pipeline's defaults otherwise. Then one
compare_stages run asks every CPT and SFT adapter the evaluation questions: the
paper's own (--questions), the held-out facts' questions stage 10 wrote (the split
does not depend on K) and the controls. K = 0 is the paper's text alone (plus the
trained facts' Q&A, as in every run): a fact seen in one phrasing. Writes
rephrasing_gain.csv, .md and .png (accuracy per stage and question kind against K,
and each K's training time), manifest.json and that run's eval.* in --output.
"""
import omnilm  # noqa: F401  (fast BLAS before mlx)

import json
import shlex
import sys
import time
from pathlib import Path

from omnilm.atomic import write_csv_atomic, write_text_atomic
from omnilm.config import make_parser
from omnilm.errors import UserError, run_main
from omnilm.evaluation import KINDS
from omnilm.facts import HELDOUT_QUESTIONS_FILE
from omnilm.paths import (CONTROL_QUESTIONS, DEMO_QUESTIONS, adapter_dir, cpt_data_dir, demo_pdf, demo_text_model,
                          display, optional_file, resolve, sft_data_dir)
from omnilm.pipeline import run_or_fail

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository, for benchmarks.harness
from benchmarks.harness import machine_line, results_folder, write_results_manifest  # noqa: E402


def chain(k, pdf, model, stem, qa_args):
    """Stages 10 and 20 for one K; returns (stage 10's data, CPT adapter, SFT adapter, seconds)."""
    started = time.perf_counter()
    cpt_data, sft_data = cpt_data_dir(f"{stem}-k{k}"), sft_data_dir(f"{stem}-k{k}")
    cpt, sft = adapter_dir(f"{stem}-k{k}", "cpt"), adapter_dir(f"{stem}-k{k}", "sft")
    run_or_fail("10_stage1_cpt/prepare_data.py", ["--pdf", pdf, "--model", model, "--output", cpt_data,
                                                  "--rephrasings", k, "--force"])
    run_or_fail("10_stage1_cpt/train_cpt.py", ["--data", cpt_data, "--model", model, "--adapter-path", cpt, "--force"])
    run_or_fail("20_stage2_sft/generate_qa.py", ["--chunks", cpt_data, "--adapter", cpt, "--output", sft_data,
                                                 "--force", *shlex.split(qa_args)])
    run_or_fail("20_stage2_sft/train_sft.py", ["--data", sft_data, "--init-adapter", cpt, "--model", model,
                                               "--adapter-path", sft, "--force"])
    return cpt_data, cpt, sft, time.perf_counter() - started


def write_outputs(summary, ks, seconds, out, machine):
    rows = [{"k": k, "stage": stage, **{kind: summary[f"k{k}-{stage}"].get(kind) for kind in KINDS},
             "chain_seconds": round(seconds[k])} for k in ks for stage in ("cpt", "sft")]
    write_csv_atomic(out / "rephrasing_gain.csv", rows, ["k", "stage", *KINDS, "chain_seconds"])
    lines = ["# Accuracy against rephrasings per fact (K) in the CPT text", "", f"Machine: {machine}", "",
             "| K | stage | " + " | ".join(KINDS) + " | prepare+CPT+Q&A+SFT (s) |",
             "|---" * (len(KINDS) + 3) + "|"]
    lines += [f"| {r['k']} | {r['stage']} | " + " | ".join("-" if r[kind] is None else f"{r[kind]:.2f}"
                                                            for kind in KINDS) + f" | {r['chain_seconds']} |"
              for r in rows]
    write_text_atomic(out / "rephrasing_gain.md", "\n".join(lines) + "\n")

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for kind in KINDS:
        for stage, style in (("sft", "-"), ("cpt", ":")):
            mine = [r[kind] for r in rows if r["stage"] == stage]
            if any(v is not None for v in mine):
                ax.plot(ks, mine, style, marker="o", label=f"{stage} {kind}",
                        linewidth=3 if kind == "heldout_fact" else 1)
    ax.set_xlabel("rephrasings per fact in the CPT text (K)")
    ax.set_ylabel("accuracy (solid: SFT, dotted: CPT)")
    ax.set_ylim(-0.02, 1.02)
    ax.set_xticks(ks)
    ax.legend(fontsize=7, ncol=2)
    ax.set_title("Accuracy against rephrasings per fact (K)")
    fig.tight_layout()
    fig.savefig(out / "rephrasing_gain.png", dpi=110)
    plt.close(fig)


def main():
    p = make_parser(__doc__)
    p.add_argument("--k", type=int, nargs="+", default=[0, 1, 3, 5], help="rephrasings per fact (default 0 1 3 5)")
    p.add_argument("--pdf", help="the paper (default data/demo_paper.pdf)")
    p.add_argument("--model", help="text model (default models/demo-omni-Text)")
    p.add_argument("--qa-args", default="", help="more generate_qa.py flags, one quoted string after '='")
    p.add_argument("--questions", help="the paper's own evaluation questions, or 'none' "
                   "(default: the demo paper's 10_stage1_cpt/demo_paper.questions.jsonl)")
    p.add_argument("--output", help="results folder (default results/rephrasing_gain)")
    args = p.parse_args()
    if len(set(args.k)) != len(args.k) or min(args.k) < 0:
        raise UserError("--k needs distinct values >= 0")
    pdf = resolve(args.pdf) if args.pdf else demo_pdf()
    model = resolve(args.model) if args.model else demo_text_model()
    for path, what in ((pdf, "--pdf"), (model, "--model")):
        if not path.exists():
            raise UserError(f"{what} {display(path)} does not exist (run ./run_pipeline.sh first)")
    out = results_folder("rephrasing_gain", args.output)
    own = optional_file(args.questions if args.questions else str(DEMO_QUESTIONS))
    ks = sorted(args.k)
    stages, seconds = [], {}
    for k in ks:
        cpt_data, cpt, sft, seconds[k] = chain(k, pdf, model, pdf.stem, args.qa_args)
        stages += [f"k{k}-cpt={model}+{cpt}", f"k{k}-sft={model}+{sft}"]
    questions = [*filter(None, [own]), cpt_data / HELDOUT_QUESTIONS_FILE, CONTROL_QUESTIONS]
    run_or_fail("30_evaluation/compare_stages.py", ["--output", out, "--no-open-book", "--stages", *stages,
                                                    "--questions", *questions])
    summary = json.loads((out / "eval.json").read_text())["metrics"]["summary"]
    write_outputs(summary, ks, seconds, out, machine_line())
    write_results_manifest(out, "rephrasing_gain", args, metrics={"chain_seconds": {
        str(k): round(seconds[k]) for k in ks}})
    print((out / "rephrasing_gain.md").read_text() + f"-> {display(out)}/rephrasing_gain.md, .csv, .png")


if __name__ == "__main__":
    run_main(main)
