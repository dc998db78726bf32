"""Which question/answer pairs are clean enough to train on, and why the others are not.

Every check returns None (keep) or the reason it drops a pair; the reasons are the
keys counted in the SFT data manifest."""
import functools
import re
import unicodedata

from omnilm.chunking import split_sentences as sentence_spans

STOPWORDS = set("""
a an the and or but nor of to in on at by for with from into onto over under about as than then
is are was were be been being am do does did done has have had having can could will would shall
should may might must it its it's this that these those there here their them they he she his her
we our us you your i me my what which who whom whose when where why how whether if so not no yes
also only just very more most much many some any each every all both either neither one other
such same own too again further once out up down off per via while during after before because
""".split())

DOC_NOUNS = r"(?:text|passage|paper|document|chunk|excerpt|section|article|report|context|paragraph|sentence|study|author|authors)"
CONTEXT_DEPENDENT = [
    re.compile(rf"\b(?:this|the|above|following|given|that|provided)\s+{DOC_NOUNS}\b", re.I),
    re.compile(r"\baccording to\b", re.I),
    re.compile(r"\b(?:mentioned|described|stated|discussed|listed|shown)\s+(?:above|below|here|earlier)\b", re.I),
    re.compile(r"\b(?:in|from) the (?:above|text|passage)\b", re.I),
    re.compile(r"^\s*(?:what|how|why|who|where|when)\s+(?:does|do|is|are|did|was|were)\s+(?:it|they|this|these|he|she|we)\b", re.I),
]
LEAKAGE = [
    re.compile(r"\b(?:question|answer|output format|format|text|sentence|instruction|explanation|example|note|context)s?\s*:", re.I),
    re.compile(r"<\||\|>|</?think>|```|#{2,}|\*\*|\[/?INST\]", re.I),
    re.compile(r"\b(?:you are a helpful|as an ai|now do the same|the answer (?:is|to)|this question|write one question|one full sentence)\b", re.I),
    re.compile(r"\n\s*\n"),
]
LIMITS = {"question_words": (3, 30), "answer_words": (3, 60)}

# Korean particles (josa) glued to the end of a word: 인코더는 / 인코더가 / 인코더의 -> 인코더.
# A standalone one (after a split like 'GRR은' -> grr, 은) is dropped as a stopword, as is
# a standalone ending ('71.3%이다' -> 71.3, 이다).
PARTICLES = ("에서", "으로", "에게", "까지", "부터", "보다",
             "은", "는", "이", "가", "을", "를", "의", "에", "로", "와", "과", "도")
# Endings of the predicates answers end in (copula, 하다/되다 verbs): 구성된다, 구성됩니다,
# 구성되는가 -> 구성. Cut only where a stem of 2+ syllables is left (Sino-Korean nouns).
ENDINGS = ("되었다", "하였다", "입니다", "합니다", "됩니다", "입니까", "합니까", "됩니까", "하는가", "되는가",
           "이다", "이며", "이고", "인가",
           "한다", "된다", "했다", "됐다", "하며", "되며", "하고", "되고", "하여", "되어", "하는", "되는")
KOREAN_STOPWORDS = set(PARTICLES) | set(ENDINGS) | {"및", "또는", "그리고", "또한", "그", "것", "등"}
HANGUL = "\uac00-\ud7a3"
HANGUL_WORD = re.compile(f"[{HANGUL}]")
CJK = "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"  # kana and Han: written without spaces
# Combining marks (Devanagari vowel signs...) are not \w in Python's re; listing them keeps
# such words whole. Scripts that use them sit below U+3000.
MARKS = "".join(chr(c) for c in range(0x300, 0x3000) if unicodedata.category(chr(c))[0] == "M")
OTHER = rf"[^\W\d_{HANGUL}{CJK}]"  # a letter of any other script (Latin, Greek, Cyrillic...)
# A number; a run of Hangul syllables; one kana or Han character (no word boundaries to
# find there); a word of other letters. A change of script ends a word: 'grr은' -> grr, 은.
WORD = re.compile(rf"\d+(?:\.\d+)?|[{HANGUL}]+|[{CJK}]|{OTHER}(?:{OTHER}|['{MARKS}])*")


def normalize_text(text):
    """NFKC, one space, straight quotes: the form pairs are stored in."""
    text = unicodedata.normalize("NFKC", text).replace("\u2019", "'").replace("\u201c", '"').replace("\u201d", '"')
    return " ".join(text.split())


def words(text):
    """Lower-case words of any script and numbers (12,400 -> 12400; hyphenated words split)."""
    text = re.sub(r"(?<=\d),(?=\d{3}(?!\d))", "", unicodedata.normalize("NFKC", text).lower())
    return WORD.findall(text)


def stem(word):
    """A light, consistent suffix strip: compresses/compress, counted/counts/count match."""
    if word.endswith("sses"):
        return word[:-2]
    if word.endswith("ies") and len(word) > 4:
        return word[:-3] + "y"
    if word.endswith("s") and not word.endswith(("ss", "us", "is")) and len(word) > 3:
        return word[:-1]
    for suffix in ("ing", "ed"):
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            return word[: -len(suffix)]
    return word


