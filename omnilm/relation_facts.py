"""Subject-relation-object facts found by rule in a sentence ('Vattenfall built a wind
farm', 'Ocean Noir was masterminded by Hayden Smith', 'Karl Gustav, the mayor of Malm
Town, ...'): behind stage 10's --relations, off by default.

Why: the other rules find numbers, definitions, acronyms and table cells, so a text of
names, places and who-did-what (an encyclopedia article) gave few facts. Each relation
gives two facts, one that asks for the object and one that asks for the subject (a
model taught only 'A founded B' rarely answers 'who founded B?'). Like every fact, the
answer is a span of the sentence and the statement is made of the sentence's words;
omnilm.facts.ungrounded checks it afterwards all the same."""
import re
from collections import namedtuple

from omnilm.scoring import normalize

# One active verb: its base form (for 'What did X found?'), the forms a sentence may
# use, a particle that belongs to it ('invested in'), and the question word for the
# object and for the subject.
Verb = namedtuple("Verb", "base forms particle object_wh subject_wh")

# base, particle, object_wh, subject_wh; irregular forms are written out below
ACTIVE_VERBS = [
    ("own", "", "what", "who"), ("found", "", "what", "who"), ("succeed", "", "who", "who"),
    ("marry", "", "who", "who"), ("write", "", "what", "who"), ("compose", "", "what", "who"),
    ("lead", "to", "what", "what"), ("result", "in", "what", "what"), ("lead", "", "what", "who"),
    ("head", "", "what", "who"), ("cause", "", "what", "what"), ("trigger", "", "what", "what"),
    ("belong", "to", "what", "what"), ("lie", "in", "where", "what"), ("sit", "at", "where", "what"),
    ("sit", "in", "where", "what"), ("border", "", "what", "what"), ("build", "", "what", "who"),
    ("launch", "", "what", "who"), ("introduce", "", "what", "who"), ("host", "", "what", "what"),
    ("create", "", "what", "who"), ("establish", "", "what", "who"), ("invest", "in", "what", "who"),
    ("pass", "", "what", "who"), ("sign", "", "what", "who"), ("transfer", "", "what", "who"),
    ("join", "", "what", "who"), ("acquire", "", "what", "who"), ("develop", "", "what", "who"),
    ("design", "", "what", "who"), ("direct", "", "what", "who"), ("produce", "", "what", "who"),
    ("govern", "", "what", "who"), ("control", "", "what", "who"), ("start", "", "what", "who"),
    ("discover", "", "what", "who"), ("invent", "", "what", "who"), ("win", "", "what", "who"),
    ("release", "", "what", "who"), ("publish", "", "what", "who"), ("defeat", "", "who", "who"),
    ("rule", "", "what", "who"), ("attend", "", "what", "who"), ("include", "", "what", "what"),
    ("contain", "", "what", "what"), ("connect", "", "what", "what"), ("employ", "", "who", "what"),
    ("fund", "", "what", "who"), ("manage", "", "what", "who"), ("represent", "", "what", "who"),
    ("influence", "", "what", "who"), ("inspire", "", "what", "who"), ("become", "", "what", "who"),
    ("bring", "", "what", "who"), ("set", "up", "what", "who"), ("serve", "as", "what", "what"),
    ("replace", "", "what", "who"), ("precede", "", "what", "who"), ("teach", "", "what", "who"),
    ("study", "", "what", "who"), ("support", "", "what", "who"), ("admire", "", "what", "who"),
    ("emphasise", "", "what", "who"), ("emphasize", "", "what", "who"), ("prioritise", "", "what", "who"),
    ("showcase", "", "what", "what"), ("embody", "", "what", "what"), ("redefine", "", "what", "what"),
    ("receive", "", "what", "who"), ("open", "", "what", "who"), ("sell", "", "what", "who"),
    ("buy", "", "what", "who"), ("meet", "", "who", "who"), ("visit", "", "what", "who"),
    ("take", "office as", "what", "who"), ("encounter", "", "what", "who"), ("haunt", "", "what", "who"),
]
IRREGULAR = {"write": ("wrote", "written"), "lead": ("led", "led"), "build": ("built", "built"),
             "win": ("won", "won"), "become": ("became", "become"), "bring": ("brought", "brought"),
             "set": ("set", "set"), "teach": ("taught", "taught"), "sell": ("sold", "sold"),
             "buy": ("bought", "bought"), "meet": ("met", "met"), "take": ("took", "taken"),
             "lie": ("lay", "lain"), "sit": ("sat", "sat")}


