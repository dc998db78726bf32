"""Questions and probes the training never shaped, made from a paper's fact inventory.

A model trained on "template question -> the fact's statement" answers held-out
questions of the same template whatever it understood, so those questions cannot
tell learning from pattern matching. Here the evaluation asks in question forms
that no training row uses (the forms are families: what a question opens with),
and checks the facts' memory with cloze probes: a wording of the fact cut before
its answer and completed as plain text, without the chat template.

Forms trained today (stage 10's fact questions, stage 20's generated and golden
ones) are wh-questions; the independent forms are a fill-in-the-blank and a
true-or-false with a wrong value (the answer must correct it). The evaluation
checks every independent question against the questions actually trained
(`trained_forms`), so a future template or a model that writes yes/no questions
cannot slip a trained form into the verdict."""
import random
import re

from omnilm.errors import UserError

INDEPENDENT_FILE = "independent_questions.jsonl"
CLOZE_FILE = "cloze_probes.jsonl"
INDEPENDENT_MAX = 40  # questions a paper: held-out facts first, then a seeded sample of the trained
CLOZE_MAX = 48        # probes a paper, in the same order
BLANK = "____"

AUXILIARIES = {"is", "are", "was", "were", "do", "does", "did", "can", "could", "has", "have", "had", "will",
               "would", "should", "shall", "may", "might", "must"}
WH_WORDS = ("how many", "how much", "how long", "how", "what", "which", "who", "whom", "whose", "when", "where",
            "why")


def question_form(question):
    """The family a question's wording belongs to: 'blank' (has a gap to fill),
    'true-false', 'yes-no' (opens with an auxiliary), 'wh:<word>' (the first wh-word
    anywhere, so 'X does how many ...?' is a how-many question), else 'other'."""
    text = " ".join(question.lower().split())
    if "___" in text:
        return "blank"
    first = re.findall(r"[a-z']+", text)[:3]
    if first[:3] == ["true", "or", "false"]:
        return "true-false"
    if first and first[0] in AUXILIARIES:
        return "yes-no"
    hits = [(m.start(), wh) for wh in WH_WORDS for m in re.finditer(rf"\b{wh}\b", text)]
    if hits:
        start = min(h[0] for h in hits)
        return "wh:" + max((wh for s, wh in hits if s == start), key=len)  # 'how many' over 'how'
    return "other"


def trained_questions(rows):
    """The questions among training rows: a chat row's user turns, a prompt, and in a
    plain-text row every line that ends with '?' (the Q&A mixed into the CPT text)."""
    out = []
    for row in rows:
        if "messages" in row:
            out += [m["content"] for m in row["messages"] if m.get("role") == "user"]
        elif "prompt" in row:
            out.append(row["prompt"])
        elif "text" in row:
            out += [line.strip() for line in row["text"].splitlines() if line.strip().endswith("?")]
    return out


def trained_forms(questions):
    return {question_form(q) for q in questions}


def shares_trained_form(question, forms):
    """True when an evaluation question has the form of a trained one: it cannot count
    as independent."""
    return question_form(question) in forms


def check_independent(rows, forms):
    """(kept, dropped) rows: an independent row whose question form some training row has
    is dropped, with the form (a trained question's very words have its form too)."""
    kept, dropped = [], []
    for r in rows:
        if r["kind"] == "independent" and shares_trained_form(r["question"], forms):
            dropped.append(dict(r, form=question_form(r["question"])))
        else:
            kept.append(r)
    return kept, dropped


# ------------------------------------------------------------------ building them

def _answer_span(text, fact):
    """(start, end) of the fact's answer in `text` as whole words, else None."""
    for variant in sorted(fact["accept"], key=len, reverse=True):
        m = re.search(rf"(?<![\w.]){re.escape(variant)}(?![\w])", text)
        if m:
            return m.span()
    return None


