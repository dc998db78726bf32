"""Each filter on crafted pairs, and near-duplicate detection."""
from pathlib import Path

import pytest

from omnilm.qa_filters import (check_context_dependent, check_grounding, check_leakage, check_length, content_words,
                               filter_pair, near_duplicate, split_sentences, words)

CHUNK = ("The Gated Relevance Router (GRR) decides which anchors reach the decoder. For each question, the "
         "retriever returns 32 candidate passages. KelpQA holds 12,400 questions about marine biology field reports.")


def test_clean_grounded_pair_is_kept():
    assert filter_pair("How many candidate passages does the retriever return?",
                       "The retriever returns 32 candidate passages for each question.", CHUNK) is None


@pytest.mark.parametrize("question, answer", [
    ("What is GRR", "GRR is the Gated Relevance Router."),                  # not a finished question
    ("GRR?", "GRR is the Gated Relevance Router."),                        # too short
    ("What is GRR?", "12"),                                                 # bare fragment
    ("What is GRR?", " ".join(["word"] * 80) + "."),                        # too long
])
def test_length(question, answer):
    assert check_length(question, answer) == "length"


@pytest.mark.parametrize("question, answer", [
    ("What is GRR?", "Output Format: GRR is a router."),
    ("What is GRR?", "GRR is a router. Question: What is PCW?"),
    ("What is GRR?", "GRR is a router.<|im_end|>"),
    ("What is GRR?", "GRR is a router.\n\nNow do the same for this text."),
    ("What is GRR?", "The answer is the router."),
    ("What is GRR?", "The answer to this question about GRR is the router."),
    ("What is GRR? Why?", "GRR is a router."),
    ("What is GRR?", "GRR is vector-encoded, vector-encoded, and vector-encoded."),
])
def test_leakage_and_debris(question, answer):
    assert check_leakage(question, answer) == "leakage"


def test_leakage_passes_a_clean_pair():
    assert check_leakage("What is GRR?", "GRR is the Gated Relevance Router.") is None


@pytest.mark.parametrize("question", [
    "According to the text, what does GRR do?",
    "What is the purpose of the text above?",
    "What does this passage describe?",
    "What does it decide?",
    "Which model is mentioned above?",
])
def test_context_dependent(question):
    assert check_context_dependent(question) == "context_dependent"


@pytest.mark.parametrize("question", ["What does GRR do in the VELLUM paper?", "What is GRR in VELLUM?"])
def test_naming_the_document_is_not_context_dependent(question):
    assert check_context_dependent(question) is None


@pytest.mark.parametrize("question, answer", [
    ("What does GRR do?", "GRR is a device that controls the flow of traffic."),    # invented content
    ("How many questions does KelpQA hold?", "KelpQA holds 12,500 questions."),       # wrong number
    ("How many herons did the survey count?", "The retriever returns 32 candidate passages."),  # off-chunk question
    ("Which router decides which anchors reach the decoder?", "The router decides which anchors reach the decoder."),
])
def test_grounding(question, answer):
    assert check_grounding(question, answer, CHUNK) == "grounding"


def test_grounding_accepts_inflections_and_thousands_separators():
    assert check_grounding("How many questions does KelpQA hold?",
                           "KelpQA holds 12400 questions about marine biology reports.", CHUNK) is None


def test_near_duplicates():
    assert near_duplicate("What is the GRR?", "what is GRR")
    assert near_duplicate("How many anchor tokens does VELLUM compress each passage into?",
                          "How many anchor tokens does VELLUM compress a passage into?")
    assert not near_duplicate("What does ATD stand for in VELLUM?", "What does GRR stand for in VELLUM?")
    assert not near_duplicate("What is ATD?", "What is ATD in the VELLUM paper?")
    assert not near_duplicate("When was KelpQA released?", "Where was KelpQA released?")


def test_sentences_keep_decimals_and_split_paragraphs():
    assert split_sentences("VELLUM reaches 71.3 exact match. It is fast.\n\n4 Setup\nKelpQA is new.") == [
        "VELLUM reaches 71.3 exact match.", "It is fast.", "4 Setup KelpQA is new."]


def test_an_answer_that_only_restates_the_question_is_dropped():
    chunk = "VELLUM compresses passages of 256 tokens into 8 anchor tokens."
    assert check_grounding("How does VELLUM compress passages of 256 tokens into 8 anchor tokens?",
                           "VELLUM compresses passages of 256 tokens into 8 anchor tokens.", chunk) == "grounding"