def _present(base):
    """own -> owns, marry -> marries, teach -> teaches."""
    if re.search(r"[^aeiou]y$", base):
        return base[:-1] + "ies"
    return base + ("es" if re.search(r"(?:s|sh|ch|x|z|o)$", base) else "s")


def _past(base):
    """own -> owned, marry -> married, introduce -> introduced, plus the irregular ones."""
    if base in IRREGULAR:
        return IRREGULAR[base]
    if base.endswith("e"):
        past = base + "d"
    elif re.search(r"[^aeiou]y$", base):
        past = base[:-1] + "ied"
    else:
        past = base + "ed"
    return past, past


def _verbs():
    """The active verbs, with the forms a sentence may use (a verb with a particle first,
    so that 'led to' is read as a cause, not as 'led')."""
    verbs = []
    for base, particle, object_wh, subject_wh in sorted(ACTIVE_VERBS, key=lambda v: not v[1]):
        past, participle = _past(base)
        verbs.append(Verb(base, {_present(base): "present", past: "past", participle: "perfect"},
                          particle, object_wh, subject_wh))
    return verbs


VERBS = _verbs()

# 'X is/was <phrase> Y': a place, a part, a role, a name, an agent. The question word
# asks for Y; a place or a time drops the preposition ('Where is X located?').
BE_RELATIONS = [
    ("located in", r"(?:located|situated|based)\s+(?:in|at|on|near)", "where"),
    ("set in", r"set\s+(?:in|against)", "where"),
    ("born in", r"born\s+(?:in|at)", "where"),
    ("born on", r"born\s+on", "when"),
    ("part of", r"(?:an?\s+)?(?:integral\s+)?part\s+of", "what"),
    ("home to", r"home\s+to", "what"),
    ("one of", r"one\s+of", "what"),
    ("member of", r"an?\s+member\s+of", "what"),
    ("married to", r"married\s+to", "who"),
    ("known as", r"(?:also\s+)?(?:known|referred\s+to)\s+as", "what"),
    ("named after", r"named\s+(?:after|for)", "who"),
    ("known for", r"(?:known|famous|renowned|noted|notorious|cherished|admired|remembered)\s+(?:for|as)", "what"),
    ("responsible for", r"responsible\s+for", "what"),
    ("first to", r"the\s+first\s+to", "what"),
    ("role", r"the\s+(?:(?:current|former|first|last|new)\s+)?(?:founder|leader|head|capital|owner|mayor|president|"
             r"author|creator|director|successor|predecessor|chief|king|queen|ruler|governor|chair|captain|manager)"
             r"\s+of", "what"),
    ("agent", r"(?:[a-z]+ly\s+)?[a-z]+(?:ed|en|wn|lt|ght|ld|de|ne|un|id)\s+by", "who"),
]
# a participle phrase after a comma ('..., named after Wilhelm Stenhammar') is the same
# relation with 'is' understood; these may stand so
REDUCED_OK = {"located in", "set in", "born in", "born on", "known as", "named after", "known for", "agent"}
PERSON_NOUNS = {"mayor", "player", "statesman", "composer", "king", "queen", "founder", "president", "leader",
                "actor", "actress", "writer", "author", "detective", "investigator", "politician", "minister",
                "scientist", "artist", "singer", "musician", "director", "producer", "ruler", "governor", "chief",
                "captain", "manager", "man", "woman", "character", "figure", "person", "poet", "painter", "engineer",
                "explorer", "emperor", "prince", "princess", "general", "officer", "teacher", "professor", "partner",
                "successor", "predecessor", "creator", "owner", "head", "chair", "entity"}
PRONOUNS = {"he", "she", "it", "they", "we", "i", "you", "this", "that", "these", "those", "its", "his", "her",
            "their", "our", "there", "here", "him", "them", "itself", "himself", "herself", "themselves", "such",
            "which", "who", "what", "one"}
