"""Question/answer pairs mined from the text itself, without a model.

Rules (each pair remembers which one made it):
- acronym:     "Anchor Token Distillation (ATD)"          -> What does ATD stand for? (in EXPANSION_QUESTIONS' wordings)
                                                             / What is the acronym of ...?
- stands_for:  "VELLUM, which stands for Vector-Encoded..." -> What does VELLUM stand for? (same wordings)
- definition:  "KelpQA is the benchmark ..." / "X, a benchmark of ..." -> What is KelpQA?
- does:        "The Gated Relevance Router (GRR) decides which ..." / "GRR, which selects ..." -> What does GRR do?
Answers are the document's own sentence about the concept, so they are grounded by
construction and restate the fact in full. Variants then ask each question with and
without the document's name ("What is ATD?" / "What is ATD in VELLUM?")."""
import re
from collections import Counter

from omnilm.qa_filters import split_sentences

SMALL_WORDS = {"of", "with", "for", "and", "the", "to", "in", "on", "a", "an", "by", "from"}
LEAD_WORDS = {"First", "Second", "Third", "Fourth", "Fifth", "Finally", "Then", "On", "In", "For", "With", "By",
              "At", "From", "Our", "We", "This", "These", "Its", "Their", "Both", "Each"}
CAP = r"[A-Z][\w-]*"
NAME = rf"(?:[Tt]he\s+)?{CAP}(?:\s+{CAP})*(?:\s+\([A-Z][A-Za-z0-9]{{1,9}}\))?"
ACRONYM_DEF = re.compile(r"((?:[\w-]+\s+){1,10})\(([A-Z][A-Za-z0-9]{1,9})\)")
STANDS_FOR = re.compile(r"\b([A-Z][A-Za-z0-9-]{1,20}),?\s+(?:which\s+)?stands\s+for\s+([^.:;]+)")
IS_DEFINITION = re.compile(rf"^({NAME})\s+(is|are)\s+((?:a|an|the)\s+.+?)[.!]?$")
APPOSITIVE = re.compile(rf"({NAME}),\s+((?:a|an)\s+(?:[^,.;]|,(?=\S)|\.(?=\d))+)")
WHICH_CLAUSE = re.compile(rf"({NAME}),\s+which\s+(?!stands\b)([a-z]+s\s+(?:[^,.;]|,(?=\S)|\.(?=\d))+)")
DOES = re.compile(rf"^({NAME})\s+(?:then\s+|also\s+|further\s+)?([a-z]+s)\s+(.+?)[.!]?$")
NOT_VERBS = {"is", "was", "has", "does", "uses", "its", "this", "was", "as", "plus", "less"}
ACRONYM_IN = re.compile(r"\(([A-Z][A-Za-z0-9]{1,9})\)")
# A fact asked one way is learned as that string: a small model answers the trained
# question and fails a reworded one. Several wordings of the expansion teach the fact.
EXPANSION_QUESTIONS = ("What does {acr} stand for?", "What is {acr} short for?",
                       "What is the long form of {acr}?")


def initials(word):
    return [p[0] for p in word.split("-") if p]


def expand_acronym(preceding_words, acronym):
    """The long name an acronym abbreviates: the shortest run of words right before it
    whose initials (small words skipped, hyphen parts counted) spell its capitals."""
    letters = [c for c in acronym if c.isupper()]
    taken, need = [], list(letters)
    for word in reversed(preceding_words):
        if not need:
            break
        if word.lower() in SMALL_WORDS and taken:
            taken.insert(0, word)
            continue
        parts = initials(word)
        if not parts or not all(p.isupper() for p in parts) or len(parts) > len(need):
            return None
        if [p.upper() for p in parts] != need[-len(parts):]:
            return None
        need = need[:-len(parts)]
        taken.insert(0, word)
    if need:
        return None
    while taken and taken[0].lower() in SMALL_WORDS:
        taken.pop(0)
    return " ".join(taken)


def clean_name(name):
    """'First, The Gated Relevance Router (GRR)' -> ('Gated Relevance Router', 'GRR', had_article)."""
    words = name.split()
    while words and words[0] in LEAD_WORDS:
        words.pop(0)
    text = " ".join(words)
    m = ACRONYM_IN.search(text)
    acronym = m.group(1) if m else None
    text = ACRONYM_IN.sub("", text).strip()
    article = bool(re.match(r"(?:[Tt]he|An?)\s+", text))  # 'A Gated Relevance Router' is asked as 'the ...'
    return re.sub(r"^(?:[Tt]he|An?)\s+", "", text), acronym, article


def find_acronyms(text):
    """{acronym: long name} for every 'Long Name (ACR)' whose initials match."""
    found = {}
    flat = " ".join(text.split())
    for m in ACRONYM_DEF.finditer(flat):
        long_name = expand_acronym(m.group(1).split(), m.group(2))
        if long_name and m.group(2) not in found:
            found[m.group(2)] = long_name
    for m in STANDS_FOR.finditer(flat):
        found.setdefault(m.group(1), " ".join(m.group(2).split()))
    return found


