"""Render the demo paper (committed Markdown source) to a real PDF.

Examples:
  python 10_stage1_cpt/make_demo_pdf.py                     # 10_stage1_cpt/demo_paper.md -> data/demo_paper.pdf
  python 10_stage1_cpt/make_demo_pdf.py --output /tmp/paper.pdf --force

The PDF is laid out like a real paper (title block, running header, page numbers,
justified text with a few words hyphenated at line ends, fi/fl ligatures, a ruled
table, references) so that stage 10's text cleaning has real work to do. Pure
Python, standard Times fonts, same bytes on every run.
"""

import omnilm  # noqa: F401  (fast BLAS before mlx)
from omnilm.atomic import atomic_file
from omnilm.config import make_parser
from omnilm.errors import UserError, run_main
from omnilm.paths import REPO_DIR, demo_pdf, display, resolve
from omnilm.pdf_writer import render_paper

DEFAULT_SOURCE = REPO_DIR / "10_stage1_cpt" / "demo_paper.md"


def main():
    p = make_parser(__doc__)
    p.add_argument("--source", help="the paper's Markdown source (default: 10_stage1_cpt/demo_paper.md)")
    p.add_argument("--output", help="PDF to write (default: data/demo_paper.pdf)")
    p.add_argument("--force", action="store_true", help="replace an existing PDF")
    args = p.parse_args()
    source = resolve(args.source) if args.source else DEFAULT_SOURCE
    output = resolve(args.output) if args.output else demo_pdf()
    if not source.is_file():
        raise UserError(f"source {display(source)} does not exist")
    if output.exists() and not args.force:
        raise UserError(f"output {display(output)} already exists; pass --force to replace it")
    try:
        pdf, pages = render_paper(source.read_text(encoding="utf-8"))
    except ValueError as e:
        raise UserError(f"{display(source)} cannot be rendered: {e}")
    with atomic_file(output) as tmp:  # never a half-written PDF in place
        tmp.write_bytes(pdf)
    print(f"demo paper: {display(output)} ({pages} pages, {len(pdf) / 1024:.0f} KiB) from {display(source)}")


if __name__ == "__main__":
    run_main(main)