def korean_stem(word):
    """A Hangul word without its predicate ending, then without its trailing particles:
    인코더는, 인코더에서는 -> 인코더; 사용한다, 사용됩니다 -> 사용. Particles go until none
    is left so that a noun that itself ends like one (정확도, 길이) gives the same form
    bare and with a particle (정확도는): 정확, 길."""
    ending = next((e for e in ENDINGS if word.endswith(e) and len(word) - len(e) >= 2), "")
    word = word[: len(word) - len(ending)]
    while True:
        particle = next((p for p in PARTICLES if word.endswith(p) and len(word) > len(p)), None)
        if not particle:
            return word
        word = word[: -len(particle)]


def content_words(text):
    """Words that carry meaning, in a form that matches across inflection: English ones
    stemmed, Hangul ones without particles, others (and numbers) as they are."""
    out = []
    for w in words(text):
        if w.isascii():
            w = None if w in STOPWORDS else stem(w)
        elif HANGUL_WORD.match(w):
            w = korean_stem(w)
            w = None if w in KOREAN_STOPWORDS else w
        if w:
            out.append(w)
    return out


def split_sentences(text):
    """Sentences of a chunk: paragraphs (blank lines) first, then sentence ends as the
    chunker finds them (English and Korean; not after an abbreviation, an initial or
    inside a number like 71.3)."""
    out = []
    for para in re.split(r"\n\s*\n", text):
        para = " ".join(para.split())
        out += [para[a:b].strip() for a, b in sentence_spans(para)]
    return [s for s in out if s]


def check_length(question, answer):
    q_lo, q_hi = LIMITS["question_words"]
    a_lo, a_hi = LIMITS["answer_words"]
    if not question.endswith("?"):
        return "length"  # not a single finished question
    if not q_lo <= len(question.split()) <= q_hi or not a_lo <= len(answer.split()) <= a_hi:
        return "length"
    return None


def repeats_itself(text, n=3):
    """Degenerate decoding: a word n-gram that occurs twice, or one content word that is
    at least 3 of the words and 40% of them (a list like 'three phases: the X phase,
    the Y phase...' stays below that)."""
    ws = words(text)
    grams = [tuple(ws[i:i + n]) for i in range(len(ws) - n + 1)]
    if len(grams) != len(set(grams)):
        return True
    content = content_words(text)
    return any(content.count(w) >= 3 and content.count(w) >= 0.4 * len(content) for w in set(content))


def check_leakage(question, answer):
    """Prompt leakage and format debris: markers, template tokens, instructions, repetition."""
    for text in (question, answer):
        if any(p.search(text) for p in LEAKAGE):
            return "leakage"
    if question.count("?") != 1 or "?" in answer or repeats_itself(question) or repeats_itself(answer):
        return "leakage"
    return None


def check_context_dependent(question):
    """A question that only makes sense next to the chunk ('according to the text...')."""
    return "context_dependent" if any(p.search(question) for p in CONTEXT_DEPENDENT) else None


def check_grounding(question, answer, source, min_overlap=0.8):
    """The answer's content words (and every number) must come from the source text;
    the question must be about it; the answer must add something to the question."""
    src = set(content_words(source))
    ans = content_words(answer)
    if not ans:
        return "grounding"
    if sum(w in src for w in ans) < min_overlap * len(ans):
        return "grounding"
    if any(w[0].isdigit() and w not in src for w in ans):
        return "grounding"
    q = content_words(question)
    if q and sum(w in src for w in q) < 0.5 * len(q):
        return "grounding"
    if set(ans) <= set(q):
        return "grounding"  # the answer only restates the question
    return None


def filter_pair(question, answer, source, min_overlap=0.8):
    """First reason to drop the pair, or None to keep it (order: cheapest and clearest first)."""
    return (check_length(question, answer) or check_leakage(question, answer)
            or check_context_dependent(question) or check_grounding(question, answer, source, min_overlap))


QUESTION_WORDS = {"what", "how", "why", "who", "whom", "whose", "where", "when", "which", "many", "much"}


@functools.lru_cache(maxsize=65536)  # each question is compared with every kept one: compute its key once
def question_key(question):
    """What a question asks, as a set: its content words plus its question words
    ('What is ATD?' and 'What is the ATD?' share a key; '... GRR ...' does not)."""
    return frozenset(content_words(question)) | (QUESTION_WORDS & set(words(question)))


def near_duplicate(q1, q2, threshold=0.85):
    """Jaccard similarity of the two keys at least `threshold`: word order, articles
    and inflection do not matter, a different concept or number does."""
    k1, k2 = question_key(q1), question_key(q2)
    if not k1 or not k2:
        return k1 == k2
    return len(k1 & k2) / len(k1 | k2) >= threshold


def find_near_duplicate(question, others, threshold=0.85):
    """The first of `others` that near-duplicates `question`, else None."""
    return next((o for o in others if near_duplicate(question, o, threshold)), None)
