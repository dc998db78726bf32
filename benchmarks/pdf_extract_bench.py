"""Pages per second of the two PDF text extractors, side by side on one PDF.

Examples:
  python benchmarks/pdf_extract_bench.py                  # data/demo_paper.pdf -> results/pdf_extract_bench.json
  python benchmarks/pdf_extract_bench.py --pdf papers/long.pdf --repeats 5

Each repeat runs pdftotext then pdfplumber on the same file (interleaved, so both
see the same machine load); medians with min-max. Also says whether the two give
the same cleaned text.
"""
import json
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from omnilm.atomic import write_text_atomic  # noqa: E402
from omnilm.config import make_parser  # noqa: E402
from omnilm.errors import UserError, run_main  # noqa: E402
from omnilm.paths import demo_pdf, display, resolve, results_dir  # noqa: E402
from omnilm.pdf_text import choose_extractor, clean_pages, extract_pages  # noqa: E402


def main():
    p = make_parser(__doc__)
    p.add_argument("--pdf", help="PDF to read (default: data/demo_paper.pdf)")
    p.add_argument("--repeats", type=int, default=7, help="runs of each extractor (default 7)")
    p.add_argument("--output", help="JSON to write (default: results/pdf_extract_bench.json)")
    args = p.parse_args()
    pdf = resolve(args.pdf) if args.pdf else demo_pdf()
    if not pdf.exists():
        raise UserError(f"{display(pdf)} does not exist (python 10_stage1_cpt/make_demo_pdf.py makes the demo one)")
    extractors = ["pdfplumber"]
    if choose_extractor("auto") == "pdftotext":
        extractors.insert(0, "pdftotext")
    seconds, texts = {e: [] for e in extractors}, {}
    for _ in range(args.repeats):
        for e in extractors:
            started = time.perf_counter()
            pages, _ = extract_pages(pdf, e)
            seconds[e].append(time.perf_counter() - started)
            texts[e] = clean_pages(pages).text
    n = len(pages)
    result = {"pdf": display(pdf), "pages": n, "repeats": args.repeats, "extractors": {}}
    for e in extractors:
        med = statistics.median(seconds[e])
        result["extractors"][e] = {"median_s": round(med, 4), "min_s": round(min(seconds[e]), 4),
                                   "max_s": round(max(seconds[e]), 4), "pages_per_s": round(n / med, 1)}
    if len(extractors) == 2:
        a, b = (result["extractors"][e]["pages_per_s"] for e in extractors)
        result["pdftotext_speedup"] = round(a / b, 1)
        result["same_clean_text"] = texts["pdftotext"] == texts["pdfplumber"]
    output = resolve(args.output) if args.output else results_dir() / "pdf_extract_bench.json"
    write_text_atomic(output, json.dumps(result, indent=2) + "\n")
    for e, r in result["extractors"].items():
        print(f"{e:10} {r['pages_per_s']:7.1f} pages/s (median of {args.repeats}, {r['min_s']}-{r['max_s']} s)")
    print(f"-> {display(output)}")


if __name__ == "__main__":
    run_main(main)