def _pair(question, answer, rule, concept, chunk):
    answer = answer[0].upper() + answer[1:]
    if answer[-1] not in ".!":
        answer += "."
    return {"question": question, "answer": answer, "source": "rule", "rule": rule, "concept": concept,
            "chunk_id": chunk.get("id"), "pages": chunk.get("pages", [])}


def _subject(name, acronym, article):
    """How the answer names the concept: 'The Gated Relevance Router (GRR)'."""
    text = ("The " if article else "") + name
    return f"{text} ({acronym})" if acronym else text


def _asked_names(name, acronym, article):
    """The names a question may use: the long name (with its article) and the acronym."""
    names = [("the " if article else "") + name]
    if acronym:
        names.append(acronym)
    return names


def _expansion_pairs(acr, long_name, rule, chunk):
    return [_pair(q.format(acr=acr), f"{acr} stands for {long_name}.", rule, acr, chunk) for q in EXPANSION_QUESTIONS]


def mine_chunk(chunk, acronyms):
    """Rule-based pairs for one chunk; `acronyms` comes from the whole document, so a
    sentence about 'ATD' in one chunk knows its long name from another."""
    pairs = []
    flat = " ".join(chunk["text"].split())
    for m in ACRONYM_DEF.finditer(flat):
        long_name = expand_acronym(m.group(1).split(), m.group(2))
        if long_name:
            acr = m.group(2)
            pairs += _expansion_pairs(acr, long_name, "acronym", chunk)
            pairs.append(_pair(f"What is the acronym of {long_name}?", f"The acronym of {long_name} is {acr}.",
                               "acronym", acr, chunk))
    for m in STANDS_FOR.finditer(flat):
        acr, expansion = m.group(1), " ".join(m.group(2).split())
        pairs += _expansion_pairs(acr, expansion, "stands_for", chunk)
    by_long = {v: k for k, v in acronyms.items()}
    for sentence in split_sentences(chunk["text"]):
        pairs += _definitions(sentence, acronyms, by_long, chunk)
    return pairs


def _resolve(raw_name, acronyms, by_long):
    name, acronym, article = clean_name(raw_name)
    if not name or not re.search(r"[A-Z]", name):
        return None
    if name in acronyms:  # the subject is itself an acronym: 'ATD is ...'
        acronym, name = name, acronyms[name]
    acronym = acronym or by_long.get(name)
    return name, acronym, article


def _definitions(sentence, acronyms, by_long, chunk):
    pairs = []
    found = []  # (rule, raw name, predicate, verb phrase kind)
    m = IS_DEFINITION.match(sentence)
    if m:
        found.append(("definition", m.group(1), f"{m.group(2)} {m.group(3)}"))
    for m in APPOSITIVE.finditer(sentence):
        found.append(("definition", m.group(1), f"is {m.group(2)}"))
    for m in WHICH_CLAUSE.finditer(sentence):
        found.append(("does", m.group(1), m.group(2)))
    m = DOES.match(sentence)
    if m and m.group(2) not in NOT_VERBS and ACRONYM_IN.search(m.group(1)):
        found.append(("does", m.group(1), f"{m.group(2)} {m.group(3)}"))
    for rule, raw_name, predicate in found:
        resolved = _resolve(raw_name, acronyms, by_long)
        if not resolved:
            continue
        name, acronym, article = resolved
        answer = f"{_subject(name, acronym, article)} {predicate.strip()}"
        for asked in _asked_names(name, acronym, article):
            question = f"What is {asked}?" if rule == "definition" else f"What does {asked} do?"
            pairs.append(_pair(question, answer, rule, acronym or name, chunk))
    return pairs


def context_name(chunks):
    """The document's name for context variants: the title's lead word ('VELLUM: ...')
    when it has one, else its most frequent all-capitals word."""
    first = chunks[0]["text"].lstrip("# \n") if chunks else ""
    m = re.match(r"([A-Z][\w-]{1,30}):\s", first)
    if m:
        return m.group(1)
    counts = Counter(w for c in chunks for w in re.findall(r"\b[A-Z][A-Z0-9-]{2,}\b", c["text"]))
    return counts.most_common(1)[0][0] if counts else None


def context_variants(pair, context):
    """The pair asked with the document named two ways, for a question that names a
    concept other than the document itself; [] when there is nothing to add."""
    q = pair["question"]
    if not context or not q.endswith("?") or re.search(rf"\b{re.escape(context)}\b", q):
        return []
    if pair.get("concept") == context:
        return []
    body = q[:-1]
    lowered = body[0].lower() + body[1:] if body.split()[0] in {"What", "How", "Why", "Who", "Which", "When",
                                                                  "Where", "Does", "Do", "Is", "Are"} else body
    return [dict(pair, question=f"{body} in {context}?", variant="context"),
            dict(pair, question=f"In the {context} paper, {lowered}?", variant="context_paper")]


def plain_variant(pair, context):
    """A model question that names the document, asked without it ('... in VELLUM?' removed)."""
    if not context:
        return None
    stripped = re.sub(rf",?\s+(?:in|of|for)\s+(?:the\s+)?{re.escape(context)}(?:\s+paper)?(?=\?$)", "", pair["question"])
    return dict(pair, question=stripped, variant="plain") if stripped != pair["question"] else None
