"""The strict parser of model-written question/answer pairs, on well-formed and malformed outputs."""
import pytest

from omnilm.qa_generation import parse_qa, windows


def test_primed_output_gives_one_pair():
    parsed = parse_qa(" What does ATD stand for?\nAnswer: ATD stands for Anchor Token Distillation.")
    assert parsed.pairs == [("What does ATD stand for?", "ATD stands for Anchor Token Distillation.")]
    assert parsed.error is None


def test_markers_in_other_spellings_and_several_pairs():
    text = ("**Question 1:** What is GRR?\n**Answer 1:** GRR is the Gated Relevance Router.\n"
            "Q: What is PCW?\nA: PCW is Phased Curriculum Warmup.")
    parsed = parse_qa(text, primed=False)
    assert [q for q, _ in parsed.pairs] == ["What is GRR?", "What is PCW?"]


def test_reasoning_block_is_ignored():
    text = "<think>the text mentions GRR</think>Question: What is GRR?\nAnswer: GRR is the Gated Relevance Router."
    assert parse_qa(text, primed=False).pairs == [("What is GRR?", "GRR is the Gated Relevance Router.")]


@pytest.mark.parametrize("text, error", [
    (" What is VELLUM?", "question_without_answer"),
    (" What is VELLUM?\nAnswer: A method.\nQuestion: What is GRR?", "question_without_answer"),
    (" What is VELLUM?\nQuestion: What is GRR?\nAnswer: A router.", "marker_order"),
    (" \nAnswer: A method.", "empty_part"),
    (" What is VELLUM?\nAnswer: A method.\n\nThe answer is: a method", "trailing_text"),
])
def test_malformed_output_is_dropped_whole(text, error):
    parsed = parse_qa(text)
    assert parsed.pairs == [] and parsed.error == error


def test_unprimed_output_without_markers():
    assert parse_qa("VELLUM is a method.", primed=False).error == "no_markers"


def test_truncated_generation_loses_only_its_unfinished_pair():
    text = " What is GRR?\nAnswer: GRR is the Gated Relevance Router.\nQuestion: What is PCW?\nAnswer: PCW is Phased"
    assert parse_qa(text, truncated=True).pairs == [("What is GRR?", "GRR is the Gated Relevance Router.")]
    assert parse_qa(" What is PCW?\nAnswer: PCW is Phased", truncated=True).error == "truncated"


def test_a_marker_inside_a_line_stays_text_for_the_leakage_filter():
    parsed = parse_qa(" What is GRR?\nAnswer: A router. Question: what else?")
    assert parsed.pairs == [("What is GRR?", "A router. Question: what else?")]


def test_windows_cover_the_chunk_in_order():
    text = "One is here. Two is here. Three is here.\n\nFour is here. Five is here."
    parts = windows(text, 2)
    assert len(parts) == 2 and " ".join(parts) == "One is here. Two is here. Three is here. Four is here. Five is here."
    assert windows("Just one sentence.", 3) == ["Just one sentence."]
