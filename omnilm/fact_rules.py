"""The rules that find facts in sentences and table rows: a number with what it
counts, a name, a definition, an acronym's long name, a table cell; each restated on
its own with its subject named in full, and asked as questions. Rules, not a model:
the demo's 135M model cannot write facts, and a rule's answer is a span of its
sentence by construction. Hangul and other scripts go through Unicode classes."""
import re

from omnilm.qa_filters import HANGUL as HANGUL_LETTERS

HANGUL = re.compile(f"[{HANGUL_LETTERS}]")
NUMBER_WORDS = {"two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8, "nine": 9,
                "ten": 10, "eleven": 11, "twelve": 12}
NUMBER = r"(?<![\w.-])(?:\d[\d,]*(?:\.\d+)?|" + "|".join(NUMBER_WORDS) + r")(?![\w-]*\))"
# what a number counts: the lower-case words after it, up to a function word or punctuation
UNIT_STOP = {"of", "to", "in", "on", "at", "by", "for", "with", "from", "into", "about", "than", "and", "or",
             "but", "that", "which", "while", "when", "before", "after", "instead", "each", "as", "per", "so",
             "is", "are", "was", "were", "be", "the", "a", "an", "its", "their", "during", "between", "out"}
# what names a table, figure, section or step by its number, in English and Korean
LABEL_BEFORE = re.compile(r"(?:\b(?i:table|tab\.|figure|fig\.|section|sec\.|eq\.|equation|appendix|phase|step)"
                          r"|표|그림|도표|수식|부록)\s*$")
SEPARATORS = re.compile(r";\s+|:\s+(?=[a-z])|,\s+(?:so|while|whereas|but|and then)\s+")
SUBJECT_PRONOUNS = {"It": "{topic}", "Its": "{topic}'s", "We": "The authors of {context}",
                    "Our": "The {context} authors'"}
CAPITALIZED_NAME = re.compile(r"^((?:The\s+)?[A-Z][\w.-]*(?:\s+(?:[A-Z][\w.-]*|of|for|with))*(?:\s+\([A-Z]\w*\))?)"
                              r"(?=\s+[a-z])")
VERB_3RD = re.compile(r"^([a-z]+(?:s|es))$")
HAVE_FORMS = {"has": "have", "does": "do", "is": None, "are": None, "was": None, "were": None}
FRAMES = ("{s}", "According to the {ctx} paper, {lc}", "{body}, as the {ctx} paper reports.",
          "One fact about {subject}: {lc}", "The {ctx} paper states that {lc}")
LEAD_IN = re.compile(r"^(?:First|Second|Third|Fourth|Fifth|Finally|However|Therefore|Moreover|Thus|Then|"
                     r"In addition|In contrast|Instead|Also),\s+")
GENERIC_CUES = {"paper", "report", "number", "fact", "author", "value"}


def lower_first(text):
    """'The compressor ...' -> 'the compressor ...'; a name or acronym keeps its case."""
    first = text.split(" ", 1)[0]
    if first in ("The", "A", "An", "In", "On", "For", "With", "Without", "Using", "Removing", "Training"):
        return text[0].lower() + text[1:]
    return text


def _sentence(text):
    text = " ".join(text.split()).rstrip(" ,;:")
    return text if text.endswith((".", "!", "?")) else text + "."


def _number_value(token):
    return NUMBER_WORDS.get(token.lower(), token)


def _verb_base(verb):
    """uses -> use, compresses -> compress, applies -> apply, has -> have."""
    if verb in HAVE_FORMS:
        return HAVE_FORMS[verb]
    if verb.endswith("ies"):
        return verb[:-3] + "y"
    if re.search(r"(?:ss|sh|ch|x|z)es$", verb):
        return verb[:-2]
    return verb[:-1] if verb.endswith("s") and not verb.endswith("ss") else None


