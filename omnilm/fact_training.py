"""What the fact inventory becomes: restatements for the CPT text, question/answer
pairs for SFT, the held-out split (on source sentences) and the held-out evaluation
rows, and a capable model's grounded rephrasings.

Why rephrasings (Allen-Zhu & Li, Physics of Language Models 3.1): a fact seen in
one phrasing is memorized but cannot be asked for; seen in several, with the
subject named in full, it can. Why a fixed number of questions per fact
(Mecklenburg et al. 2024): every fact weighs the same in SFT.

The held-out split works on source sentences: all facts of a held-out sentence
stay out of every Q&A row (SFT and the Q&A mixed into CPT), so a question about
one cannot be answered by having learned a sibling clause of the same sentence."""
import random

from omnilm.fact_rules import FRAMES, lower_first
from omnilm.facts import chunk_of, cues, extract_facts, has_answer, ungrounded
from omnilm.qa_filters import content_words
from omnilm.scoring import normalize
from omnilm.qa_mining import find_acronyms


def rephrasings(fact, context, k):
    """K statements of the fact, subject named in full: the statement, a capable
    model's grounded rephrasings when there are any, the rule's other sentence shapes
    (table cells have them), then the statement in other frames."""
    s = fact["statement"]
    lc = lower_first(s)
    framed = [frame.format(s=s, lc=lc, body=s.rstrip("."), ctx=context, subject=fact["subject"]) for frame in FRAMES]
    out = framed[:1] + fact.get("model_rephrasings", []) + fact.get("variants", []) + framed[1:]
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


class HeldoutFacts:
    """The held-out facts, ready to check many Q&A pairs against: a pair can state a
    fact only if the fact's answer (normalized) is in the pair's normalized text, so
    the full check runs on those few. Checking each pair against every fact from
    scratch grew with pairs x facts, too slow for a long paper
    (docs/experiments/2026-12-01-long-documents.md)."""

    def __init__(self, facts):
        self._facts = [(f, [normalize(a) for a in f["accept"]]) for f in facts]

    def leaked(self, question, answer):
        """The held-out fact the pair states, else None (such a pair must not be trained)."""
        text = f"{question} {answer}"
        flat = normalize(text)
        return next((f for f, answers in self._facts if any(a in flat for a in answers) and states_fact(text, f)),
                    None)


def leaked_fact(question, answer, heldout_facts):
    """The held-out fact a Q&A pair states, else None (one pair; HeldoutFacts for many)."""
    return HeldoutFacts(heldout_facts).leaked(question, answer)


def cpt_items(facts, context, k, qa_per_fact, seed):
    """The augmented CPT text as (fact index, text), shuffled: K rephrasings of every
    fact (held-out ones too: they are text, not Q&A), plus Q&A of the trained facts as
    plain text."""
    items = [(i, r) for i, f in enumerate(facts) for r in rephrasings(f, context, k)]
    items += [(i, f"{p['question']}\n{p['answer']}") for i, f in enumerate(facts) if not f.get("heldout")
              for p in fact_pairs(f, qa_per_fact)]
    random.Random(seed).shuffle(items)
    return items


def cpt_texts(facts, context, k, qa_per_fact, seed):
    """cpt_items' texts alone, in the same order."""
    return [text for _, text in cpt_items(facts, context, k, qa_per_fact, seed)]


def pack_apart(count_tokens, items, max_tokens):
    """(fact, text) items packed into rows of at most `max_tokens` tokens, a blank line
    apart, no two texts of one fact in a row: restatements side by side let the model
    copy a fact from its context instead of storing it (Physics of LM 3.1). Each row
    takes, in order, every waiting text that fits and whose fact it lacks; the rest
    wait for the next row. Identical texts (two facts of one sentence) share a fact."""
    fact_of = {}
    for fact, text in items:  # one text stated for two facts counts as both
        fact_of.setdefault(text, set()).add(fact)
    waiting = [(fact_of[text], text + "\n\n", count_tokens(text + "\n\n")) for _, text in items]
    rows = []
    while waiting:
        row, facts, size, later = "", set(), 0, []
        for owners, text, n in waiting:
            if not (owners & facts) and (not row or size + n <= max_tokens):
                row, facts, size = row + text, facts | owners, size + n
            else:
                later.append((owners, text, n))
        rows.append(row.rstrip())
        waiting = later
    return rows


