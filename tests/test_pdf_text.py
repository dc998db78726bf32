"""PDF writing, extraction and cleaning: crafted text, and the real demo PDF through both extractors."""
import shutil
from collections import Counter

import pytest

from omnilm.errors import UserError
from omnilm.paths import REPO_DIR
from omnilm.pdf_text import (clean_pages, dehyphenate, extract_pages, join_paragraphs, normalize_line,
                             strip_page_furniture)
from omnilm.pdf_writer import Page, hyphen_points, parse_paper, render_paper, write_pdf

DEMO_MD = (REPO_DIR / "10_stage1_cpt" / "demo_paper.md").read_text()
needs_pdftotext = pytest.mark.skipif(not shutil.which("pdftotext"), reason="poppler's pdftotext not installed")


@pytest.fixture(scope="module")
def demo_pdf(tmp_path_factory):
    pdf, pages = render_paper(DEMO_MD)
    path = tmp_path_factory.mktemp("pdf") / "demo_paper.pdf"
    path.write_bytes(pdf)
    return path


def test_characters_are_normalized():
    stats = Counter()
    line = normalize_line("The \ufb01rst (cid:12)e\ufb03cient\u00a0re\u00adsult\u200b  here", stats)
    assert line == "The first efficient result here"
    assert stats["cid_placeholders_removed"] == 1 and stats["ligatures_expanded"] == 2


def test_running_headers_footers_and_page_numbers_go_body_stays():
    same = "A sentence that every page repeats in its body."
    pages = [["Short Title", "Report 7", f"Line {n} of page {n}.", same, f"Last words of page {'abcd'[n - 1]}.", f"{n}"]
             for n in range(1, 5)]
    pages[0] = pages[0][2:]  # the first page has no running header
    stats = Counter()
    cleaned = strip_page_furniture(pages, stats)
    for n, lines in enumerate(cleaned, 1):
        assert lines == [f"Line {n} of page {n}.", same, f"Last words of page {'abcd'[n - 1]}."]
    assert stats["header_footer_lines_removed"] == 3 * 2 + 4


def test_dehyphenation_joins_split_words_and_keeps_compounds():
    vocab = {"vector", "encoded", "vector-encoded", "three", "phase", "layer", "compression"}
    assert dehyphenate("VELLUM compres-", "sion works", vocab)          # a word seen whole
    assert dehyphenate("the valida-", "tion set", set())                  # unknown: lowercase goes on
    assert not dehyphenate("stands for Vector-", "Encoded Latent", vocab)  # a compound seen hyphenated
    assert not dehyphenate("a three-", "phase schedule", vocab)           # both halves are words
    assert not dehyphenate("a 6-", "layer encoder", vocab)                # a number's hyphen
    assert not dehyphenate("see Kullback-", "Leibler", set())             # capital after the break


def test_lines_join_into_paragraphs_that_remember_pages():
    full = "x" * 60
    pages = [["3 Method", f"{full} first para-", f"graph goes on {full}", "and ends here."],
             [f"{full} paragraph two starts {full}", "and ends on page two.", f"[1] A. Author. A title {full}", "of a paper."]]
    paragraphs = join_paragraphs(pages, Counter())
    assert [p.text for p in paragraphs] == [
        "3 Method", f"{full} first paragraph goes on {full} and ends here.",
        f"{full} paragraph two starts {full} and ends on page two.", f"[1] A. Author. A title {full} of a paper."]
    assert paragraphs[0].is_heading and not paragraphs[1].is_heading
    assert paragraphs[1].pages() == [1] and paragraphs[2].pages() == [2]


def test_paragraph_across_a_page_break_has_both_pages():
    full = "y" * 60
    paragraphs = join_paragraphs([[f"{full} one", f"{full} two"], [f"{full} three", "end."]], Counter())
    (p,) = paragraphs
    assert p.pages() == [1, 2]
    cut = p.text.index("three")
    assert p.pages(0, 10) == [1] and p.pages(cut, cut + 5) == [2]