class Resolver:
    """Names the subject of a sentence in full: 'It' is the paragraph's topic, 'We'
    the document's authors, 'The compressor' the document's compressor."""

    def __init__(self, context):
        self.context = context
        self.topic = context

    def new_paragraph(self):
        self.topic = self.context

    def resolve(self, sentence):
        sentence = LEAD_IN.sub("", sentence)
        sentence = sentence[0].upper() + sentence[1:]
        first, _, rest = sentence.partition(" ")
        if first in SUBJECT_PRONOUNS and rest:
            lead = SUBJECT_PRONOUNS[first].format(topic=self.topic, context=self.context)
            return f"{lead} {rest}"
        m = re.match(r"^The\s+([a-z][\w-]*(?:\s+[a-z][\w-]*)?)\s+(?=(?:is|are|was|were|has|have|[a-z]+s)\b)", sentence)
        if m and self.context and self.context not in sentence[:m.end()]:
            sentence = f"The {self.context} {sentence[4:]}"
        name = CAPITALIZED_NAME.match(sentence)
        if name and self.topic == self.context and not name.group(1).startswith("The "):
            self.topic = re.sub(r"\s+\([A-Z]\w*\)$", "", name.group(1))  # later 'It' means this
        return sentence


def subject_of(clause):
    """(subject, verb, rest) when the clause opens 'Subject verb ...', else None. A
    word ending in -s is taken as the verb unless it reads as a noun (after an
    article, before 'of', or in a subject holding a number)."""
    words = clause.split()
    for i, word in enumerate(words[1:9], 1):
        prev, nxt = words[i - 1], words[i + 1] if i + 1 < len(words) else ""
        if not re.fullmatch(r"[a-z]+", word):
            continue
        if word in HAVE_FORMS or (VERB_3RD.match(word) and not word.endswith(("ss", "us", "is"))):
            if prev.lower() in ("the", "a", "an", "of", "and", "its", "their", "our", "per") or nxt == "of":
                continue
            subject = " ".join(words[:i])
            if not re.match(r"^(?:The\s|[A-Z])", subject) or re.search(r"\d|,", subject):
                return None
            return subject, word, " ".join(words[i + 1:])
    return None


def _clause_with(sentence, start, end):
    """The clause of `sentence` that holds the span start:end (split at ';', ', so', ...)."""
    cuts = [0] + [m.end() for m in SEPARATORS.finditer(sentence) if m.end() <= start]
    left = max(cuts)
    right = next((m.start() for m in SEPARATORS.finditer(sentence) if m.start() >= end), len(sentence))
    clause = sentence[left:right].strip().rstrip(".")
    comma = clause.find(", ", end - left)  # a trailing aside ', generated ...' is not part of the fact
    if comma > 0 and not re.match(r",\s+(?:\d|and\s+\d)", clause[comma:]):
        clause = clause[:comma]
    return clause, left


def _unit_after(text):
    """'probe questions per passage, ...' -> 'probe questions'."""
    unit = []
    for word in text.split():
        bare = word.strip(",.;:()")
        if bare.lower() in UNIT_STOP or not re.fullmatch(r"[a-z][a-z-]*|[A-Z]{2,}s", bare) or len(unit) == 3:
            break
        unit.append(bare)
        if bare != word:
            break
    return " ".join(unit)


def _with_subject(clause, hint):
    """A clause that opens without its subject gets the sentence's: 'its prompt is ...'
    -> "VELLUM's prompt is ...", 'keeps the top 4' -> 'The GRR keeps the top 4'."""
    first = clause.split(" ", 1)[0]
    if first == "the":
        return "The " + clause[4:]
    if not hint or not first.islower():
        return clause
    if first == "its":
        return f"{hint}'s {clause[4:]}"
    if first == "it":
        return f"{hint} {clause[3:]}"
    if VERB_3RD.match(first) or first in HAVE_FORMS:
        return f"{hint} {clause}"
    return clause


