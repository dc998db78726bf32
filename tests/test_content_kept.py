"""Nothing silently dropped: a reference list loses its entries only (an appendix or a
second paper after it is kept, and the summary says what went and why), thousands
separators survive in any script, a CJK line break adds no space, and "Table 1" or
"표 1" is a label, not a quantity."""
import json
import shutil
from pathlib import Path

import pytest

from omnilm.fact_rules import quantity_facts
from omnilm.facts import has_answer
from omnilm.pdf_text import clean_pages, extract_pages, line_width
from omnilm.pdf_writer import render_paper
from omnilm.scoring import normalize, score_answer

LMER = Path("/usr/lib/R/site-library/lme4/doc/lmer.pdf")  # Debian's r-cran-lme4

FIRST = """# Modular fits of mixed models
A. Author, B. Author
Technical report MF-1

## 1 Introduction

Mixed models are fitted in four modular steps that we describe here in detail, one after another, with care.

The first step parses the formula into a model frame and the random-effects terms of the design.

The second step builds the deviance function of the covariance parameters for the chosen criterion.

The third step optimizes that deviance with a bounded optimizer, starting from the identity covariance.

The fourth step packs the optimum and the data into the fitted model object that users inspect.

## References

[1] D. Bates and M. Maechler. Fitting linear mixed-effects models. Journal of Statistical Software, 2015.

[2] J. Pinheiro and D. Bates. Mixed-effects models in S and S-PLUS. Springer, 2000.

## A. Modularization examples

The modular functions let a user change the optimizer between the steps of a fit without refitting the model."""

SECOND = """

## Fitting sparse models in practice

## 1 Introduction

The second paper measures the fill-in of a sparse Cholesky factor on three benchmark designs of growing size.

## References

[1] T. Davis. Direct methods for sparse linear systems. SIAM, 2006.

## B. Proofs of the bounds

The bound on the fill-in follows from the elimination tree of the permuted matrix in every case we tried."""


def clean(markdown, tmp_path):
    pdf = tmp_path / "paper.pdf"
    pdf.write_bytes(render_paper(markdown)[0])
    return clean_pages(extract_pages(pdf)[0])


def test_an_appendix_after_the_references_is_kept(tmp_path):
    doc = clean(FIRST, tmp_path)
    assert "A. Modularization examples" in doc.text
    assert "change the optimizer between the steps of a fit" in doc.text
    assert "four modular steps" in doc.text
    assert "Journal of Statistical Software" not in doc.text and "Springer" not in doc.text
    assert doc.stats["reference_entries_dropped"] == 2 and doc.stats["reference_lists"] == 1


def test_every_paper_of_a_pdf_with_several_reference_lists_is_kept(tmp_path):
    doc = clean(FIRST + SECOND, tmp_path)
    for words in ("four modular steps", "change the optimizer", "Fitting sparse models in practice",
                  "fill-in of a sparse Cholesky factor", "B. Proofs of the bounds", "elimination tree"):
        assert words in doc.text, words
    assert "SIAM" not in doc.text and "Springer" not in doc.text
    assert doc.stats["reference_lists"] == 2 and doc.stats["reference_entries_dropped"] == 3


def test_the_summary_says_what_was_dropped_and_why(project_root, demo_text_model, tmp_path):
    from omnilm.prepare import prepare_document
    from test_korean_pdf import _prepare_args

    pdf = tmp_path / "modular.pdf"
    pdf.write_bytes(render_paper(FIRST + SECOND)[0])
    out = prepare_document(_prepare_args(["--pdf", pdf, "--model", demo_text_model, "--output",
                                          project_root / "data" / "cpt" / "modular", "--replay", 0, "--min-chunks", 2,
                                          "--golden", "none"]))
    metrics = json.loads((out / "manifest.json").read_text())["metrics"]
    assert metrics["references_dropped"] == {"lists": 2, "entries": 3,
                                             "why": "references only (--keep-references keeps them)"}
    text = "\n".join(json.loads(line)["text"] for line in (out / "chunks.jsonl").read_text().splitlines())
    assert "elimination tree" in text and "change the optimizer" in text