OPENERS = {"in", "on", "at", "by", "under", "with", "after", "before", "since", "following", "despite", "during",
           "while", "when", "as", "because", "if", "unlike", "though", "although", "however", "hence", "yet",
           "thus", "therefore", "also", "then", "later", "today", "each", "every", "for", "from", "through",
           "throughout", "across", "over", "within", "without", "upon", "once", "meanwhile", "initially", "finally",
           "eventually", "besides", "according", "among", "between", "against", "towards", "toward", "near", "to"}
PREPOSITIONS = {"in", "on", "at", "for", "with", "from", "during", "through", "across", "under", "over", "into",
                "by", "to", "of", "about", "against", "among", "between", "near", "throughout", "within"}
FINITE = re.compile(r"\b(?:is|are|was|were|has|have|had|be|been|which|that|who|whom|where)\b")
# where a relation's object ends: punctuation, a relative clause, a new clause
OBJECT_END = re.compile(r"[,;:!?()\"“”]|\.(?!\d)|\s[-–—]\s|\s(?:which|that|who|whom|whose|where|when|while|because|"
                        r"although|though|as well as|after|before|until|since|following|reflecting|being|thereby|"
                        r"despite|unlike|due to|and then|and (?=(?:is|are|was|were|has|have|had|[a-z]+ed)\b)|"
                        r"and (?=[a-z]+s\s+(?:a|an|the|his|her|its|their)\b))\b")
TRAILING_TIME = re.compile(r"\s+(?:in|on|during|by|from|since|until|after|before)\s+(?:\d|the\s+year\b|early\b|late\b).*$")
SUBORDINATORS = {"when", "while", "because", "if", "although", "though", "as", "after", "before", "since", "until",
                 "whereas", "unless", "than"}
MAX_OBJECT_WORDS = 10
MAX_SUBJECT_WORDS = 8


ADVERBS = "also|still|later|then|now|once|first|soon|never|already|again|often"


def _verb_pattern(verb):
    """The verb in a sentence: an optional 'has/have/had', an optional adverb, one of its
    forms, the particle (an adverb may sit before it: 'invested extensively in'). Not
    the end of a compound ('Calidus-led')."""
    forms = "|".join(sorted(map(re.escape, verb.forms), key=len, reverse=True))
    spaced = r"\s+".join(verb.particle.split())
    particle = rf"(?:\s+[a-z]+ly)?\s+{spaced}" if verb.particle else ""
    return re.compile(rf"(?<![\w'’-])(?:(?P<aux>has|have|had)\s+)?(?:(?:[a-z]+ly|{ADVERBS})\s+)?(?P<verb>{forms}){particle}"
                      rf"(?![\w'’-])")


VERB_PATTERNS = [(v, _verb_pattern(v)) for v in VERBS]
BE_PATTERNS = [(name, re.compile(rf"(?:(?<![\w-])(?P<be>is|are|was|were)\s+(?:(?:also|still|now|once|officially|"
                                 rf"reportedly|allegedly|widely|often)\s+)?|(?P<comma>,\s+))(?P<phrase>{phrase})"
                                 rf"(?![\w'’-])"), wh) for name, phrase, wh in BE_RELATIONS]
APPOSITION = re.compile(r"^(?P<name>(?:The\s+)?[A-Z][\w'’.–-]*(?:\s+(?:[A-Z][\w'’.–-]*|of|de|von|van|the))*)"
                        r"(?:\s*\(\s*\))?,\s+(?P<desc>(?:the|a|an)\s+[^,;]{3,80}?),\s+"
                        r"(?=(?:[a-z]+ly\s+)?(?:is|was|are|were|has|have|had|[a-z]+s|[a-z]+ed)\b)")


def _question(text):
    text = " ".join(text.split()).rstrip(" .,;:")
    return text[0].upper() + text[1:] + "?"


def _sentence(text):
    text = " ".join(text.split()).rstrip(" .,;:")
    return text[0].upper() + text[1:] + "."


def _lower_first(text):
    """'The Zorgon–Calidus government' inside a question: 'the Zorgon–Calidus government'."""
    return "the" + text[3:] if text.startswith("The ") else text


def _bare(phrase):
    """An answer without its article: 'the Malm International University' -> 'Malm International University'."""
    return re.sub(r"^(?:the|a|an)\s+", "", phrase, flags=re.I)