def quantity_facts(sentence, subject_hint, context):
    """One fact per number of the sentence: what it counts and the clause that says so."""
    facts = []
    for m in re.finditer(NUMBER, sentence, flags=re.I):
        token = m.group(0)
        if LABEL_BEFORE.search(sentence[:m.start()]):
            continue  # a label ('Table 1', '표 1'), not a quantity
        if re.match(r"-[a-z]+-", sentence[m.end():]):
            continue  # '7-billion-parameter': a compound adjective, not a count
        named = re.search(r"(?:the\s+)([A-Z][\w-]*)\s+$", sentence[:m.start()])
        if named:  # 'the Apache 2.0 license': a name, asked with 'which'
            facts += _name_fact(sentence, named, m, subject_hint, context)
            continue
        clause, offset = _clause_with(sentence, m.start(), m.end())
        local = m.start() - offset
        if local < 0:
            continue
        full = _with_subject(clause, subject_hint)
        local += len(full) - len(clause)
        clause = full
        hangul = bool(HANGUL.search(clause))
        if len(clause.split()) < (3 if hangul else 5):
            continue
        before, after = clause[:local].rstrip(), clause[local + len(token):]
        if hangul:  # Korean: the number asked with 몇 ('how many') in place, the counter word kept
            facts.append({"kind": "quantity", "answer": token, "accept": _accepted(token), "subject": subject_hint
                          or context, "unit": "", "statement": _sentence(clause),
                          "questions": [_question(f"{before} 몇{after}".strip())]})
            continue
        parsed = subject_of(clause)
        hyphen = re.match(r"-([a-z]+)\b", after)
        unit = hyphen.group(1) if hyphen else _unit_after(after)
        counted = bool(unit) and (unit.endswith("s") or bool(hyphen)) and token.replace(",", "").isdigit() or \
            token.lower() in NUMBER_WORDS
        questions = []
        if hyphen:
            if not (parsed and parsed[1] in ("is", "are")):
                continue
            subject, plural = parsed[0], unit + "s"
            statement = _sentence(f"{subject} has {token} {plural}")
            questions.append(f"How many {plural} does {lower_first(subject)} have?")
            questions.append(f"What is the number of {plural} of {lower_first(subject)}?")
        else:
            statement = _sentence(clause)
            wh = f"how many {unit}" if counted and unit else "what"
            rest = after[len(unit) + 1:] if counted and unit else after
            if before:
                questions.append(_question(f"{before} {wh}{rest}"))
            front = _fronted(parsed, before, wh if counted or not unit else f"what {unit}", unit if counted else "", after)
            if front:
                questions.insert(0, front)
        if not questions:
            continue
        subject = parsed[0] if parsed else (subject_hint or context)
        facts.append({"kind": "quantity", "answer": token, "accept": _accepted(token), "subject": subject,
                      "unit": unit, "statement": statement, "questions": questions})
    return facts


def _name_fact(sentence, named, number, hint, context):
    """'... under the Apache 2.0 license' -> answer 'Apache 2.0', asked '... under which license?'."""
    noun = re.match(r"\s+([a-z]+)", sentence[number.end():])
    if not noun:
        return []
    answer = f"{named.group(1)} {number.group(0)}"
    start = named.start()
    clause, offset = _clause_with(sentence, start, number.end())
    clause = _with_subject(clause, hint)
    asked = clause.replace(f"the {answer} {noun.group(1)}", f"which {noun.group(1)}", 1)
    if asked == clause:
        return []
    return [{"kind": "name", "answer": answer, "accept": [answer], "subject": hint or context, "unit": noun.group(1),
             "statement": _sentence(clause), "questions": [_question(asked)]}]


def _question(text):
    text = " ".join(text.split()).rstrip(" .,;:")
    return text[0].upper() + text[1:] + "?"


def _fronted(parsed, before, wh, unit, after):
    """'ATD uses 48 probe questions per passage' -> 'How many probe questions per passage does ATD use?'."""
    if not parsed:
        return None
    subject, verb, _ = parsed
    mid = before[len(subject) + len(verb) + 2:].strip() if before.startswith(f"{subject} {verb}") else None
    if mid is None or re.search(r"[,;]|\band\b", mid) or len(mid.split()) > 5:
        return None
    mid = re.sub(r"\b(?:exactly|only|about|roughly|nearly|almost)\b\s*", "", mid).strip()
    per = re.match(r"\s*(?:" + re.escape(unit) + r")?\s*((?:per|each)\s+[a-z]+)", after) if unit else None
    asked = f"{wh}{' ' + per.group(1) if per else ''}"
    if verb in ("is", "are", "was", "were"):
        prep = re.match(r"^(.*?)\b(for|on|in|with|to|by|at|from)$", mid)
        if mid and prep and prep.group(1).strip():
            return _question(f"{prep.group(2)} {asked} {verb} {lower_first(subject)} {prep.group(1).strip()}")
        return None
    base = _verb_base(verb)
    if not base:
        return None
    if mid.endswith((" a", " an", " the")) or mid in ("a", "an", "the"):
        return None
    return _question(f"{asked} does {lower_first(subject)} {base}{' ' + mid if mid else ''}")


# Other sentence structures made by rule, for the CPT text (Physics of LM 3.1: a fact
# is extractable when it comes in several structures; the demo model cannot write
# them). A phrase that may open the sentence ('For 18 hours, VELLUM was trained ...'),
# the words that end a verb's object for the passive, and participles -ed misses.
FRONTABLE = {"for", "on", "in", "with", "during", "before", "after", "across", "at", "within", "without",
             "under", "over", "between", "out", "through", "since", "until", "when", "while"}
