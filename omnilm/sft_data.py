"""From candidate pairs to SFT data: filters, variants, hold-outs, dedupe, split, chat lines.

Priority when two questions near-duplicate each other: golden > fact > model (the
first kept wins). Golden pairs always go to train; a pair whose question
near-duplicates an evaluation `paraphrase` question is held out (`heldout_for_eval`)
so stage 30 measures generalization, not recall."""
import random
from collections import Counter

from omnilm.errors import UserError
from omnilm.jsonl import read_jsonl
from omnilm.paths import display
from omnilm.fact_training import HeldoutFacts
from omnilm.qa_filters import filter_pair, find_near_duplicate, normalize_text, question_key
from omnilm.qa_mining import context_variants, plain_variant

HELDOUT_SIMILARITY = 0.6  # looser than dedupe (0.85): a lightly reworded eval question must not leak in


def load_golden(path):
    """[{question, answer}] from golden.jsonl; a line without both fails with its number."""
    pairs = []
    for n, row in enumerate(read_jsonl(path, "golden pairs"), 1):
        q, a = row.get("question"), row.get("answer")
        if not (isinstance(q, str) and q.strip() and isinstance(a, str) and a.strip()):
            raise UserError(f"golden pairs {display(path)} entry {n} needs non-empty \"question\" and \"answer\"")
        pairs.append({"question": normalize_text(q), "answer": normalize_text(a), "source": "golden",
                      "variant": "plain", "pages": row.get("pages", []), "chunk_id": None})
    return pairs


def load_eval_questions(path, kind):
    """The evaluation's questions of one kind (`paraphrase`, `control`...), normalized."""
    return [normalize_text(r["question"]) for r in read_jsonl(path, "evaluation questions")
            if r.get("kind") == kind and isinstance(r.get("question"), str)]


def load_heldout_questions(path):
    """The evaluation's `paraphrase` questions (kept out of training)."""
    return load_eval_questions(path, "paraphrase")


def _named_concept(question, context):
    """Does a model question name something (an acronym or a capitalized term past its first word)?"""
    words = question.rstrip("?").split()[1:]
    return any(w[:1].isupper() and w.strip("?,.") != context for w in words)


def with_variants(base, context):
    """The pair plus its questions with and without the document's name. Rule pairs
    know their concept; golden and model pairs count as named when they name one."""
    if base["source"] == "fact":  # a fact's own questions already ask it several ways
        return [base]
    if base["source"] != "rule":
        base["concept"] = "named" if _named_concept(base["question"], context) else None
    plain = plain_variant(base, context) if base["source"] == "model" else None
    if plain:  # a model question that already named the document
        return [dict(base, variant="context"), plain]
    return [base] + (context_variants(base, context) if base.get("concept") else [])


def build_pairs(golden, candidates, chunk_texts, heldout, context, min_overlap=0.8, heldout_facts=()):
    """(kept, dropped): every candidate filtered, kept ones expanded into context
    variants, then held-out and near-duplicate checks in priority order. A pair
    that states one of `heldout_facts` is dropped: no training row may teach it."""
    kept, dropped, heldout_index = [], [], HeldoutFacts(heldout_facts)

    def admit(pair):
        leaked = heldout_index.leaked(pair["question"], pair["answer"])
        if leaked:
            dropped.append(dict(pair, reason="heldout_fact", similar_to=leaked["id"]))
            return
        held = find_near_duplicate(pair["question"], heldout, HELDOUT_SIMILARITY)
        # variants of one pair are meant to differ slightly: among them only an exact repeat counts
        same = next((k for k in kept if k["group"] == pair["group"]
                     and question_key(k["question"]) == question_key(pair["question"])), None)
        other = find_near_duplicate(pair["question"], [k["question"] for k in kept if k["group"] != pair["group"]])
        if held:
            dropped.append(dict(pair, reason="heldout_for_eval", similar_to=held))
        elif same or other:
            dropped.append(dict(pair, reason="duplicate", similar_to=same["question"] if same else other))
        else:
            kept.append(pair)

    for i, pair in enumerate(golden):
        for v in with_variants(dict(pair, group=f"golden-{i}"), context):
            admit(v)
    order = {"fact": 0, "rule": 0, "model": 1}
    for i, pair in enumerate(sorted(candidates, key=lambda p: order.get(p["source"], 2))):
        if pair.get("reason"):  # unparseable output, already judged
            dropped.append(pair)
            continue
        q, a = pair["question"], pair["answer"]
        # fact pairs are grounded by construction (omnilm.facts.ungrounded) and may be long
        reason = None if pair["source"] == "fact" else filter_pair(q, a, chunk_texts.get(pair.get("chunk_id"), ""),
                                                                    min_overlap)
        if reason:
            dropped.append(dict(pair, reason=reason))
            continue
        base = dict(pair, question=normalize_text(q), answer=normalize_text(a), group=f"{pair['source']}-{i}")
        base.setdefault("variant", "plain")
        for v in with_variants(base, context):
            admit(v)
    return kept, dropped


def split_train_valid(pairs, valid_fraction=0.2, seed=0):
    """Hand-written golden questions in train; valid takes other pairs (golden
    variants included) only from groups that keep at least one pair in train, so
    validation asks known facts in other words: the signal that picks the best
    weights. With nothing to spare, valid repeats one train pair (mlx-lm needs a
    validation set)."""
    rng = random.Random(seed)
    sizes = Counter(p["group"] for p in pairs)

    def original_golden(p):
        return p["source"] == "golden" and p.get("variant", "plain") == "plain"

    spare = [i for i, p in enumerate(pairs) if not original_golden(p) and sizes[p["group"]] > 1]
    rng.shuffle(spare)
    want = max(1, round(valid_fraction * len(pairs)))
    valid_idx, left = set(), dict(sizes)
    for i in spare:
        if len(valid_idx) >= want:
            break
        if left[pairs[i]["group"]] > 1:
            valid_idx.add(i)
            left[pairs[i]["group"]] -= 1
    train = [p for i, p in enumerate(pairs) if i not in valid_idx]
    valid = [p for i, p in enumerate(pairs) if i in valid_idx]
    overlap = not valid and bool(train)
    if overlap:
        valid = [train[rng.randrange(len(train))]]
    return train, valid, overlap


def to_messages(pair):
    """One chat line; the trainer renders it with the model's template and masks the prompt."""
    row = {"messages": [{"role": "user", "content": pair["question"]},
                        {"role": "assistant", "content": pair["answer"]}]}
    if "source" in pair:  # the trainer reports replay (general answers) apart; mlx-lm ignores it
        row["source"] = pair["source"]
    return row


def counts(kept, dropped, train, valid):
    """The manifest's figures: kept by source and variant, dropped by reason."""
    return {"kept": len(kept), "train": len(train), "valid": len(valid),
            "kept_by_source": dict(Counter(p["source"] for p in kept)),
            "kept_by_variant": dict(Counter(p.get("variant", "plain") for p in kept)),
            "golden_in_train": sum(p["source"] == "golden" for p in train),
            "dropped": len(dropped),
            "dropped_by_reason": dict(Counter(p["reason"] for p in dropped)),
            "dropped_malformed_detail": dict(Counter(p.get("detail") for p in dropped if p["reason"] == "malformed"))}
