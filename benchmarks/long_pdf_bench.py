"""A long document through stages 10 and 20's data steps: time and peak memory by size.

Examples:
  python benchmarks/long_pdf_bench.py                        # 40 and 300 pages
  python benchmarks/long_pdf_bench.py --pages 20 80 160 --output results/long_pdf_bench

Builds a paper of about N pages from the demo paper's source: its sections again
and again, each copy about a method of its own name with its own numbers (so no
fact repeats another and the inventory grows with the length), renders it to a real
PDF, then runs prepare_data.py (--replay 0: the document path alone) and
generate_qa.py (--per-chunk 0: the fact pairs and filters, no model) on it, each in
its own process, timed, with the process's peak RSS. Writes long_pdf_bench.json
and .md (seconds, peak memory, facts and pairs per size, and how each grows) and
manifest.json.
"""
import omnilm  # noqa: F401  (fast BLAS before mlx)

import json
import re
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from omnilm.atomic import write_text_atomic
from omnilm.config import make_parser
from omnilm.errors import UserError, run_main
from omnilm.paths import REPO_DIR, demo_text_model, display, resolve
from omnilm.pdf_writer import render_paper

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository, for benchmarks.harness
from benchmarks.harness import machine_line, results_folder, write_results_manifest  # noqa: E402

SOURCE = REPO_DIR / "10_stage1_cpt" / "demo_paper.md"


def long_paper(copies):
    """The demo paper's Markdown with its body repeated `copies` times, copy i about
    method VELLUMi with every number of the body shifted by i."""
    text = SOURCE.read_text()
    head, _, body = text.partition("\n## ")
    body = "## " + body.split("\n## References")[0]
    parts = [head]
    for i in range(copies):
        part = re.sub(r"\d+(?:\.\d+)?", lambda m: _shifted(m.group(0), i), body)
        parts.append(part.replace("VELLUM", f"VELLUM{i}" if i else "VELLUM").replace("## ", f"## Part {i + 1}: "))
    return "\n\n".join(parts) + "\n"


def _shifted(number, i):
    if "." in number:
        return f"{float(number) + i / 10:.1f}"
    return str(int(number) + i)


def run_stage(script, args):
    """(seconds, peak RSS of the child in GB) of one stage script."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    start = time.perf_counter()
    done = subprocess.run([sys.executable, str(REPO_DIR / script), *map(str, args)], capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise UserError(f"{script} failed: {done.stderr.strip().splitlines()[-1] if done.stderr.strip() else ''}")
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    # ru_maxrss of children is the largest child so far: a smaller later child reads as the earlier peak
    return seconds, max(peak, before) * 1024 / 1e9


def measure(pages_wanted, model, tmp):
    copies, pdf = 1, tmp / "long.pdf"
    while True:  # grow the copies until the PDF has the pages asked for
        data, pages = render_paper(long_paper(copies))
        pdf.write_bytes(data)
        if pages >= pages_wanted:
            break
        copies = max(copies + 1, round(copies * pages_wanted / pages))
    cpt, sft = tmp / f"cpt-{pages}", tmp / f"sft-{pages}"
    prepare_s, prepare_gb = run_stage("10_stage1_cpt/prepare_data.py", [
        "--pdf", pdf, "--model", model, "--output", cpt, "--replay", "0", "--golden", "none", "--force"])
    qa_s, qa_gb = run_stage("20_stage2_sft/generate_qa.py", [
        "--chunks", cpt, "--adapter", "none", "--per-chunk", "0", "--golden", "none", "--questions", "none",
        "--output", sft, "--force"])
    prepared = json.loads((cpt / "manifest.json").read_text())["metrics"]
    built = json.loads((sft / "manifest.json").read_text())["metrics"]
    return {"pages": pages, "copies": copies, "pdf_mb": round(pdf.stat().st_size / 1e6, 2),
            "prepare_s": round(prepare_s, 1), "prepare_peak_gb": round(prepare_gb, 2),
            "qa_s": round(qa_s, 1), "qa_peak_gb": round(qa_gb, 2), "tokens": prepared["tokens"],
            "chunks": prepared["chunks"], "facts": prepared["facts"], "facts_heldout": prepared["facts_heldout"],
            "sft_train_rows": built.get("train"), "dropped": sum(built.get("dropped_by_reason", {}).values())}


def markdown(rows, machine):
    lines = ["# A long paper through the data steps of stages 10 and 20", "", f"Machine: {machine}", "",
             "prepare_data.py with --replay 0 (extraction, cleaning, chunking, fact inventory, CPT text); "
             "generate_qa.py with --per-chunk 0 (fact pairs, filters, held-out leak check, split). "
             "Peak memory is the larger of the two processes' peak RSS so far.", "",
             "| pages | facts (held out) | prepare (s) | prepare peak RSS (GB) | Q&A data (s) | Q&A peak RSS (GB) |",
             "|---|---|---|---|---|---|"]
    lines += [f"| {r['pages']} | {r['facts']} ({r['facts_heldout']}) | {r['prepare_s']} | {r['prepare_peak_gb']} | "
              f"{r['qa_s']} | {r['qa_peak_gb']} |" for r in rows]
    if len(rows) > 1:
        a, b = rows[0], rows[-1]
        grow = b["pages"] / a["pages"]
        lines += ["", f"From {a['pages']} to {b['pages']} pages ({grow:.1f}x): prepare "
                      f"{b['prepare_s'] / a['prepare_s']:.1f}x, Q&A data {b['qa_s'] / a['qa_s']:.1f}x the time."]
    return "\n".join(lines) + "\n"


def main():
    p = make_parser(__doc__)
    p.add_argument("--pages", type=int, nargs="+", default=[40, 300], help="document sizes (default 40 300)")
    p.add_argument("--model", help="the tokenizer's model folder (default models/demo-omni-Text)")
    p.add_argument("--output", help="results folder (default results/long_pdf_bench)")
    args = p.parse_args()
    out = results_folder("long_pdf_bench", args.output)
    model = resolve(args.model) if args.model else demo_text_model()
    if not (model / "tokenizer.json").exists() and not (model / "tokenizer_config.json").exists():
        raise UserError(f"{display(model)} has no tokenizer (run ./run_pipeline.sh first, or pass --model)")
    rows = []
    with tempfile.TemporaryDirectory(prefix="omnilm-long-") as tmp:
        for n in sorted(args.pages):
            rows.append(measure(n, model, Path(tmp)))
            print(json.dumps(rows[-1]), flush=True)
    machine = machine_line()
    write_text_atomic(out / "long_pdf_bench.json", json.dumps({"machine": machine, "rows": rows}, indent=2) + "\n")
    text = markdown(rows, machine)
    write_text_atomic(out / "long_pdf_bench.md", text)
    write_results_manifest(out, "long_pdf_bench", args, metrics={"rows": rows})
    print("\n" + text + f"-> {display(out)}/long_pdf_bench.md, .json")


if __name__ == "__main__":
    run_main(main)