OBJECT_ENDS = FRONTABLE - {"between"} | {"into", "to", "from", "against", "instead"}
PARTICIPLES = {"keep": "kept", "hold": "held", "make": "made", "read": "read", "build": "built", "feed": "fed",
               "find": "found", "give": "given", "take": "taken", "write": "written", "send": "sent",
               "split": "split", "set": "set", "put": "put", "cut": "cut", "show": "shown", "see": "seen",
               "leave": "left", "get": "got", "run": "run", "win": "won", "bring": "brought", "teach": "taught"}
ADVERBS = {"then", "also", "therefore", "thus", "now", "together", "still", "first", "always", "often"}
SINGULAR_OPENERS = {"each", "every", "a", "an", "one", "this", "that", "its"}


def restructured(statement, answer=""):
    """The statement in other sentence structures, made by rule (English; none for
    other scripts): an active clause made passive, a name and what it is the other
    way round, a phrase moved to the front (the one that holds `answer` if one does),
    an opening phrase moved to the end, 'X has 6 layers' as 'There are 6 layers in X'.
    Every word of the statement is kept (the passive changes the verb's form); where
    the structure is not plain, no rule makes anything (omnilm.facts.keeps_fact then
    checks each shape against its fact)."""
    body = " ".join(statement.split()).rstrip(".")
    if not body or HANGUL.search(body) or not body.isascii() or re.search(r"[.!?:;]\s|`", body):
        return []  # two sentences in one statement (a split the splitter missed), or code
    # a clause with a comma is parsed no further; only its opening phrase may move
    parsed = subject_of(body) if "," not in body else None
    out = [_passive(*parsed), _reversed(*parsed), _fronted_phrase(*parsed, answer), _there_are(*parsed)] \
        if parsed else [_opening_to_end(body)]
    return list(dict.fromkeys(_sentence(t) for t in out if t and t != body))


def _opening_to_end(body):
    """'Without PCW, joint training ... collapsed in 3 of 5 runs' -> 'Joint training
    ... collapsed in 3 of 5 runs without PCW'."""
    m = re.match(r"^([A-Z][a-z]*)\s+((?:[^,]|,(?=\d))+),\s+((?:[^,]|,(?=\d))+)$", body)  # '2,560' is no comma
    if not m or m.group(1).lower() not in FRONTABLE or len(m.group(3).split()) < 3:
        return None
    rest = m.group(3)[0].upper() + m.group(3)[1:]
    if not (subject_of(rest) or re.search(r"\b(?:is|are|was|were|has|have|had|[a-z]+ed)\b", rest)):
        return None  # 'On KelpQA, a new benchmark of ...': what follows the comma is no clause
    return f"{rest} {m.group(1).lower()} {m.group(2)}"


def _phrase_ends(words, start):
    """Where the phrase that opens at words[start] ends: before the next phrase, 'and'
    (except 'between X and Y'), 'which' or 'that'."""
    end = start + 1
    while end < len(words) and words[end] not in FRONTABLE and words[end] not in ("which", "that"):
        if words[end] == "and" and not (words[start] == "between" and end == start + 2):
            break
        end += 1
    return end


def _fronted_phrase(subject, verb, rest, answer=""):
    """'VELLUM was trained for 18 hours on 8 GPUs' -> 'On 8 GPUs, VELLUM was trained
    for 18 hours': a phrase after the verb's object opens the sentence, the one that
    holds the answer if one does, else the last. Not a phrase inside a name ('Lookup
    with Unified Memory'), a relative clause ('that makes 8 tokens stand in for') or
    after an agent ('written by stations between 2009 and 2024')."""
    words = rest.split()
    # a phrase after 'that'/'which' or an agent ('reports written by stations between 2009 and 2024')
    # may belong to that clause, not to the verb: fronting it would change what the sentence says
    clause = next((i for i, w in enumerate(words) if w in ("that", "which", "who", "by")), len(words))
    starts = [i for i, w in enumerate(words[:clause]) if i >= 1 and w in FRONTABLE
              and words[i - 1] not in ("of", "per") and not (words[i - 1][:1].isupper() and i + 1 < len(words)
                                                              and words[i + 1][:1].isupper())]
    if not starts:
        return None
    spans = [(i, _phrase_ends(words, i)) for i in starts]
    start, end = next(((i, j) for i, j in spans if answer and answer in words[i:j]), spans[-1])
    phrase, left = words[start:end], words[:start] + words[end:]
    if words[start] == "out" and (len(phrase) < 3 or phrase[1] != "of"):
        return None
    if len(phrase) < 2 or not left:
        return None
    return f"{phrase[0].capitalize()} {' '.join(phrase[1:])}, {lower_first(subject)} {verb} {' '.join(left)}"