def test_a_list_of_named_parts_is_not_repetition():
    assert check_leakage("What are the phases of Phased Curriculum Warmup?",
                         "Phased Curriculum Warmup has three phases: the reconstruction phase, "
                         "the routing phase and the joint phase.") is None


# Korean (and other scripts): HyperCLOVAX users feed Korean papers.
KOREAN = (Path(__file__).parent / "fixtures" / "korean_paragraph.txt").read_text(encoding="utf-8")
KOREAN_Q = "HANA의 인코더는 몇 개의 층으로 구성되는가?"


def test_korean_fixture_splits_into_its_eight_sentences():
    sentences = split_sentences(KOREAN)
    assert len(sentences) == 8
    assert sentences[1] == "인코더는 6개의 층으로 구성된다."
    assert sentences[3].endswith("71.3점의 정확 일치 점수를 기록했다。")  # the decimal did not split, 。 did
    assert sentences[5].endswith("좋아질까?") and sentences[6].startswith("실험 결과")


def test_content_words_keep_hangul_words_and_numbers():
    assert content_words("인코더는 6개의 층으로 구성된다.") == ["인코더", "6", "개", "층", "구성"]
    assert content_words("HANA는 KelpQA에서 71.3점, 12,400개의 질문을 기록했다.") == [
        "hana", "kelpqa", "71.3", "점", "12400", "개", "질문", "기록"]
    assert words("GRR은 2.5배") == ["grr", "은", "2.5", "배"]  # a change of script ends a word


def test_korean_particles_and_endings_are_stripped_consistently():
    for forms in (["인코더", "인코더는", "인코더에서는", "인코더가"], ["정확도", "정확도는", "정확도가"],
                  ["구성된다", "구성됩니다", "구성되는가"], ["층", "층으로"]):
        assert len({tuple(content_words(f)) for f in forms}) == 1, forms
    assert content_words("인코더에서는 구성됩니다 정확도가") == ["인코더", "구성", "정확"]


def test_other_scripts_are_words_too():
    assert words("Modèle café हिन्दी Ελληνικά") == ["modèle", "café", "हिन्दी", "ελληνικά"]
    assert words("中文モデル") == ["中", "文", "モ", "デ", "ル"]  # no spaces to find words by: one per character
    assert content_words("the routers counted") == ["router", "count"]  # English unchanged


@pytest.mark.parametrize("question, answer", [
    (KOREAN_Q, "HANA의 인코더는 6개의 층으로 구성된다."),
    (KOREAN_Q, "HANA 인코더는 6개의 층으로 구성됩니다."),               # another ending than the source's
    ("HANA는 긴 문서를 무엇으로 요약하는가?", "긴 문서를 소수의 앵커 벡터로 요약한다."),  # only Hangul words
])
def test_a_grounded_korean_pair_is_kept(question, answer):
    assert check_grounding(question, answer, KOREAN) is None
    assert filter_pair(question, answer, KOREAN) is None


@pytest.mark.parametrize("question, answer", [
    (KOREAN_Q, "HANA의 인코더는 12개의 층으로 구성된다."),                          # a number not in the source
    (KOREAN_Q, "HANA의 인코더는 6개의 순환 신경망 블록과 별도의 디코더를 쓴다."),      # invented words, true number
    ("HANA의 디코더는 몇 개의 층으로 구성되는가?", "디코더는 깊은 신경망 구조를 사용한다."),  # invented content
    (KOREAN_Q, "HANA의 인코더는 몇 개의 층으로 구성된다."),                          # restates the question
])
def test_an_ungrounded_korean_pair_is_dropped(question, answer):
    assert check_grounding(question, answer, KOREAN) == "grounding"


def test_korean_near_duplicates():
    assert not near_duplicate(KOREAN_Q, "HANA의 디코더는 몇 개의 층으로 구성되는가?")  # another noun
    assert not near_duplicate("인코더는 6개의 층으로 구성되는가?", "인코더는 8개의 층으로 구성되는가?")  # another number
    assert near_duplicate(KOREAN_Q, "HANA 인코더가 몇 개의 층 으로 구성됩니까?")  # other particles, spacing, ending
    assert near_duplicate("인코더는 6개의 층으로 구성되는가?", "인코더는 6 개의 층으로 구성되는가?")