def _is_opener(part):
    """A phrase fronted before the subject ('Each year', 'Unfurling in ...')."""
    first = part.split()[0] if part.split() else ""
    return not first or first.lower() in OPENERS or first.lower().endswith("ing") or not first[:1].isupper()


def _subject_before(text):
    """The subject of the clause that `text` opens: fronted phrases dropped (the subject
    is then what follows the last comma: 'Unfurling in Alberta, Canada, Ocean Noir'),
    asides skipped ('Vattenfall, the Swedish power company, ...'); None when it is not
    a name-like noun phrase (a pronoun, a clause, a list, too long)."""
    text = re.sub(r"\s*\([^()]*\)", "", text)  # 'Malm Town (, "Northern Hill town")'
    text = re.split(r"[:;]\s", text)[-1]  # the clause the verb is in
    parts = [p.strip() for p in text.rstrip(" ,").split(", ")]
    fronted = False
    while parts and _is_opener(parts[0]):
        parts.pop(0)
        fronted = True
    if not parts:
        return None
    subject, asides = (parts[-1], []) if fronted else (parts[0], parts[1:])
    # an aside opens in lower case ('the capital', 'in his last speech'); a capital is a list
    if any(FINITE.search(p) or not re.match(r"[a-z]", p) for p in asides):
        return None
    subject = TRAILING_TIME.sub("", subject)  # 'The government on 22 Amazonis'
    words = subject.split()
    if not 1 <= len(words) <= MAX_SUBJECT_WORDS or FINITE.search(subject) or words[0].lower() in PRONOUNS:
        return None
    if set(words) & SUBORDINATORS or words[-1].lower() in PREPOSITIONS | {"the", "a", "an", "and", "or"}:
        return None
    return subject if re.match(r"[A-Z'‘“]", subject) else None


def _object_after(text, after_particle):
    """The verb's object: up to punctuation or a new clause, at most MAX_OBJECT_WORDS
    words (a longer one is cut before a preposition); None when it is a pronoun, empty,
    or (with no particle) opens with a preposition."""
    end = OBJECT_END.search(text)
    obj = text[:end.start() if end else len(text)].strip()
    words = obj.split()
    if len(words) > MAX_OBJECT_WORDS:
        cut = next((i for i, w in enumerate(words) if i >= 2 and w in PREPOSITIONS - {"of"}), None)
        words = words[:cut] if cut and cut <= MAX_OBJECT_WORDS else []
    if not words or words[0].lower() in PRONOUNS - {"his", "her", "its", "their"}:
        return None
    if not after_particle and words[0].lower() in PREPOSITIONS | {"not", "to"}:
        return None
    if words[-1].lower() in PREPOSITIONS | {"the", "a", "an", "and", "or"}:
        return None
    return " ".join(words)


def _fact(relation, answer, subject, statement, question):
    """A fact in the shape of the other rules' (omnilm.fact_rules)."""
    return {"kind": "relation", "answer": answer, "accept": [answer], "subject": subject, "unit": relation,
            "statement": statement, "questions": [_question(question)]}


def _both_ways(relation, subject, obj, statement, ask_object, ask_subject):
    """The relation as two facts: the object asked for, and the subject asked for. A
    time at the end is not part of the answer ('Kell Works in 1920' -> 'Kell Works');
    a common noun ('The storm') is no answer a reader would look for."""
    answer = TRAILING_TIME.sub("", _bare(obj)) or _bare(obj)
    facts = [_fact(relation, answer, subject, statement, ask_object)]
    if re.search(r"(?<![\w'’])['‘“]?[A-Z\d]", re.sub(r"^The\s+", "", subject)):  # a name, not 'The storm'
        facts.append(_fact(relation, _bare(subject), subject, statement, ask_subject))
    return facts


def _lead_name(sentence):
    """The name an article's sentence opens with, 'Ocean Noir () is a Canadian series, ...'
    -> 'Ocean Noir': what a participle phrase at its end ('..., masterminded by X') is about."""
    m = re.match(r"^((?:The\s+)?[A-Z][\w'’.–-]*(?:\s+[A-Z][\w'’.–-]*){0,5})(?:\s*\(\s*\))?\s+(?:is|was)\s+(?:an?|the)\s",
                 sentence)
    return m.group(1) if m else None


def _overlaps(span, used):
    return any(span[0] < end and start < span[1] for start, end in used)