def _participle(base):
    if base in PARTICIPLES:
        return PARTICIPLES[base]
    if base.endswith("e"):
        return base + "d"
    if re.search(r"[^aeiou]y$", base):
        return base[:-1] + "ied"
    if base.endswith("mit") or re.fullmatch(r"[^aeiou]*[aeiou][bdgmnpt]", base):
        return base + base[-1] + "ed"  # emit -> emitted, stop -> stopped
    return base + "ed"


def _passive(subject, verb, rest):
    """'The GRR keeps the top 4 groups' -> 'The top 4 groups are kept by the GRR'.
    Only for a present-tense verb with an object that opens like a noun phrase."""
    base = _verb_base(verb)
    words = rest.split()
    if not base or base in ("have", "do") or not words:
        return None
    first = words[0].lower()
    if subject.split()[-1] in ADVERBS or first in ADVERBS:
        return None  # 'The GRR then keeps ...': where the adverb goes in the passive is not clear
    number = re.match(NUMBER, first)
    if not (first in SINGULAR_OPENERS or first in ("the", "all", "both", "only") or number):
        return None
    end = next((i for i, w in enumerate(words) if i >= 1 and w in OBJECT_ENDS), len(words))
    obj, after = words[:end], words[end:]
    if any(w in ("and", "or", "which", "that", "by", "must", "can", "will") for w in words):
        return None  # a second verb or a clause: what the object is is not clear
    plural = first in ("all", "both") or (number is not None and _number_value(first) not in ("1", 1)) or \
        (first not in SINGULAR_OPENERS and obj[-1].endswith("s") and not obj[-1].endswith("ss"))
    be = "are" if plural else "is"
    opening = obj[0] if number else obj[0].capitalize()
    tail = f" {' '.join(after)}" if after else ""
    return f"{opening} {' '.join(obj[1:])} {be} {_participle(base)} by {lower_first(subject)}{tail}".replace("  ", " ")


def _reversed(subject, verb, rest):
    """The other direction of a name and what it is (a model that read only 'A is B'
    rarely answers 'what is B?'): 'PCW is the training schedule of VELLUM' -> 'The
    training schedule of VELLUM is PCW'; 'VELLUM stands for Vector-...' -> 'Vector-...
    is what VELLUM stands for'."""
    if verb == "stands" and rest.startswith("for ") and " " not in subject:
        return f"{rest[4:]} is what {subject} stands for"
    if verb in ("is", "are", "was", "were") and rest.startswith("the ") and subject[:1].isupper() \
            and not subject.startswith("The "):
        return f"The {rest[4:]} {verb} {subject}"
    return None


def _there_are(subject, verb, rest):
    """'The VELLUM compressor has 6 layers' -> 'There are 6 layers in the VELLUM compressor'."""
    words = rest.split()
    if verb not in ("has", "have") or not 2 <= len(words) <= 4 or not re.fullmatch(NUMBER, words[0], flags=re.I):
        return None
    if any(w in OBJECT_ENDS or w in ("of", "per", "and") for w in words):
        return None
    be = "is" if _number_value(words[0]) in ("1", 1) else "are"
    return f"There {be} {rest} in {lower_first(subject)}"


def _accepted(token):
    """The ways an answer may write the number: 12,400 / 12400, 3 / three."""
    forms = {token, token.replace(",", "")}
    value = _number_value(token)
    if value != token:
        forms.add(str(value))
    else:
        forms |= {w for w, v in NUMBER_WORDS.items() if str(v) == token}
    return sorted(forms)


