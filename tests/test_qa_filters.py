"""Each filter on crafted pairs, and near-duplicate detection."""
import pytest

from omnilm.qa_filters import (check_context_dependent, check_grounding, check_leakage, check_length,
                               filter_pair, near_duplicate, split_sentences)

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
