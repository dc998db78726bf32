"""The document's fact inventory: atomic facts out of its sentences and table rows,
each with the sentence and page it came from, several questions that ask for it,
and rephrasings that state it with its subject named in full.

A fact is the answer span of one clause (a number with what it counts, a name, a
definition, an acronym's long name, a table cell) plus that clause restated on its
own ("The VELLUM compressor has 6 layers."). Rules, not a model: the demo's 135M
model cannot write facts, and rules are grounded by construction: every fact's
answer is a span of its source sentence (`ungrounded` says why one is not).

Why rephrasings (Allen-Zhu & Li, Physics of Language Models 3.1): a fact seen in
one phrasing is memorized but cannot be asked for; seen in several, with the
subject named in full, it can. Why a fixed number of questions per fact
(Mecklenburg et al. 2024): every fact weighs the same in SFT.

The held-out split works on source sentences: all facts of a held-out sentence
stay out of every Q&A row (SFT and the Q&A mixed into CPT), so a question about
one cannot be answered by having learned a sibling clause of the same sentence."""
import random
import re

from omnilm.qa_filters import HANGUL as HANGUL_LETTERS
from omnilm.qa_filters import content_words, split_sentences
from omnilm.qa_mining import find_acronyms
from omnilm.scoring import normalize, score_answer

FACTS_FILE = "facts.jsonl"
HELDOUT_QUESTIONS_FILE = "heldout_questions.jsonl"
HANGUL = re.compile(f"[{HANGUL_LETTERS}]")
NUMBER_WORDS = {"two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8, "nine": 9,
                "ten": 10, "eleven": 11, "twelve": 12}
NUMBER = r"(?<![\w.-])(?:\d[\d,]*(?:\.\d+)?|" + "|".join(NUMBER_WORDS) + r")(?![\w-]*\))"
# what a number counts: the lower-case words after it, up to a function word or punctuation
UNIT_STOP = {"of", "to", "in", "on", "at", "by", "for", "with", "from", "into", "about", "than", "and", "or",
             "but", "that", "which", "while", "when", "before", "after", "instead", "each", "as", "per", "so",
             "is", "are", "was", "were", "be", "the", "a", "an", "its", "their", "during", "between", "out"}
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


def _lower_first(text):
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


def _subject_of(clause):
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


def _quantity_facts(sentence, subject_hint, context):
    """One fact per number of the sentence: what it counts and the clause that says so."""
    facts = []
    for m in re.finditer(NUMBER, sentence, flags=re.I):
        token = m.group(0)
        if re.search(r"(?:Table|Figure|Fig\.|Section|Eq\.|[Pp]hase|[Ss]tep)\s*$", sentence[:m.start()]):
            continue  # a label, not a quantity
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
        parsed = _subject_of(clause)
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
            questions.append(f"How many {plural} does {_lower_first(subject)} have?")
            questions.append(f"What is the number of {plural} of {_lower_first(subject)}?")
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
            return _question(f"{prep.group(2)} {asked} {verb} {_lower_first(subject)} {prep.group(1).strip()}")
        return None
    base = _verb_base(verb)
    if not base:
        return None
    if mid.endswith((" a", " an", " the")) or mid in ("a", "an", "the"):
        return None
    return _question(f"{asked} does {_lower_first(subject)} {base}{' ' + mid if mid else ''}")


def _accepted(token):
    """The ways an answer may write the number: 12,400 / 12400, 3 / three."""
    forms = {token, token.replace(",", "")}
    value = _number_value(token)
    if value != token:
        forms.add(str(value))
    else:
        forms |= {w for w, v in NUMBER_WORDS.items() if str(v) == token}
    return sorted(forms)


def _definition_facts(sentence, acronyms, context):
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