def definition_facts(sentence, acronyms, context):
    """Definitions, acronyms and 'X does Y' sentences, through the rule miner's patterns."""
    from omnilm.qa_mining import mine_chunk

    facts = {}
    for pair in mine_chunk({"text": sentence, "id": None, "pages": []}, acronyms):
        concept = pair["concept"]
        answer = _answer_span(pair, sentence, acronyms)
        if not answer:
            continue
        key = (pair["rule"] if pair["rule"] != "stands_for" else "acronym", concept)
        fact = facts.setdefault(key, {"kind": key[0], "answer": answer, "accept": [answer], "subject": concept,
                                      "unit": "", "statement": pair["answer"], "questions": []})
        if pair["question"] not in fact["questions"]:
            fact["questions"].append(pair["question"])
    return list(facts.values())


def _answer_span(pair, sentence, acronyms):
    """The part of the source sentence that a mined pair's answer adds: the long name
    of an acronym, the predicate of a definition."""
    flat = " ".join(sentence.split())
    if pair["rule"] in ("acronym", "stands_for"):
        long_name = acronyms.get(pair["concept"])
        if pair["question"].startswith("What is the acronym"):
            return pair["concept"] if pair["concept"] in flat else None
        return long_name if long_name and long_name in flat else None
    words = pair["answer"].rstrip(".").split()
    for n in range(min(len(words), 12), 2, -1):  # the longest run of the answer's last words in the source
        tail = " ".join(words[-n:])
        if tail in flat:
            return tail
    return None


def table_facts(label, values, header, context):
    """A fact per cell of one row of a numeric table (row label x column name); the
    reverse question asks which row has the value.

    The statement, which SFT trains as the answer, opens with the column and the row
    as the question names them ("The exact match of Token pruning in the VELLUM paper
    is 58.1."), so an answer restates the question up to the value. With the row first
    ("Token pruning has an exact match of 58.1 in the VELLUM paper's results table.")
    the demo's SFT model took that shape for questions outside the table too ("How
    many GPUs were used to train VELLUM?" -> "VELLUM has a prompt tokens of 544 in the
    VELLUM paper's results table."). `variants` are the other sentence shapes for
    CPT's rephrasings: the value first for the reverse question, a record form, and
    the row first two ways. (A table's name opening every cell's sentence made the
    CPT model go on with the row it had seen most; "With a latency of 96, Soft prompts
    is a row of the table" taught it to answer "Soft prompts is a row of the table".)"""
    facts = []
    for column, value in zip(header, values):
        a = _article(column)
        table = f"the {context} paper's results table"
        variants = [f"The method with {a} {column} of {value} in {table} is {label}",
                    f"{label}: {column} {value}, in {table}",
                    f"In {table}, {label} has {a} {column} of {value}",
                    f"{label} has {a} {column} of {value} in {table}"]
        facts.append({"kind": "table", "answer": value, "accept": _accepted(value), "subject": label, "unit": column,
                      "statement": _sentence(f"The {column} of {label} in the {context} paper is {value}"),
                      "variants": [_sentence(v) for v in variants],
                      "questions": [f"What is the {column} of {label} in the {context} results table?",
                                    f"What {column} does {label} get in the {context} paper?"],
                      "reverse": {"question": f"Which method has {a} {column} of {value} in the {context} paper?",
                                  "answer": label}})
    return facts


def _article(word):
    return "an" if word[:1].lower() in "aeiou" else "a"


TABLE_ROW = re.compile(r"^(.*?[A-Za-z][^\d]*?)\s+((?:\d[\d,]*(?:\.\d+)?\s*)+)$")


def parse_table(paragraphs):
    """Rows of a numeric table as text extraction leaves it: a header line of column
    names, then lines 'Label 64.8 8,192 412'. Returns (header, rows, lines used)."""
    rows = []
    for text in paragraphs[1:]:
        m = TABLE_ROW.match(text.strip())
        if not m or "\n" in text.strip() or len(text) > 120:
            break
        rows.append((m.group(1).strip(), m.group(2).split()))
    if len(rows) < 2 or len({len(v) for _, v in rows}) != 1:
        return None
    n = len(rows[0][1])
    head = paragraphs[0].split()
    # column names start with a capital letter: 'Method Exact match Prompt tokens Latency (ms)'
    names, current = [], []
    for word in head:
        if word[:1].isupper() and current:
            names.append(" ".join(current))
            current = []
        current.append(word)
    names.append(" ".join(current))
    if len(names) == n + 1:
        names = names[1:]
    if len(names) != n:
        names = [f"column {i + 1}" for i in range(n)]
    names = [re.sub(r"\s*\(.*?\)", "", c).strip().lower() or f"column {i + 1}" for i, c in enumerate(names)]
    return names, rows, len(rows) + 1
