"""Automatic verdicts: does an answer contain every key fact (in any accepted wording)?

A key fact is a list of accepted variants; an answer is correct when each fact is
found as whole words after normalization and not negated right before it, in the
same clause ("not X", "is no X"; "Without PCW, in 3 of 5 runs" does not negate "3 of 5")."""
import re
import unicodedata

NEGATIONS = {"not", "no", "never", "isn't", "isnt", "aren't", "arent", "doesn't", "doesnt", "without", "neither", "nor"}
NEGATION_WINDOW = 3  # words before a match that can negate it
GLUED_SCRIPT = re.compile("[\uac00-\ud7a3]")  # Hangul: particles and endings are written onto the word


def normalize(text):
    """Lower case, unify unicode and dashes, drop thousands separators (whatever script
    follows them) and most punctuation; a number is a word of its own in a script that
    glues a counter or particle to it."""
    text = unicodedata.normalize("NFKC", text).lower()
    text = re.sub(r"[\u2010-\u2015\u2212]", "-", text)
    text = re.sub(r"(?<=\d),(?=\d{3}(?!\d))", "", text)      # 12,000 -> 12000, 1,200개 -> 1200개
    text = re.sub(r"(?<=\d)(?=[^\W\d_\x00-\x7f])", " ", text)  # 1200개 -> 1200 개: a counter glued to a number
    text = re.sub(r"(?<=\d)\s*%", " percent", text)           # 38% -> 38 percent
    text = re.sub(r"[^\w\s.'-]|(?<!\d)\.|\.(?!\d)", " ", text)  # keep decimal points only
    text = re.sub(r"(?<=\w)-(?=\w)", " ", text)               # hyphenated words compare as words
    return " ".join(text.split())


# where a clause ends: a negation before it does not reach past it (not a decimal
# point, not a thousands comma)
CLAUSE_END = re.compile(r"[;:!?]|,(?!\d{3}(?!\d))|\.(?!\d)")


def clause_words(answer):
    """The answer's normalized words, and the clause each one is in."""
    words, clauses = [], []
    for n, clause in enumerate(CLAUSE_END.split(answer)):
        part = normalize(clause).split()
        words += part
        clauses += [n] * len(part)
    return words, clauses


def _same_word(word, target):
    """A word of the answer is the fact's word, or (Korean) that word with a particle or
    ending glued after it: '개입니다' holds '개'."""
    return word == target or bool(GLUED_SCRIPT.search(target[-1:])) and word.startswith(target)


def find_fact(answer_words, clauses, variant):
    """Index where `variant` starts in the answer as whole words and unnegated, else None.
    clauses: the clause of each word (clause_words); a negation counts in the fact's own
    clause only."""
    target = normalize(variant).split()
    n = len(target)
    if not n:
        return 0
    for i in range(len(answer_words) - n + 1):
        if answer_words[i:i + n - 1] == target[:-1] and _same_word(answer_words[i + n - 1], target[-1]):
            start = max(0, i - NEGATION_WINDOW)
            before = [w for j, w in enumerate(answer_words[start:i], start)
                      if clauses[j] == clauses[i]]
            if not NEGATIONS.intersection(before):
                return i
    return None


def score_answer(answer, key_facts):
    """(correct, facts found, facts missing). key_facts: [[variant, ...], ...]."""
    words, clauses = clause_words(answer)
    found, missing = [], []
    for variants in key_facts:
        hit = next((v for v in variants if find_fact(words, clauses, v) is not None), None)
        (found if hit else missing).append(hit or variants[0])
    return (not missing and bool(key_facts)), found, missing