def _be_facts(sentence, used):
    """'X is located in Y', 'X was masterminded by Y', '..., named after Y' (`used`
    gets the spans taken, so an active verb inside them is not read again)."""
    facts = []
    for name, pattern, wh in BE_PATTERNS:
        for m in pattern.finditer(sentence):
            reduced = m.group("comma") is not None
            if (reduced and name not in REDUCED_OK) or _overlaps(m.span(), used):
                continue
            subject = _subject_before(sentence[:m.start()]) or (_lead_name(sentence) if reduced else None)
            obj = _object_after(sentence[m.end():], True)
            if not subject or not obj:
                continue
            used.append(m.span())
            be, phrase = m.group("be") or ("was" if name == "agent" else "is"), m.group("phrase")
            statement = _sentence(f"{subject} {be} {phrase} {obj}")
            if wh in ("where", "when"):  # 'Where is X located?': the preposition goes
                ask_object = f"{wh} {be} {_lower_first(subject)} {phrase.rsplit(' ', 1)[0]}"
            elif name == "first to":
                ask_object = f"what {be} {_lower_first(subject)} the first to do"
            else:
                ask_object = f"{wh} {be} {_lower_first(subject)} {phrase}"
            person = name in ("married to", "first to") or (name == "role" and set(phrase.split()) & PERSON_NOUNS)
            ask_subject = f"{'who' if person else 'what'} {be} {phrase} {obj}"
            facts += _both_ways(name, subject, obj, statement, ask_object, ask_subject)
    return facts


def _active_facts(sentence, used):
    """'X founded Y', 'X has invested extensively in Y', 'X led to Y' (each verb of
    ACTIVE_VERBS in its present, past or perfect form)."""
    facts = []
    for verb, pattern in VERB_PATTERNS:
        past, participle = _past(verb.base)
        for m in pattern.finditer(sentence):
            aux, written = m.group("aux"), m.group("verb")
            if _overlaps(m.span(), used) or (aux and written != participle) or (not aux and written not in
                                                                                    (past, _present(verb.base))):
                continue  # 'has wrote' or a bare 'written' is no active verb
            subject = _subject_before(sentence[:m.start()])
            obj = _object_after(sentence[m.end():], bool(verb.particle))
            if not subject or not obj:
                continue
            used.append(m.span())
            helper = aux or ("does" if written != past else "did")
            helper = "do" if helper == "does" and " and " in subject else helper
            particle = "" if verb.object_wh == "where" else verb.particle
            ask_object = f"{verb.object_wh} {helper} {_lower_first(subject)} {written if aux else verb.base} {particle}"
            statement = _sentence(f"{subject} {m.group(0)} {obj}")
            facts += _both_ways(verb.base, subject, obj, statement, ask_object,
                                f"{verb.subject_wh} {m.group(0)} {obj}")
    return facts


def _apposition_facts(sentence):
    """'Karl Gustav, the current mayor of Malm Town, is ...' -> 'Karl Gustav is the
    current mayor of Malm Town', asked both ways when the description is definite
    ('the ...'), else only 'Who is Karl Gustav?'."""
    m = APPOSITION.match(sentence)
    if not m or m.group("name").split()[0].lower() in PRONOUNS or len(m.group("desc").split()) > 12:
        return []
    name, desc = m.group("name"), m.group("desc")
    wh = "who" if set(normalize(desc).split()) & PERSON_NOUNS else "what"
    statement = _sentence(f"{name} is {desc}")
    facts = [_fact("is a", _bare(desc), name, statement, f"{wh} is {_lower_first(name)}")]
    if desc.lower().startswith("the "):
        facts.append(_fact("is a", _bare(name), name, statement, f"{wh} is {desc}"))
    return facts


def relation_facts(sentence, known=()):
    """The subject-relation-object facts of one sentence (its subject named in full,
    as omnilm.fact_rules.Resolver leaves it), less those whose answer one of `known`
    (the other rules' facts of the same sentence) or an earlier relation already has."""
    used = []
    found = _apposition_facts(sentence) + _be_facts(sentence, used) + _active_facts(sentence, used)
    seen, facts = {normalize(f["answer"]) for f in known}, []
    for fact in found:
        answer = normalize(fact["answer"])
        if answer and answer not in seen:
            seen.add(answer)
            facts.append(fact)
    return facts