MAX_ANSWER_WORDS = 6  # a longer answer (the rest of a sentence) is not a fact a reader would fill in


def _ordered(facts, limit, seed):
    """Held-out facts first (in their order), then the trained ones in a seeded order;
    facts whose answer is more than MAX_ANSWER_WORDS words are left out."""
    facts = [f for f in facts if len(f["answer"].split()) <= MAX_ANSWER_WORDS]
    held = [f for f in facts if f.get("heldout")]
    trained = [f for f in facts if not f.get("heldout")]
    random.Random(seed).shuffle(trained)
    return (held + trained)[:limit]


def _wrong_value(fact, facts, rng):
    """A value the fact does not have: another fact's answer of the same kind (and
    unit, for a quantity), else the number doubled."""
    def shape(answer):  # a count is not replaced by a decimal, nor a word by a figure
        return answer.replace(",", "").isdigit(), "." in answer, answer[:1].isdigit()

    same = [f["answer"] for f in facts if f["kind"] == fact["kind"] and f.get("unit") == fact.get("unit")
            and shape(f["answer"]) == shape(fact["answer"])
            and f["answer"] not in fact["accept"] and f["answer"] not in fact["statement"]]
    if same:
        return rng.choice(sorted(set(same)))
    number = re.fullmatch(r"(\d[\d,]*)(\.\d+)?", fact["answer"])
    if number:
        whole = int(number.group(1).replace(",", "")) * 2
        return f"{whole:,}" if "," in number.group(1) else f"{whole}{number.group(2) or ''}"
    return None


def _quoted(text):
    return text.replace('"', "'")


def independent_questions(facts, context, limit=INDEPENDENT_MAX, seed=0):
    """Evaluation rows (kind independent) in the forms no template trains: alternately a
    blank to fill in the fact's statement and a true-or-false with a wrong value. Each
    keeps the fact's split (`fact_split`) so trained and held-out facts read apart."""
    rng = random.Random(seed)
    rows = []
    for n, f in enumerate(_ordered(facts, len(facts), seed)):
        if len(rows) >= limit:
            break
        span = _answer_span(f["statement"], f)
        if span is None:
            continue
        before, after = f["statement"][:span[0]], f["statement"][span[1]:]
        wrong = _wrong_value(f, facts, rng) if n % 2 else None
        if wrong is not None:
            question = (f'True or false, according to the {context} paper: "{_quoted(before + wrong + after)}" '
                        "If it is false, give the correct value.")
        else:
            question = f'Fill in the blank, as the {context} paper states it: "{_quoted(before + BLANK + after)}"'
        rows.append({"id": f"{f['id']}-i", "kind": "independent", "question": question,
                     "reference": f["statement"], "key_facts": [f["accept"]],
                     "fact_split": "heldout" if f.get("heldout") else "trained"})
    return rows


def cloze_probes(facts, trained_texts, limit=CLOZE_MAX, seed=0, min_words=4):
    """Cloze rows (kind cloze): a wording of the fact cut before its answer, to be
    completed as plain text. A rule-made restructuring that no training row holds is
    used when there is one ('restated'), else the paper's own sentence ('verbatim'); a
    wording whose answer comes before its `min_words`-th word has too little to go on."""
    trained = set(trained_texts)
    rows = []
    for f in _ordered(facts, len(facts), seed):
        if len(rows) >= limit:
            break
        untrained = [v for v in f.get("variants", []) if v not in trained]
        for probe, text in [*(("restated", v) for v in untrained), ("verbatim", f["sentence"])]:
            span = _answer_span(text, f)
            if span and len(text[:span[0]].split()) >= min_words:
                rows.append({"id": f"{f['id']}-c", "kind": "cloze", "question": text[:span[0]].rstrip(),
                             "reference": text[span[0]:span[1]], "key_facts": [f["accept"]], "probe": probe,
                             "fact_split": "heldout" if f.get("heldout") else "trained"})
                break
    return rows