def test_dropped_references_are_named_in_the_printed_summary(project_root, demo_text_model, tmp_path, capsys):
    from omnilm.prepare import prepare_document
    from test_korean_pdf import _prepare_args

    pdf = tmp_path / "modular.pdf"
    pdf.write_bytes(render_paper(FIRST)[0])
    prepare_document(_prepare_args(["--pdf", pdf, "--model", demo_text_model, "--output",
                                    project_root / "data" / "cpt" / "m1", "--replay", 0, "--golden", "none"]))
    printed = capsys.readouterr().out
    assert "2 reference entries of 1 reference list dropped" in printed, printed


@pytest.mark.skipif(not LMER.exists() or not shutil.which("pdftotext"), reason="r-cran-lme4's lmer.pdf not installed")
def test_lmer_appendix_pages_are_kept():
    raw, _ = extract_pages(LMER, "pdftotext")
    doc = clean_pages(raw)
    used = {pg for p in doc.paragraphs for pg in p.pages()}
    assert set(range(44, 52)) <= used, sorted(used)[-12:]  # A. Modularization examples .. the affiliations
    assert "A. Modularization examples" in doc.text and "Zero slope-slope covariance models" in doc.text
    assert all(doc.dropped_pages[n].startswith("references only") for n in (41, 42, 43))


def test_thousands_separators_survive_in_any_script():
    assert normalize("1,200개") == "1200 개"
    assert normalize("12,400개의 질문") == "12400 개의 질문"
    assert normalize("12,000 tokens") == "12000 tokens"
    assert score_answer("1,200개입니다", [["1,200"]])[0]
    assert score_answer("정답은 1,200개입니다.", [["1,200개"]])[0]
    assert not score_answer("1,300개입니다", [["1,200"]])[0]
    assert has_answer("검증 세트는 1,200개의 질문으로 이루어진다.", ["1,200"])
    assert not has_answer("검증 세트는 11,200개의 질문으로 이루어진다.", ["1,200"])


def wrap_per_character(text, width):
    """Lines as a layout that wraps per character does: a line ends where the next
    character no longer fits (in mid-word or not), and a space at a break is dropped."""
    lines, line = [], ""
    for ch in text:
        if line_width(line + ch) > width:
            lines.append(line.rstrip())
            line = "" if ch == " " else ch
        else:
            line += ch
    return lines + [line]


KOREAN = ("실험 결과 앵커 토큰이 16개 이상에서는 정확도가 오히려 떨어졌다. 따라서 기본 설정에서는 8개의 앵커 토큰을 "
          "사용하며 정확도가 가장 높은 설정을 고른다. 이 설정은 모든 실험에서 같다. 앵커 토큰의 수가 늘면 정확도가 "
          "떨어지고 검색 시간이 늘어난다. 실험 결과 기본 설정이 가장 낫다.")
CHINESE = "本研究提出了一种用少量锚点向量概括长文档的方法。编码器由六层组成，每层把二百五十六个词元压缩为八个锚点词元。"


@pytest.mark.parametrize("width", [24, 28, 30, 36])
def test_a_cjk_line_break_adds_no_space(width):
    assert clean_pages(["\n".join(wrap_per_character(CHINESE, width))]).text == CHINESE
    lines = wrap_per_character(KOREAN, width)
    text = clean_pages(["\n".join(lines)]).text
    offset = 0
    for line, after in zip(lines, lines[1:]):
        offset = KOREAN.index(line, offset) + len(line)
        head, tail = line.split()[-1], after.split()[0]
        if KOREAN[offset] != " ":  # a word broken at the line end ("정|확도가") is whole again
            assert head + tail in text and f"{head} {tail}" not in text, (head, tail, text)
        elif head.endswith("."):   # a sentence's end keeps its space
            assert f"{head} {tail}" in text, (head, tail, text)
    assert "1 6개" not in text and text.replace(" ", "") == KOREAN.replace(" ", "")


def test_a_table_or_figure_number_is_no_quantity():
    for sentence in ("자세한 결과는 표 1을 참고하라 그러면 인코더의 구성을 알 수 있다.",
                     "그림 2에서 보듯이 정확도는 앵커 수에 따라 달라진다.",
                     "As table 3 shows, the encoder is the part that takes the longest to train."):
        assert [f["answer"] for f in quantity_facts(sentence, "HANA", "HANA")] == [], sentence
    assert [f["answer"] for f in quantity_facts("인코더는 모두 6개의 층으로 구성된다.", "HANA", "HANA")] == ["6"]
