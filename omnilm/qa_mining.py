"""Question/answer pairs mined from the text itself, without a model.

Rules (each pair remembers which one made it):
- acronym:     "Anchor Token Distillation (ATD)"          -> What does ATD stand for? (in EXPANSION_QUESTIONS' wordings)
                                                             / What is the acronym of ...?
- stands_for:  "VELLUM, which stands for Vector-Encoded..." -> What does VELLUM stand for? (same wordings)
- definition:  "KelpQA is the benchmark ..." / "X, a benchmark of ..." -> What is KelpQA?
- part:        "The ATD loss is the Kullback-Leibler divergence ..." -> What is the ATD loss?
- does:        "The Gated Relevance Router (GRR) decides which ..." / "GRR, which selects ..." -> What does GRR do?
- quantity:    "ATD uses 48 probe questions per passage" -> How many probe questions does ATD use per passage?
               "VELLUM was trained for 18 hours" -> How many hours was VELLUM trained for?
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
PART_DEFINITION = re.compile(rf"^[Tt]he\s+({CAP}(?:\s+{CAP})*)\s+([a-z]+)\s+(?:is|are)\s+(?:a|an|the)\s+")
APPOSITIVE = re.compile(rf"({NAME}),\s+((?:a|an)\s+(?:[^,.;]|,(?=\S)|\.(?=\d))+)")
WHICH_CLAUSE = re.compile(rf"({NAME}),\s+which\s+(?!stands\b)([a-z]+s\s+(?:[^,.;]|,(?=\S)|\.(?=\d))+)")
DOES = re.compile(rf"^({NAME})\s+(?:then\s+|also\s+|further\s+)?([a-z]+s)\s+(.+?)[.!]?$")
NOT_VERBS = {"is", "was", "has", "does", "uses", "its", "this", "was", "as", "plus", "less"}
ACRONYM_IN = re.compile(r"\(([A-Z][A-Za-z0-9]{1,9})\)")
# A fact asked one way is learned as that string: a small model answers the trained
# question and fails a reworded one. Several wordings of the expansion teach the fact,
# each answered the way the model starts its answers, by echoing the question, so
# the fact follows more than one lead-in.
EXPANSION_QUESTIONS = (("What does {acr} stand for?", "{acr} stands for {long}."),
                       ("What is {acr} short for?", "{acr} is short for {long}."),
                       ("What is the long form of {acr}?", "The long form of {acr} is {long}."))


# Numbers are what a small model recalls worst from a reworded question, so each number
# in a simple clause ("<subject> <verb>s ... 8 anchor tokens") is asked with that
# clause's own verb, for every name of the subject.
NUMBER_WORDS = "two|three|four|five|six|seven|eight|nine|ten|eleven|twelve"
NUMBER = re.compile(rf"(?<![\w.,-])(\d[\d,]*(?:\.\d+)?(?:\s+(?:thousand|million|billion))?|{NUMBER_WORDS})(?=[\s.,;:]|$)")
ADVERB = r"(?:then|also|only|therefore|together|now|first|further|usually|always)"
QUANTITY_CLAUSE = re.compile(
    rf"(?:^|,\s+)(?:(?P<intro>(?:On|In|At|For|With)(?:\s+[\w-]+){{1,3}}),\s+)?"
    rf"(?P<subject>{NAME}|It|[Tt]he\s+[a-z-]+(?:\s+(?!{ADVERB}\s)[a-z-]+)?)(?:,\s+which)?\s+(?:{ADVERB}\s+)?"
    r"(?:(?P<aux>is|was|are|were)\s+(?P<participle>[a-z]+ed)|(?P<verb>[a-z]+s))\s+(?P<rest>(?:[^,;]|,(?=\d))+)")
CLAUSE_END = re.compile(r"\s+(?:and|while|so|which|that|but|where|when|because|whereas)\s+.*$")
UNIT_STOP = {"of", "with", "for", "and", "the", "to", "in", "on", "a", "an", "by", "from", "per", "about", "at",
             "into", "out", "than", "before", "after", "instead", "over", "under", "during", "each", "that", "which"}
QUANTITY_MODIFIERS = re.compile(r"(?:\s*\b(?:exactly|only|about|roughly|nearly|just|the|top|some|all|up\s+to))+\s*$")
NOT_QUANTITY_VERBS = {"is", "was", "does", "its", "this", "as", "plus", "less"}
PERCENT = {"percent", "per cent", "%"}


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
    return [_pair(q.format(acr=acr), a.format(acr=acr, long=long_name), rule, acr, chunk) for q, a in EXPANSION_QUESTIONS]


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
    previous_subject = None  # what a sentence-initial "It" refers to
    for sentence in split_sentences(chunk["text"]):
        pairs += _definitions(sentence, acronyms, by_long, chunk)
        quantities, subject = _quantities(sentence, acronyms, by_long, previous_subject, chunk)
        pairs += quantities
        previous_subject = subject
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
    m = PART_DEFINITION.match(sentence)
    if m and (m.group(1) in acronyms or m.group(1) in by_long):
        names = {m.group(1), acronyms.get(m.group(1)) or by_long[m.group(1)]}
        pairs += [_pair(f"What is the {n} {m.group(2)}?", sentence, "part", m.group(1), chunk) for n in sorted(names)]
    return pairs


def verb_base(verb):
    """'reaches' -> 'reach', 'uses' -> 'use', 'has' -> 'have': the form after 'does'."""
    if verb == "has":
        return "have"
    if verb.endswith(("sses", "shes", "ches", "xes", "zes")):
        return verb[:-2]
    if verb.endswith("ies") and len(verb) > 4:
        return verb[:-3] + "y"
    return verb[:-1]


def _quantity_subject(raw, acronyms, by_long, previous):
    """(asked names, how the answer names it) for a clause subject, or None: a real name
    (an acronym, a mixed-case word or several capitalized words), 'the <noun>', or 'It'
    after a sentence about a named subject."""
    if raw == "It":
        return previous
    if re.fullmatch(r"[Tt]he\s+[a-z-]+(?:\s+[a-z-]+)?", raw):
        return [raw[0].lower() + raw[1:]], raw
    resolved = _resolve(raw, acronyms, by_long)
    if not resolved:
        return None
    name, acronym, article = resolved
    if not (acronym or re.search(r"\w[A-Z]", name) or len(re.findall(r"\b[A-Z]", name)) > 1):
        return None  # 'Training follows ...': a capitalized common word, not a name
    if raw in acronyms:  # 'VELLUM reaches ...' is asked as written, not by its expansion
        return [raw], raw
    return _asked_names(name, acronym, article), _subject(name, acronym, article)


def _quantity_questions(asked, match, number):
    """The questions that ask for `number` inside the clause ([] when the number has no
    unit to ask about ('32x') or the words before it hold another number), as
    (question, answer or None for the whole sentence): with the clause's verb, and for a
    measure also as 'What is the <measure> of <subject>?' -> 'The <measure> of ... is N.'."""
    rest = CLAUSE_END.sub("", match["rest"]).rstrip(". ")
    before, after = rest[:number.start()], rest[number.end():]
    if NUMBER.search(before) or number.end() > len(rest):
        return []
    unit = []
    for word in after.split():
        if word.lower() in UNIT_STOP or not re.fullmatch(r"[a-z][a-z-]*|%", word) or len(unit) == 4:
            break
        unit.append(word)
    tail = " ".join(after.split()[len(unit):])
    if NUMBER.search(tail) or len(tail.split()) > 5 or (tail and tail.split()[0] not in UNIT_STOP):
        tail = ""
    while unit and unit[0] in {"most", "least"}:
        unit.pop(0)
    before = QUANTITY_MODIFIERS.sub("", before.rstrip())
    if not unit:  # 'a softmax temperature of 0.7' asks for the noun before 'of'
        m = re.search(r"(?:^|\s)(?:a|an|the)\s+((?:[a-z-]+\s+){0,2}[a-z-]+)\s+of$", before)
        if not m:
            return []
        wh, before = f"What {m.group(1)}", before[:m.start()]
    elif " ".join(unit) in PERCENT:
        wh = "What percentage"
    elif unit[-1].endswith("s") and not unit[-1].endswith("ss"):
        wh = f"How many {' '.join(unit)}"
    else:
        wh = f"What {' '.join(unit)}"
    verb = f"{match['aux']} {asked} {match['participle']}" if match["aux"] else \
        f"does {asked} {verb_base(match['verb'])}"
    intro = match["intro"]
    if intro:
        tail = f"{tail} {intro[0].lower()}{intro[1:]}"
    asks = [(f"{wh} {verb} {before} {tail}", None)]
    if wh.startswith("What ") and wh != "What percentage":  # echoed in its answer, as in EXPANSION_QUESTIONS
        measure = f"the {wh[5:]} of {asked} {tail}"
        asks.append((f"What is {measure}", f"{measure} is {number.group(1)}."))
    return [(" ".join(q.split()) + "?", a and " ".join(a.split())) for q, a in asks]


def _quantities(sentence, acronyms, by_long, previous, chunk):
    """(quantity pairs of one sentence, its subject for a following 'It')."""
    pairs, subject = [], None
    for match in QUANTITY_CLAUSE.finditer(sentence):
        found = _quantity_subject(match["subject"], acronyms, by_long, previous)
        if match.start() == 0 and found and match["subject"][0].isupper() and not match["subject"].startswith("The "):
            subject = found  # only a name: 'the compressor ... It has' is too loose to follow
        if not found or match["verb"] in NOT_QUANTITY_VERBS:
            continue
        asked_names, named = found
        answer = named + sentence[match.start("subject") + 2:] if match["subject"] == "It" else sentence
        for number in NUMBER.finditer(match["rest"]):
            for asked in asked_names:
                pairs += [_pair(q, a or answer, "quantity", asked_names[-1], chunk)
                          for q, a in _quantity_questions(asked, match, number)]
    return pairs, subject


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
