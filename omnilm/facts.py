"""The document's fact inventory: atomic facts out of its sentences and table rows
(the rules are in omnilm.fact_rules), each with the sentence and page it came from
and several questions that ask for it; a fact the paper repeats is kept once.

A fact is the answer span of one clause (a number with what it counts, a name, a
definition, an acronym's long name, a table cell) plus that clause restated on its
own ("The VELLUM compressor has 6 layers.") and, where a rule can, in other sentence
structures ("There are 6 layers in the VELLUM compressor."). Every fact's answer is
a span of its source sentence (`ungrounded` says why one is not). What facts become
for training (restatements, Q&A, the held-out split) is in omnilm.fact_training."""
import re

from omnilm.fact_rules import (GENERIC_CUES, HANGUL, Resolver, definition_facts, parse_table, quantity_facts,
                               restructured, subject_of, table_facts)
from omnilm.qa_filters import content_words, split_sentences
from omnilm.relation_facts import relation_facts
from omnilm.qa_mining import find_acronyms
from omnilm.scoring import normalize, score_answer

FACTS_FILE = "facts.jsonl"
HELDOUT_QUESTIONS_FILE = "heldout_questions.jsonl"


def extract_facts(paragraphs, context, acronyms, relations=False):
    """The facts of a document: paragraphs is [(text, page_of(start, end), is_heading)].
    Returns facts with id, kind, answer, accept, subject, statement, questions, source,
    page, group (the source sentence's id; held-out splits work on it). `relations`
    adds the subject-relation-object facts of omnilm.relation_facts (off by default:
    the recipe's figures were measured without them)."""
    facts, resolver, n_sentence, i = [], Resolver(context), 0, 0
    texts = [t for t, _, _ in paragraphs]
    while i < len(paragraphs):
        text, page_of, heading = paragraphs[i]
        table = parse_table(texts[i:i + 40]) if not re.search(r"\d", text) or heading else None
        if table:
            header, rows, used = table
            for label, values in rows:  # each row is a sentence of its own for the split
                for f in table_facts(label, values, header, context):
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
            hint = subject_of(resolved)
            found = definition_facts(resolved, acronyms, context) + \
                quantity_facts(resolved, hint[0] if hint else None, context)
            if relations:
                found += relation_facts(resolved, found)
            for f in found:
                facts.append(dict(f, sentence=sentence, page=pages[0] if pages else None, group=f"s{n_sentence:03d}"))
            n_sentence += 1
    out = _merge_repeats([f for f in facts if not ungrounded(f)])
    for n, f in enumerate(out):
        f["id"] = f"f{n:03d}"
        if "variants" not in f:  # a table cell has its own shapes
            shapes = [v for v in restructured(f["statement"], f["answer"]) if keeps_fact(v, f)]
            if shapes:
                f["variants"] = shapes
    return out


def keeps_fact(shape, fact):
    """Does a rule-made shape of the statement still state the fact: every word of its
    answer (in any order: 'The training schedule of VELLUM is PCW' reverses 'PCW is the
    training schedule of VELLUM'), and no number the source lacks?"""
    return set(content_words(fact["answer"])) <= set(content_words(shape)) and \
        not unknown_number(shape, fact["sentence"])


def _merge_repeats(facts):
    """One fact per thing stated: a fact the paper repeats (the abstract, then the
    method) is kept once, and the sentences that share it become one group, so a
    held-out fact is not trained through its other sentence."""
    kept, parent, by_answer = [], {}, {}  # by_answer: only facts with the same answer can repeat each other

    def root(g):
        while parent.get(g, g) != g:
            g = parent[g]
        return g

    for f in facts:
        same_answer = by_answer.setdefault(normalize(f["answer"]), [])
        same = next((k for k in same_answer if _similar(cues(k), cues(f))), None)
        if same:
            parent[root(f["group"])] = root(same["group"])
        else:
            kept.append(f)
            same_answer.append(f)
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
    if not fact.get("answer") or not has_answer(fact["sentence"], [fact["answer"]]):
        return "answer not in source"
    if not has_answer(fact["statement"], fact["accept"]):
        return "statement lacks the answer"
    if any(unknown_number(text, fact["sentence"]) for text in [fact["statement"]] + fact["questions"]):
        return "a number the source does not state"
    return None


def unknown_number(text, source):
    """Does `text` hold a number that `source` does not?"""
    numbers = set(re.findall(r"\d+(?:\.\d+)?", normalize(source)))
    return any(n not in numbers for n in re.findall(r"\d+(?:\.\d+)?", normalize(text)))


def cues(fact):
    """The content words that say what a fact is about: its statement's words that
    come from the source (not the templates' words), less the answer's."""
    answer, source = set(content_words(fact["answer"])), set(content_words(fact["sentence"]))
    return {w for w in content_words(fact["statement"]) if w in source and w not in answer and w not in GENERIC_CUES}


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
