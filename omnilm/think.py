"""Reasoning blocks: `<think>...</think>` split from the answer.

The omni model's answers may open with a reasoning block. The chat app hides it
(or shows it collapsed) and never feeds it back into the history; the evaluation
scores only the answer. While streaming, a block may still be open: everything
after an unclosed `<think>` is reasoning so far. When the prompt itself opened the
block (a generation prompt ending in `<think>` without skip_reasoning), the text
starts inside it, so a `</think>` before any `<think>` closes reasoning that began
at the very start."""
OPEN, CLOSE = "<think>", "</think>"


def _scan(text):
    """(answer parts, reasoning blocks, depth at the end of the text)."""
    answer, blocks, current = [], [], []
    first_open, first_close = text.find(OPEN), text.find(CLOSE)
    depth = 1 if first_close != -1 and (first_open == -1 or first_close < first_open) else 0
    pos = 0
    while pos < len(text):
        hits = [i for i in (text.find(OPEN, pos), text.find(CLOSE, pos)) if i != -1]
        end = min(hits) if hits else len(text)
        (current if depth else answer).append(text[pos:end])
        if not hits:
            break
        if text.startswith(OPEN, end):
            depth += 1
            pos = end + len(OPEN)
            continue
        pos = end + len(CLOSE)
        if depth:  # a stray closing tag outside any block is dropped
            depth -= 1
            if depth == 0:
                blocks.append("".join(current).strip())
                current = []
    if depth:
        blocks.append("".join(current).strip())
    return answer, blocks, depth


def split_reasoning(text):
    """(answer, reasoning): the text outside every think block, and the text inside
    them (blocks joined by blank lines). Nested blocks count as one; an unclosed
    block runs to the end of the text."""
    answer, blocks, _ = _scan(text)
    return "".join(answer).strip(), "\n\n".join(b for b in blocks if b)


def is_thinking(text):
    """True while a streamed text is still inside an unclosed think block."""
    return _scan(text)[2] > 0


def _partial_tag_at_end(text):
    """Length of a trailing prefix of a tag ("<", "</th"...): the next token may complete it."""
    for size in range(min(len(CLOSE) - 1, len(text)), 0, -1):
        tail = text[-size:]
        if OPEN.startswith(tail) or CLOSE.startswith(tail):
            return size
    return 0


def split_streaming(text):
    """(answer, reasoning, thinking) of a text still being streamed. A tag cut in
    half at the end (tags span several tokens) is held back, so "<thi" never
    flashes in the answer before it becomes a hidden block."""
    held = _partial_tag_at_end(text)
    visible = text[:len(text) - held] if held else text
    answer, reasoning = split_reasoning(visible)
    return answer, reasoning, is_thinking(visible)
