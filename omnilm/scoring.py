"""Automatic verdicts: does an answer contain every key fact (in any accepted wording)?

A key fact is a list of accepted variants; an answer is correct when each fact is
found as whole words after normalization and not negated right before it
("not X", "is no X")."""
import re
import unicodedata

NEGATIONS = {"not", "no", "never", "isn't", "isnt", "aren't", "arent", "doesn't", "doesnt", "without", "neither", "nor"}
NEGATION_WINDOW = 3  # words before a match that can negate it


def normalize(text):
    """Lower case, unify unicode and dashes, drop thousands separators and most punctuation."""
    text = unicodedata.normalize("NFKC", text).lower()
    text = re.sub(r"[\u2010-\u2015\u2212]", "-", text)
    text = re.sub(r"(?<=\d),(?=\d{3}\b)", "", text)          # 12,000 -> 12000
    text = re.sub(r"(?<=\d)\s*%", " percent", text)           # 38% -> 38 percent
    text = re.sub(r"[^\w\s.'-]|(?<!\d)\.|\.(?!\d)", " ", text)  # keep decimal points only
    text = re.sub(r"(?<=\w)-(?=\w)", " ", text)               # hyphenated words compare as words
    return " ".join(text.split())


def find_fact(answer_words, variant):
    """Index where `variant` starts in the answer as whole words and unnegated, else None."""
    target = normalize(variant).split()
    n = len(target)
    for i in range(len(answer_words) - n + 1):
        if answer_words[i:i + n] == target:
            before = answer_words[max(0, i - NEGATION_WINDOW):i]
            if not NEGATIONS.intersection(before):
                return i
    return None


def score_answer(answer, key_facts):
    """(correct, facts found, facts missing). key_facts: [[variant, ...], ...]."""
    words = normalize(answer).split()
    found, missing = [], []
    for variants in key_facts:
        hit = next((v for v in variants if find_fact(words, v) is not None), None)
        (found if hit else missing).append(hit or variants[0])
    return (not missing and bool(key_facts)), found, missing
