"""Reasoning blocks: split from the answer whole, nested, unclosed, several, and while streaming."""
import pytest

from omnilm.think import is_thinking, split_reasoning, split_streaming


@pytest.mark.parametrize("text, answer, reasoning", [
    ("Paris.", "Paris.", ""),
    ("<think>\nThe capital...\n</think>\n\nParis.", "Paris.", "The capital..."),
    ("<think></think>Paris.", "Paris.", ""),                                       # empty block
    ("<think>\n\n</think>\n\nParis.", "Paris.", ""),                              # the template's skip block
    # several blocks: answers joined, reasoning blocks kept apart
    ("<think>a</think>One. <think>b</think>Two.", "One. Two.", "a\n\nb"),
    # nested blocks count as one block; nothing inside leaks into the answer
    ("<think>outer <think>inner</think> still outer</think>Answer", "Answer", "outer inner still outer"),
    ("<think>x<think>y<think>z</think></think></think>A", "A", "xyz"),
    # unclosed: runs to the end, the answer so far stays
    ("Start. <think>pondering", "Start.", "pondering"),
    ("<think>only reasoning so far", "", "only reasoning so far"),
    ("<think>a<think>b</think>still open", "", "abstill open"),
    # the prompt opened the block: a close before any open ends reasoning begun at the start
    ("reasoning from the prompt</think>\n\nAnswer", "Answer", "reasoning from the prompt"),
    ("r1</think>A1 <think>r2</think>A2", "A1 A2", "r1\n\nr2"),
    # a stray close after a finished block is dropped, not shown
    ("<think>a</think>B</think>C", "BC", "a"),
    # text around tags on one line
    ("Before <think>mid</think> after", "Before  after", "mid"),
])
def test_split_reasoning(text, answer, reasoning):
    assert split_reasoning(text) == (answer, reasoning)


@pytest.mark.parametrize("text, thinking", [
    ("", False), ("Answer", False), ("<think>", True), ("<think>a</think>", False),
    ("<think>a<think>b</think>", True), ("<think>a</think>b<think>c", True), ("x</think>y", False),
])
def test_is_thinking(text, thinking):
    assert is_thinking(text) is thinking


def test_answer_never_contains_a_tag_at_any_streaming_step():
    """Tags arrive split across tokens ('<', 'think', '>'): no prefix ever shows a tag
    or a piece of one in the answer, and the final split equals split_reasoning."""
    full = "<think>\nLet me recall the paper.\n</think>\n\nVELLUM uses <b>8</b> anchor tokens. <think>check</think>Done."
    pieces = ["<", "think", ">", "\nLet me recall", " the paper.\n", "</", "think", ">\n\n", "VELLUM uses <b>8",
              "</b> anchor", " tokens. <", "th", "ink>check<", "/think>", "Done."]
    assert "".join(pieces) == full
    text, seen_answers = "", []
    for piece in pieces:
        text += piece
        answer, reasoning, thinking = split_streaming(text)
        assert "think>" not in answer and not answer.endswith(("<", "</", "</th", "<th"))
        assert "think" not in reasoning.replace("Let me recall", "")
        seen_answers.append(answer)
    assert split_streaming(full)[:2] == split_reasoning(full)
    assert seen_answers[3] == "" and split_streaming("<think>\nLet me")[2] is True
    assert split_reasoning(full) == ("VELLUM uses <b>8</b> anchor tokens. Done.", "Let me recall the paper.\n\ncheck")
    assert seen_answers[-1] == "VELLUM uses <b>8</b> anchor tokens. Done."


def test_streaming_holds_back_only_possible_tag_prefixes():
    assert split_streaming("a < b")[0] == "a < b"           # a real '<' in the middle stays
    assert split_streaming("x <")[0] == "x"                  # may become '<think>': held back
    assert split_streaming("x <b")[0] == "x <b"              # cannot become a tag: shown
    assert split_streaming("x </thi")[0] == "x"
    assert split_streaming("<think>deep </thi") == ("", "deep", True)


def test_long_text_with_many_blocks_is_linear_enough():
    text = "".join(f"<think>r{i}</think>a{i} " for i in range(2000))
    answer, reasoning = split_reasoning(text)
    assert answer.startswith("a0 a1") and reasoning.count("\n\n") == 1999
