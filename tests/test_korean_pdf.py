"""A PDF whose text is Korean: written as a real PDF (Type0 font, Identity-H, our own
ToUnicode map), read back the same by pdftotext and pdfplumber, and turned by stage 10
into chunks and grounded facts."""
import importlib.util
import json
import re
import shutil
from collections import Counter

import pytest

from omnilm.facts import ungrounded
from omnilm.paths import REPO_DIR
from omnilm.pdf_text import clean_pages, extract_pages, join_paragraphs
from omnilm.pdf_writer import Page, render_paper, text_width, write_pdf

KOREAN = (REPO_DIR / "tests" / "fixtures" / "korean_paragraph.txt").read_text().strip()
TITLE = "HANA: 긴 문서를 위한 계층적 앵커 네트워크 어댑터"
# a second paragraph, so the document makes more than one chunk and has a second page's worth of facts
SECOND = ("학습에는 모두 12,400개의 질문이 사용되었다. 검증 세트는 1,200개의 질문으로 이루어진다. "
          "전체 학습은 A100 GPU 4장에서 약 9시간이 걸렸다.")
MARKDOWN = f"# {TITLE}\n\n김하나, 이도윤\n한빛 연구소 기술 보고서 HB-TR-2026-04\n\n## 1 서론\n\n{KOREAN}\n\n## 2 실험\n\n{SECOND}\n"
needs_pdftotext = pytest.mark.skipif(not shutil.which("pdftotext"), reason="poppler's pdftotext not installed")


@pytest.fixture(scope="module")
def korean_pdf(tmp_path_factory):
    path = tmp_path_factory.mktemp("korean") / "hana_ko.pdf"
    path.write_bytes(render_paper(MARKDOWN)[0])
    return path


def test_korean_text_is_written_in_a_unicode_font_and_latin_pdfs_are_unchanged(korean_pdf):
    pdf = korean_pdf.read_bytes()
    assert b"/Encoding /Identity-H" in pdf and b"/ToUnicode" in pdf and render_paper(MARKDOWN)[0] == pdf
    import pdfplumber

    with pdfplumber.open(korean_pdf) as doc:  # the document information too, as UTF-16
        assert doc.metadata["Title"] == TITLE and doc.metadata["Author"] == "김하나, 이도윤"
    plain = Page()
    plain.text(72, 700, "Only Latin text")
    assert b"Identity-H" not in write_pdf([plain])  # the Unicode font only when a page needs it
    assert text_width("한국어", size=10) == 30.0  # a syllable is one em wide
    with pytest.raises(ValueError, match="U\\+1F600"):
        plain.text(72, 680, "웃음 \U0001F600")  # beyond two-byte codes


@pytest.mark.parametrize("extractor", [pytest.param("pdftotext", marks=needs_pdftotext), "pdfplumber"])
def test_korean_pdf_reads_back_exactly(korean_pdf, extractor):
    raw, used = extract_pages(korean_pdf, extractor)
    assert used == extractor and "(cid:" not in raw[0]
    doc = clean_pages(raw)
    texts = [p.text for p in doc.paragraphs]
    # justified lines (spaces widened by TJ shifts) join back into the very paragraphs written
    assert KOREAN in texts and SECOND in texts and TITLE in texts
    assert "한빛 연구소 기술 보고서 HB-TR-2026-04" in texts and "1 of" not in doc.text
    assert not doc.dropped_pages and doc.stats["cid_placeholders_removed"] == 0


@needs_pdftotext
def test_both_extractors_agree_on_korean(korean_pdf):
    texts = [clean_pages(extract_pages(korean_pdf, e)[0]).text for e in ("pdftotext", "pdfplumber")]
    assert texts[0] == texts[1] and KOREAN in texts[0]


def test_without_the_tounicode_map_the_korean_is_lost(korean_pdf, tmp_path):
    """The control: the same PDF with its ToUnicode reference blanked out (same length, so
    the cross-reference table stays right) gives pdfminer only (cid:N) placeholders."""
    pdf = korean_pdf.read_bytes()
    bare = re.sub(rb" /ToUnicode \d+ 0 R", lambda m: b" " * len(m.group()), pdf)
    assert bare != pdf and len(bare) == len(pdf)
    (tmp_path / "bare.pdf").write_bytes(bare)
    raw, _ = extract_pages(tmp_path / "bare.pdf", "pdfplumber")
    assert "(cid:" in raw[0] and "인코더" not in clean_pages(raw).text


def test_a_full_korean_line_is_not_taken_for_a_short_one():
    """Hangul is twice as wide as Latin letters, so a full line of it holds about half
    the characters of a full line of English; only a really short line ends a paragraph."""
    latin = "HANA(Hierarchical Anchor Network Adapter) and KelpQA 71.3 EM, retrieval 2.5x faster"
    lines = [latin, "인코더는 여섯 개의 층으로 구성되며 각 층은 토큰을 압축한다 그리고", latin,
             "기본 설정에서는 여덟 개의 앵커 토큰을 사용한다 실험 결과를 보라", "끝."]
    assert [p.text for p in join_paragraphs([lines], Counter())] == [" ".join(lines)]


def _prepare_args(argv):
    """The stage-10 options as the script resolves them (its parser: defaults in one place)."""
    spec = importlib.util.spec_from_file_location("prepare_data", REPO_DIR / "10_stage1_cpt" / "prepare_data.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    from omnilm.config import parse_options

    return parse_options(script.build_parser(), "prepare", [str(a) for a in argv])


@pytest.mark.parametrize("extractor", [pytest.param("pdftotext", marks=needs_pdftotext), "pdfplumber"])
def test_stage_10_turns_the_korean_pdf_into_chunks_and_grounded_facts(project_root, demo_text_model, korean_pdf,
                                                                       extractor):
    from omnilm.prepare import prepare_document

    out = prepare_document(_prepare_args(["--pdf", korean_pdf, "--model", demo_text_model, "--extractor", extractor,
                                          "--output", project_root / "data" / "cpt" / "ko", "--replay", 0,
                                          "--golden", "none"]))
    chunks = [json.loads(line) for line in (out / "chunks.jsonl").read_text().splitlines()]
    facts = [json.loads(line) for line in (out / "facts.jsonl").read_text().splitlines()]
    assert len(chunks) >= 2
    text = "\n".join(c["text"] for c in chunks)
    for sentence in ("인코더는 6개의 층으로 구성된다.", "HANA는 KelpQA 벤치마크에서 71.3점의 정확 일치 점수를 기록했다。",
                     "학습에는 모두 12,400개의 질문이 사용되었다."):
        assert sentence in text
    answers = {f["answer"] for f in facts}
    assert {"6", "256", "71.3", "2.5", "16", "4", "9"} <= answers, answers  # both paragraphs' numbers
    assert {"12,400", "1,200"} <= answers, answers  # thousands separators before a counter word ('1,200개')
    for answer in ("12,400", "1,200"):
        fact = next(f for f in facts if f["answer"] == answer)
        assert f"{answer}개" in fact["statement"] and "몇" in fact["questions"][0]
    for f in facts:
        assert ungrounded(f) is None and f["sentence"] in text
    six = next(f for f in facts if f["answer"] == "6")
    assert six["statement"] == "인코더는 6개의 층으로 구성된다."
    manifest = json.loads((out / "manifest.json").read_text())["metrics"]
    assert manifest["extractor"] == extractor and manifest["pages_dropped"] == []
    assert manifest["cleaning"].get("cid_placeholders_removed", 0) == 0
