"""Clean paragraphs -> chunks measured in the model's tokens, cut at paragraph or
sentence boundaries, each remembering its pages; and the seeded train/valid split."""
import random
import re
from dataclasses import dataclass

# A sentence ends at . ! ? (and a closing quote or bracket) followed by space and anything
# but a lower-case Latin letter (so 'e.g. the' goes on): a capital, digit, bracket, quote,
# or a letter of a script without case (Hangul, Han...). It also ends at the full-width
# 。！？, space or not. Not after an abbreviation or an initial (see split_sentences).
CLOSERS = "\"')]\u201d\u2019\u300d\u300f"  # " ' ) ] and curly / CJK closing quotes
SENTENCE_END = re.compile(rf"(?<=[.!?])[{re.escape(CLOSERS)}]?\s+(?=[^\W_a-z\u00df-\u00ff]|[\[(\"'\u201c\u2018\u300c\u300e])"
                          rf"|(?<=[\u3002\uff01\uff1f])[{re.escape(CLOSERS)}]?\s*(?=\S)")
ABBREVIATIONS = {"e.g", "i.e", "et al", "etc", "fig", "figs", "eq", "eqs", "sec", "tab", "vs", "cf", "no",
                 "dr", "mr", "mrs", "ms", "prof", "approx", "resp", "vol", "pp", "ch", "ref", "refs"}
MIN_FILL = 0.6  # a paragraph boundary is preferred over a sentence one once a chunk is this full


@dataclass
class Unit:
    """A sentence (or a piece of an over-long one): the smallest thing a chunk holds."""
    text: str
    paragraph: int
    pages: list
    tokens: int
    heading: bool


def split_sentences(text):
    """[(start, end)] character spans of the sentences of `text`."""
    spans, start = [], 0
    for m in SENTENCE_END.finditer(text):
        before = text[start:m.start()].rstrip(CLOSERS)
        last_word = before.rsplit(None, 1)[-1].rstrip(".!?").lower() if before.split() else ""
        if before.endswith((".", "!", "?")) and (last_word in ABBREVIATIONS or re.fullmatch(r"[a-z]", last_word)
                                                 or before.lower().endswith("et al.")):
            continue
        spans.append((start, m.start() + len(m.group(0).rstrip())))
        start = m.end()
    if start < len(text):
        spans.append((start, len(text)))
    return [(a, b) for a, b in spans if text[a:b].strip()]


def _split_long(text, count_tokens, limit):
    """Word windows of at most `limit` tokens (for a 'sentence' longer than a chunk)."""
    pieces, current = [], []
    for word in text.split():
        if current and count_tokens(" ".join(current + [word])) > limit:
            pieces.append(" ".join(current))
            current = []
        current.append(word)
    if current:
        pieces.append(" ".join(current))
    return pieces


def make_units(paragraphs, count_tokens, max_tokens):
    units = []
    for n, para in enumerate(paragraphs):
        for start, end in split_sentences(para.text):
            sentence = para.text[start:end].strip()
            pages = para.pages(start, end)
            tokens = count_tokens(sentence)
            pieces = [sentence] if tokens <= max_tokens else _split_long(sentence, count_tokens, max_tokens)
            for piece in pieces:
                units.append(Unit(piece, n, pages, tokens if len(pieces) == 1 else count_tokens(piece),
                                  para.is_heading))
    return units


def join_units(units):
    """Sentences of one paragraph joined by a space, paragraphs by a blank line."""
    out = ""
    for i, u in enumerate(units):
        if i:
            out += " " if u.paragraph == units[i - 1].paragraph else "\n\n"
        out += u.text
    return out


def make_chunks(paragraphs, count_tokens, max_tokens=512, overlap=64):
    """Chunks of at most `max_tokens` tokens (as `count_tokens` measures the joined text),
    cut after a paragraph when the chunk is at least MIN_FILL full, else after a
    sentence, never right after a heading; each next chunk repeats up to `overlap`
    tokens of whole sentences from the end of the previous one.
    Returns [{"text", "pages", "tokens"}]."""
    if max_tokens < 16 or not 0 <= overlap < max_tokens // 2:
        raise ValueError(f"need max_tokens >= 16 and 0 <= overlap < max_tokens/2 (got {max_tokens}, {overlap})")
    units = make_units(paragraphs, count_tokens, max_tokens - 1)
    chunks, start, fresh = [], 0, 0  # fresh: first unit not yet in any chunk
    while fresh < len(units):
        end, total = start, 0
        while end < len(units) and total + units[end].tokens + 1 <= max_tokens:
            total += units[end].tokens + 1
            end += 1
        if end <= fresh:
            if start < fresh:  # the overlap left no room for new text: start clean
                start = fresh
                continue
            end = fresh + 1  # one unsplittable piece longer than a chunk (a huge 'word')
        if end < len(units):
            end = _best_cut(units, start, end, fresh, max_tokens)
        text = join_units(units[start:end])
        tokens = count_tokens(text)
        while tokens > max_tokens and end - 1 > fresh:  # the estimate was short: give back a sentence
            end -= 1
            text = join_units(units[start:end])
            tokens = count_tokens(text)
        chunks.append({"text": text, "pages": sorted({p for u in units[start:end] for p in u.pages}),
                       "tokens": tokens})
        previous_start, fresh, start = start, end, end
        budget = overlap
        while start - 1 > previous_start and units[start - 1].tokens + 1 <= budget:
            budget -= units[start - 1].tokens + 1
            start -= 1
    return chunks


def _best_cut(units, start, end, fresh, max_tokens):
    """Where to end a chunk spanning units[start:end]: the last paragraph boundary past
    MIN_FILL, else the last sentence boundary; never right after a heading."""
    filled = 0
    fill_at = {}
    for i in range(start, end):
        filled += units[i].tokens + 1
        fill_at[i + 1] = filled
    for cut in range(end, fresh, -1):
        if fill_at[cut] < MIN_FILL * max_tokens:
            break
        if cut < len(units) and units[cut].paragraph != units[cut - 1].paragraph and not units[cut - 1].heading:
            return cut
    for cut in range(end, fresh, -1):
        if not units[cut - 1].heading:
            return cut
    return end


def split_train_valid(n, valid_fraction=0.1, seed=0):
    """Seeded split of n chunk indices: (train, valid), both sorted, at least one of each."""
    if n < 2:
        raise ValueError("need at least 2 chunks to split into train and valid")
    n_valid = min(n - 1, max(1, round(n * valid_fraction)))
    order = list(range(n))
    random.Random(seed).shuffle(order)
    return sorted(order[n_valid:]), sorted(order[:n_valid])