def test_references_dropped_unless_kept_and_pages_explained():
    text_page = ["A body sentence that is long enough to count as a full line.", "Short end."]
    raw = ["\n".join(text_page), "", "References\n[1] A. Author. A paper. 2024.\n[2] B. Author. Another. 2025.", "2"]
    doc = clean_pages(raw)
    assert "Author" not in doc.text and doc.stats["reference_chars_dropped"] > 0
    assert doc.dropped_pages[2].startswith("no text layer")
    assert doc.dropped_pages[3].startswith("references only")
    assert doc.dropped_pages[4].startswith("only a running header/footer or page number")
    kept = clean_pages(raw, keep_references=True)
    assert "[2] B. Author. Another. 2025." in kept.text and 3 not in kept.dropped_pages


def test_writer_is_deterministic_and_paper_shaped(demo_pdf):
    pdf, pages = render_paper(DEMO_MD)
    assert pdf == demo_pdf.read_bytes() and 4 <= pages <= 8
    assert hyphen_points("compression") and hyphen_points("Vector-Encoded") == [7]
    assert not hyphen_points("KelpQA")


@pytest.mark.parametrize("extractor", [pytest.param("pdftotext", marks=needs_pdftotext), "pdfplumber"])
def test_demo_pdf_cleans_back_to_its_source(demo_pdf, extractor):
    raw, used = extract_pages(demo_pdf, extractor)
    assert used == extractor
    assert sum(line.endswith("-") for page in raw for line in page.splitlines()) >= 3  # real hyphenation to undo
    assert all(f"{n} of {len(raw)}" in page for n, page in enumerate(raw, 1))
    doc = clean_pages(raw)
    _, _, blocks = parse_paper(DEMO_MD)
    for kind, payload in blocks:
        if kind == "paragraph":  # every source paragraph comes back word for word (two may be merged)
            assert any(payload in p.text for p in doc.paragraphs), payload[:60]
    assert " of 4" not in doc.text and doc.text.count("NIC-TR-2026-017") == 1  # only the title block's
    assert "Rivera" not in doc.text and doc.stats["hyphenations_joined"] >= 3 and not doc.dropped_pages


@needs_pdftotext
def test_both_extractors_agree_on_the_demo(demo_pdf):
    texts = [clean_pages(extract_pages(demo_pdf, e)[0]).text for e in ("pdftotext", "pdfplumber")]
    assert texts[0] == texts[1]


@pytest.mark.parametrize("extractor", [pytest.param("pdftotext", marks=needs_pdftotext), "pdfplumber"])
def test_unreadable_pdfs_are_refused_by_both_extractors(tmp_path, extractor):
    page = Page()
    page.text(72, 700, "Hello")
    good = write_pdf([page])
    cases = {"empty.pdf": (b"", "is empty"), "notes.pdf": (b"just some text\n", "is not a PDF"),
             "cut.pdf": (good[:len(good) // 2], "damaged or truncated"),
             "locked.pdf": (write_pdf([page], password_protected=True), "encrypted and needs a password")}
    for name, (data, why) in cases.items():
        (tmp_path / name).write_bytes(data)
        with pytest.raises(UserError, match=why):
            extract_pages(tmp_path / name, extractor)


def test_the_pipeline_and_stage_10_list_pdfs_by_one_rule(tmp_path, demo_pdf):
    """A folder holding only PAPER.PDF (upper case, a little junk before the header, which
    the PDF spec allows) is accepted by both the pipeline's early check and stage 10."""
    from omnilm.pdf_text import list_pdfs
    from omnilm.pipeline import check_user_inputs

    folder = tmp_path / "paper"
    folder.mkdir()
    (folder / "PAPER.PDF").write_bytes(b"\n\n" + demo_pdf.read_bytes())
    (folder / "notes.txt").write_text("not a PDF")
    assert list_pdfs(folder) == [folder / "PAPER.PDF"]
    check_user_inputs(None, folder)  # no error
    (folder / "broken.pdf").write_text("plain text")
    for check in (list_pdfs, lambda f: check_user_inputs(None, f)):
        with pytest.raises(UserError, match="broken.pdf is not a PDF"):
            check(folder)