def _table_facts(label, values, header, context):
    """A fact per cell of one row of a numeric table (row label x column name); the
    reverse question asks which row has the value."""
    facts = []
    for column, value in zip(header, values):
        a = _article(column)
        facts.append({"kind": "table", "answer": value, "accept": _accepted(value), "subject": label, "unit": column,
                      "statement": _sentence(f"In the {context} paper's results table, {label} has {a} {column} of {value}"),
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


def extract_facts(paragraphs, context, acronyms):
    """The facts of a document: paragraphs is [(text, page_of(start, end), is_heading)].
    Returns facts with id, kind, answer, accept, subject, statement, questions, source,
    page, group (the source sentence's id; held-out splits work on it)."""
    facts, resolver, n_sentence, i = [], Resolver(context), 0, 0
    texts = [t for t, _, _ in paragraphs]
    while i < len(paragraphs):
        text, page_of, heading = paragraphs[i]
        table = parse_table(texts[i:i + 40]) if not re.search(r"\d", text) or heading else None
        if table:
            header, rows, used = table
            for label, values in rows:  # each row is a sentence of its own for the split
                for f in _table_facts(label, values, header, context):
                    facts.append(dict(f, sentence=f"{text} / {label} {' '.join(values)}", page=page_of(0, None)[0],
                                      group=f"s{n_sentence:03d}"))
                n_sentence += 1
            i += used
            continue
        i += 1
        if heading:
            continue
        resolver.new_paragraph()
        for sentence in split_sentences(text):
            pages = page_of(*_span(text, sentence))
            resolved = resolver.resolve(sentence)
            hint = _subject_of(resolved)
            found = _definition_facts(resolved, acronyms, context) + \
                _quantity_facts(resolved, hint[0] if hint else None, context)
            for f in found:
                facts.append(dict(f, sentence=sentence, page=pages[0] if pages else None, group=f"s{n_sentence:03d}"))
            n_sentence += 1
    out = _merge_repeats([f for f in facts if not ungrounded(f)])
    for n, f in enumerate(out):
        f["id"] = f"f{n:03d}"
    return out


def _merge_repeats(facts):
    """One fact per thing stated: a fact the paper repeats (the abstract, then the
    method) is kept once, and the sentences that share it become one group, so a
    held-out fact is not trained through its other sentence."""
    kept, parent = [], {}

    def root(g):
        while parent.get(g, g) != g:
            g = parent[g]
        return g

    for f in facts:
        same = next((k for k in kept if normalize(k["answer"]) == normalize(f["answer"])
                     and _similar(cues(k), cues(f))), None)
        if same:
            parent[root(f["group"])] = root(same["group"])
        else:
            kept.append(f)
    for f in kept:
        f["group"] = root(f["group"])
    return kept


def _similar(a, b, threshold=0.5):
    return bool(a and b) and len(a & b) / len(a | b) >= threshold


def _span(text, sentence):
    start = text.find(sentence)
    return (start, start + len(sentence)) if start >= 0 else (0, None)


def has_answer(text, accept):
    """Does `text` hold one of the accepted answers: as whole words (unnegated), or,
    in scripts that glue a counter or particle to it ('6개의'), as a span not inside
    a longer number?"""
    if score_answer(text, [accept])[0]:
        return True
    flat = normalize(text)
    return bool(HANGUL.search(flat)) and any(
        re.search(rf"(?<![\w.]){re.escape(normalize(a))}(?![\d.]*\d)", flat) for a in accept)


def ungrounded(fact):
    """Why a fact is not grounded in its source, or None: its answer must be a span of
    the source, and its statement must hold the answer and no number the source lacks."""
    source = normalize(fact["sentence"])
    if not fact.get("answer") or not has_answer(fact["sentence"], [fact["answer"]]):
        return "answer not in source"
    if not has_answer(fact["statement"], fact["accept"]):
        return "statement lacks the answer"
    numbers = set(re.findall(r"\d+(?:\.\d+)?", source))
    for text in [fact["statement"]] + fact["questions"]:
        if any(n not in numbers for n in re.findall(r"\d+(?:\.\d+)?", normalize(text))):
            return "a number the source does not state"
    return None


def rephrasings(fact, context, k):
    """K statements of the fact, subject named in full: the statement, a capable
    model's grounded rephrasing when there is one, then the statement in other frames."""
    s = fact["statement"]
    lc = _lower_first(s)
    out = [frame.format(s=s, lc=lc, body=s.rstrip("."), ctx=context, subject=fact["subject"]) for frame in FRAMES]
    if fact.get("model_rephrasing"):
        out.insert(1, fact["model_rephrasing"])
    return list(dict.fromkeys(out))[:k]


def fact_pairs(fact, per_fact):
    """`per_fact` (question, answer) pairs of a fact, cycling through its wordings;
    a table fact also asks the other direction (which row has this value?)."""
    questions = list(fact["questions"])
    pairs = [{"question": questions[i % len(questions)], "answer": fact["statement"]}
             for i in range(min(per_fact, len(questions)))]
    if fact.get("reverse") and per_fact > len(pairs):
        pairs.append({"question": fact["reverse"]["question"], "answer": fact["statement"]})
    return pairs


def cues(fact):
    """The content words that say what a fact is about: its statement's words that
    come from the source (not the templates' words), less the answer's."""
    answer, source = set(content_words(fact["answer"])), set(content_words(fact["sentence"]))
    return {w for w in content_words(fact["statement"]) if w in source and w not in answer and w not in GENERIC_CUES}


def states_fact(text, fact, share=0.5):
    """Does `text` state this fact: its answer, unnegated, with most of its cue words?"""
    if not has_answer(text, fact["accept"]):
        return False
    want = cues(fact)
    have = set(content_words(text))
    return bool(want) and len(want & have) >= share * len(want)


def split_heldout(facts, fraction, seed, keep_trained=()):
    """Mark a seeded `fraction` of the source sentences held out (`heldout`: True on
    each of their facts). Sentences with a fact stated by any of `keep_trained` (the
    golden answers, which are always trained) stay trained."""
    pinned = {f["group"] for f in facts if any(states_fact(t, f) for t in keep_trained)}
    groups = sorted({f["group"] for f in facts} - pinned)
    rng = random.Random(seed)
    held = set(rng.sample(groups, round(fraction * len(groups)))) if groups else set()
    for f in facts:
        f["heldout"] = f["group"] in held
    return facts


def leaked_fact(question, answer, heldout_facts):
    """The held-out fact a Q&A pair states, else None (such a pair must not be trained)."""
    text = f"{question} {answer}"
    return next((f for f in heldout_facts if states_fact(text, f)), None)


def cpt_texts(facts, context, k, qa_per_fact, seed):
    """The augmented CPT text: K rephrasings of every fact (held-out ones too: they are
    text, not Q&A), plus Q&A of the trained facts as plain text, shuffled."""
    texts = [r for f in facts for r in rephrasings(f, context, k)]
    texts += [f"{p['question']}\n{p['answer']}" for f in facts if not f.get("heldout")
              for p in fact_pairs(f, qa_per_fact)]
    random.Random(seed).shuffle(texts)
    return texts


def fact_inventory(docs, chunks, golden_answers, heldout_fraction, seed):
    """(facts, the document's name) of cleaned documents [(path, CleanDocument)]: each
    fact with the chunk that holds its sentence, and the seeded held-out split that
    spares the facts that the golden answers state."""
    from omnilm.qa_mining import context_name

    context = context_name(chunks)
    facts = []
    for path, doc in docs:
        paragraphs = [(p.text, p.pages, p.is_heading) for p in doc.paragraphs]
        mine = [c for c in chunks if c.get("source") == path.name]
        for f in extract_facts(paragraphs, context, find_acronyms(doc.text)):
            facts.append(dict(f, id=f"{path.stem}-{f['id']}", group=f"{path.stem}-{f['group']}", file=path.name,
                              chunk_id=chunk_of(f, mine)))
    return split_heldout(facts, heldout_fraction, seed, golden_answers), context


def heldout_questions(facts):
    """Evaluation rows (stage 30's format, kind heldout_fact) for every held-out fact:
    its first question, its statement as reference, its source as the passage. A
    paper with no hand-written questions is still measured on facts never trained."""
    return [{"id": f["id"], "kind": "heldout_fact", "question": f["questions"][0], "reference": f["statement"],
             "key_facts": [f["accept"]], "passage": f["sentence"]} for f in facts if f.get("heldout")]


# ---- a capable model's rephrasings -------------------------------------------------

REPHRASE_PROMPT = ("Rewrite this sentence from a research paper in different words. Keep every number and "
                   "name exactly as written and name the subject in full. Answer with the new sentence only.\n\n"
                   "Sentence: {statement}")


def parameter_count(model_dir):
    """Parameters in a model folder's safetensors files, from their headers (a
    quantized model's packed weights count as stored)."""
    import math

    from omnilm.safetensors_io import read_header

    return sum(math.prod(t["shape"]) for f in sorted(model_dir.glob("*.safetensors"))
               for t in read_header(f)[0].values())


def ungrounded_rephrasing(text, fact, min_overlap=0.8):
    """Why a model's rephrasing of a fact may not be trained, or None: the same check
    as any fact (answer kept, no number the source lacks), and its content words
    must come from the fact's source sentence and statement."""
    why = ungrounded(dict(fact, statement=text, questions=[]))
    if why:
        return why
    known = set(content_words(f"{fact['sentence']} {fact['statement']}"))
    words = content_words(text)
    if not words or sum(w in known for w in words) < min_overlap * len(words):
        return "words the source does not hold"
    return None


def model_rephrasings(model, tokenizer, facts, batch_size=16, bar=None):
    """({fact id: rephrasing}, dropped [{id, text, reason}]): one greedy rephrasing of
    each fact's statement by the model, kept only when grounded."""
    from omnilm.chat import chat_prompt
    from omnilm.qa_filters import normalize_text
    from omnilm.qa_generation import generate_batched
    from omnilm.think import split_reasoning

    prompts = [chat_prompt(tokenizer, [{"role": "user", "content": REPHRASE_PROMPT.format(statement=f["statement"])}])
               for f in facts]
    run = generate_batched(model, tokenizer, prompts, max_tokens=96, batch_size=batch_size, bar=bar)
    kept, dropped = {}, []
    for f, text, cut in zip(facts, run.texts, run.truncated):
        text = normalize_text(split_reasoning(text)[0]).strip('"')
        why = "truncated" if cut else ("same as the statement" if text == f["statement"] else
                                       ungrounded_rephrasing(text, f))
        if why:
            dropped.append({"id": f["id"], "text": text, "reason": why})
        else:
            kept[f["id"]] = text
    return kept, dropped


def facts_from_chunks(chunks, context):
    """Facts straight from chunk texts (for a data folder without facts.jsonl): no
    held-out split, pages from the chunk. A repeated sentence of overlapping chunks
    gives one fact."""
    paragraphs = []
    for c in chunks:
        for para in re.split(r"\n\s*\n", c["text"]):
            heading = len(para) < 80 and not para.rstrip().endswith((".", ",", ";", ":", "?", "!"))
            paragraphs.append((para, lambda *_, pages=c.get("pages") or [None]: pages, heading))
    facts = extract_facts(paragraphs, context, find_acronyms("\n\n".join(c["text"] for c in chunks)))
    for f in facts:
        f["heldout"], f["chunk_id"] = False, chunk_of(f, chunks)
    return facts


def chunk_of(fact, chunks):
    """The id of the first chunk that holds the fact's sentence (a table fact: its row)."""
    flat = " ".join(fact["sentence"].split(" / ")[-1].split())
    return next((c.get("id") for c in chunks if flat in " ".join(c["text"].split())), None)