def fact_inventory(docs, chunks, golden_answers, heldout_fraction, seed, relations=False):
    """(facts, the document's name) of cleaned documents [(path, CleanDocument)]: each
    fact with the chunk that holds its sentence, and the seeded held-out split that
    spares the facts that the golden answers state. `relations`: also the
    subject-relation-object facts (stage 10's --relations)."""
    from omnilm.qa_mining import context_name

    context = context_name(chunks)
    facts = []
    for path, doc in docs:
        paragraphs = [(p.text, p.pages, p.is_heading) for p in doc.paragraphs]
        mine = [c for c in chunks if c.get("source") == path.name]
        for f in extract_facts(paragraphs, context, find_acronyms(doc.text), relations=relations):
            facts.append(dict(f, id=f"{path.stem}-{f['id']}", group=f"{path.stem}-{f['group']}", file=path.name,
                              chunk_id=chunk_of(f, mine)))
    return split_heldout(facts, heldout_fraction, seed, golden_answers), context


def heldout_questions(facts):
    """Evaluation rows (stage 30's format, kind heldout_fact) for every held-out fact:
    its first question, its statement as reference, its source as the passage. A
    paper with no hand-written questions is still measured on facts never trained.

    A table cell's answer must name its row as well as its value: a table holds the
    same kind of number in every row, and the demo's SFT model answered Soft prompts'
    latency with "VELLUM has a latency of 96", a row it was trained on."""
    return [{"id": f["id"], "kind": "heldout_fact", "question": f["questions"][0], "reference": f["statement"],
             "key_facts": [f["accept"]] + ([[f["subject"]]] if f["kind"] == "table" else []),
             "passage": f["sentence"]} for f in facts if f.get("heldout")]


# One prompt per sentence structure: a fact is extractable when its text comes in
# several structures, not the same sentence framed (Physics of LM 3.1; docs/design.md,
# "Restating each fact"; docs/experiments/2026-12-01-rephrasings-in-other-structures.md).
# Each asks for the same rules.
REPHRASE_PROMPTS = tuple(
    f"Rewrite this sentence from a research paper {how}. Keep every number and name exactly as written and "
    "name the subject in full. Answer with the new sentence only.\n\nSentence: {statement}"
    for how in ("in different words",
                "so that it begins with another of its parts (the number, the object, a place or a time)",
                "in the passive voice if it is active, in the active voice if it is passive"))


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


def model_rephrasings(model, tokenizer, facts, per_fact=len(REPHRASE_PROMPTS), batch_size=16, bar=None):
    """({fact id: [rephrasings]}, dropped [{id, text, reason}]): greedy rephrasings of
    each fact's statement by the model, one per prompt (`per_fact` of them), kept only
    when grounded and new."""
    from omnilm.chat import chat_prompt
    from omnilm.qa_filters import normalize_text
    from omnilm.qa_generation import generate_batched
    from omnilm.think import split_reasoning

    asked = [(f, prompt) for f in facts for prompt in REPHRASE_PROMPTS[:per_fact]]
    prompts = [chat_prompt(tokenizer, [{"role": "user", "content": prompt.format(statement=f["statement"])}])
               for f, prompt in asked]
    run = generate_batched(model, tokenizer, prompts, max_tokens=96, batch_size=batch_size, bar=bar)
    kept, dropped = {}, []
    for (f, _), text, cut in zip(asked, run.texts, run.truncated):
        text = normalize_text(split_reasoning(text)[0]).strip('"')
        keep_rephrasing(f, text, kept, dropped, "truncated" if cut else None)
    return kept, dropped


def keep_rephrasing(fact, text, kept, dropped, why=None):
    """Add `text` to kept[fact id] when it is a new, grounded rephrasing of the fact,
    else to dropped with the reason (`why`, when the caller already has one)."""
    mine = kept.get(fact["id"], [])
    why = why or ("same as the statement" if text == fact["statement"] else
                  "same as another rephrasing" if text in mine else ungrounded_rephrasing(text, fact))
    if why:
        dropped.append({"id": fact["id"], "text": text, "reason": why})
    else:
        kept[fact["id"]] = mine + [text]


def written_rephrasings(rows, facts, per_fact):
    """({fact id: [rephrasings]}, dropped) from rephrasings written elsewhere (a bigger
    model, a person): rows {"statement", "rephrasings": [...]}, matched to the facts by
    statement, at most `per_fact` kept a fact, each through the same checks as a
    model's. A row whose statement no fact has is dropped (its id is null)."""
    by_statement = {}
    for f in facts:
        by_statement.setdefault(f["statement"], []).append(f)
    kept, dropped = {}, []
    for row in rows:
        mine = by_statement.get(row["statement"], [])
        if not mine:
            dropped += [{"id": None, "text": t, "reason": "no fact has this statement"} for t in row["rephrasings"]]
        for f in mine:
            for text in row["rephrasings"]:
                if len(kept.get(f["id"], [])) < per_fact:
                    keep_rephrasing(f, text, kept, dropped)
    return kept, dropped
