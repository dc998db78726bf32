"""The fact inventory: what the rules find in the demo paper and in Korean text, that
every fact is grounded, and that held-out facts reach no training row."""
import json

import pytest

from omnilm.chunking import split_sentences
from omnilm.fact_training import (HeldoutFacts, cpt_texts, fact_inventory, fact_pairs, leaked_fact, parameter_count,
                                  rephrasings, split_heldout, states_fact, ungrounded_rephrasing)
from omnilm.fact_rules import restructured
from omnilm.facts import extract_facts, has_answer, keeps_fact, ungrounded
from omnilm.paths import REPO_DIR
from omnilm.pdf_text import clean_pages, extract_pages
from omnilm.pdf_writer import render_paper
from omnilm.qa_filters import content_words
from omnilm.qa_mining import find_acronyms
from omnilm.sft_data import build_pairs, load_golden

FIXTURES = REPO_DIR / "tests" / "fixtures"


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """(facts, context) of the demo paper, read from its real PDF as stage 10 reads it."""
    pdf = tmp_path_factory.mktemp("paper") / "demo_paper.pdf"
    pdf.write_bytes(render_paper((REPO_DIR / "10_stage1_cpt" / "demo_paper.md").read_text())[0])
    doc = clean_pages(extract_pages(pdf)[0])
    chunks = [{"id": "c0", "source": pdf.name, "text": doc.text}]
    golden = [g["answer"] for g in load_golden(REPO_DIR / "10_stage1_cpt" / "demo_paper.golden.jsonl")]
    return fact_inventory([(pdf, doc)], chunks, golden, 0.35, 0)


def find(facts, answer, word):
    return [f for f in facts if f["answer"] == answer and word in f["statement"]]


def test_demo_paper_facts_are_many_grounded_and_of_every_kind(demo):
    facts, context = demo
    assert context == "VELLUM" and len(facts) >= 40
    assert {"quantity", "table", "acronym", "definition", "name"} <= {f["kind"] for f in facts}
    for f in facts:
        assert ungrounded(f) is None, f
        assert f["answer"] in f["sentence"] and f["page"] in (1, 2, 3, 4) and f["questions"] and f["chunk_id"] == "c0"
    assert len({f["id"] for f in facts}) == len(facts)
    # facts the fine-tuned model used to get wrong: running text only, no golden pair
    six = find(facts, "6", "layers")
    assert six and six[0]["statement"] == "The VELLUM compressor has 6 layers."
    assert "How many layers does the VELLUM compressor have?" in six[0]["questions"]
    assert find(facts, "48", "probe questions") and find(facts, "0.7", "softmax temperature")
    pruning = find(facts, "58.1", "Token pruning")
    assert pruning and pruning[0]["kind"] == "table" and pruning[0]["page"] == 3
    assert find(facts, "Apache 2.0", "license")
    # a fact the paper repeats (abstract, contributions, method) is one fact
    assert len([f for f in facts if f["kind"] == "acronym" and f["subject"] == "ATD"]) == 1


def test_rephrasings_name_the_subject_and_differ(demo):
    facts, context = demo
    six = find(facts, "6", "layers")[0]
    five = rephrasings(six, context, 5)
    assert len(five) == len(set(five)) == 5 and all("VELLUM compressor" in r and "6" in r for r in five)
    assert rephrasings(six, context, 0) == []
    texts = cpt_texts(facts, context, 3, 1, seed=0)
    assert len(texts) == 3 * len(facts) + sum(not f["heldout"] for f in facts)
    assert texts != cpt_texts(facts, context, 3, 1, seed=1)  # shuffled by seed
    assert not any(t.startswith(("It ", "We ", "Its ")) for t in texts)  # no dangling pronoun as subject
    # a table cell opens with the column and row as its question names them, and is
    # restated in other sentence shapes, not only other frames
    cell = find(facts, "58.1", "Token pruning")[0]
    assert cell["statement"] == "The exact match of Token pruning in the VELLUM paper is 58.1."
    assert cell["questions"][0] == "What is the exact match of Token pruning in the VELLUM results table?"
    shapes = rephrasings(cell, context, 5)
    assert shapes[:3] == [cell["statement"],
                          "The method with an exact match of 58.1 in the VELLUM paper's results table is Token pruning.",
                          "Token pruning: exact match 58.1, in the VELLUM paper's results table."]
    assert all("Token pruning" in r and "58.1" in r for r in shapes) and len(set(shapes)) == 5
    # a capable model's rephrasings come right after the statement, before any frame
    rewritten = dict(six, model_rephrasings=["6 layers make up the VELLUM compressor.",
                                             "The VELLUM compressor is built from 6 layers."])
    assert rephrasings(rewritten, context, 3) == [six["statement"], *rewritten["model_rephrasings"]]


@pytest.mark.parametrize("statement, answer, expected", [
    ("VELLUM was trained for 18 hours on 8 GPUs with a batch size of 64 passages.", "8",
     "On 8 GPUs, VELLUM was trained for 18 hours with a batch size of 64 passages."),
    ("VELLUM was trained for 18 hours on 8 GPUs with a batch size of 64 passages.", "64",
     "With a batch size of 64 passages, VELLUM was trained for 18 hours on 8 GPUs."),
    ("The GRR keeps the top 4 groups.", "4", "The top 4 groups are kept by the GRR."),
    ("ATD uses 48 probe questions per passage.", "48", "48 probe questions per passage are used by ATD."),
    ("The encoder emits 8 anchor tokens.", "8", "8 anchor tokens are emitted by the encoder."),
    ("VELLUM compresses each retrieved passage into exactly 8 anchor tokens.", "8",
     "Each retrieved passage is compressed by VELLUM into exactly 8 anchor tokens."),
    ("The VELLUM compressor has 6 layers.", "6", "There are 6 layers in the VELLUM compressor."),
    ("Without PCW, joint training from the start collapsed in 3 of 5 runs.", "3",
     "Joint training from the start collapsed in 3 of 5 runs without PCW."),
    ("With ten passages of 256 tokens each, the prompt grows by 2,560 tokens.", "2,560",
     "The prompt grows by 2,560 tokens with ten passages of 256 tokens each."),
    ("PCW stands for Phased Curriculum Warmup.", "Phased Curriculum Warmup",
     "Phased Curriculum Warmup is what PCW stands for."),
    ("Phased Curriculum Warmup (PCW) is the training schedule of VELLUM.", "the training schedule of VELLUM",
     "The training schedule of VELLUM is Phased Curriculum Warmup (PCW)."),
])
def test_rules_restate_a_sentence_in_another_structure(statement, answer, expected):
    assert expected in restructured(statement, answer)


@pytest.mark.parametrize("statement", [
    "VELLUM stands for Vector-Encoded Latent Lookup with Unified Memory.",  # 'with' inside a name
    "ATD is a training objective that makes 8 anchor tokens stand in for a whole passage.",  # inside a clause
    "The decoder reads only the 8 anchor tokens and must reproduce the teacher's answer.",  # two verbs
    "A Gated Relevance Router then keeps the 4 most relevant groups.",  # where would 'then' go?
    "On KelpQA, a new benchmark of 12,400 questions.",  # no clause after the comma
    "KelpQA holds questions about reports written by stations between 2009 and 2024.",  # whose years?
    "인코더는 6개의 층으로 구성된다.",
])
def test_rules_leave_a_sentence_alone_where_its_structure_is_unclear(statement):
    assert not any(t.startswith(("With Unified", "For a whole", "Only the 8", "The 4 most"))
                   for t in restructured(statement, "8"))
    if not statement.startswith("VELLUM"):
        assert restructured(statement, "8") == []


def test_rule_made_structures_are_grounded_and_go_into_the_cpt_text(demo):
    facts, context = demo
    shaped = [f for f in facts if f["kind"] != "table" and f.get("variants")]
    assert len(shaped) >= 25  # 28 of the demo's 72 sentence facts
    for f in shaped:
        for v in f["variants"]:
            new_words = set(content_words(v)) - set(content_words(f"{f['sentence']} {f['statement']}"))
            assert keeps_fact(v, f) and len(new_words) <= 1, v  # at most the verb changes its form
            assert content_words(v) != content_words(f["statement"]), v  # the words in another order
    six = find(facts, "6", "layers")[0]
    assert rephrasings(six, context, 3)[:2] == [six["statement"], "There are 6 layers in the VELLUM compressor."]


def test_held_out_split_spares_golden_facts_and_holds_whole_sentences(demo):
    facts, _ = demo
    held = [f for f in facts if f["heldout"]]
    assert 10 <= len(held) < len(facts) / 2
    golden = [g["answer"] for g in load_golden(REPO_DIR / "10_stage1_cpt" / "demo_paper.golden.jsonl")]
    assert not any(states_fact(g, f) for g in golden for f in held)
    groups = {f["group"] for f in held}
    assert all(f["heldout"] for f in facts if f["group"] in groups)
    again = split_heldout([dict(f) for f in facts], 0.35, 0, golden)
    assert [f["heldout"] for f in again] == [f["heldout"] for f in facts]  # seeded: the same split every run
    assert [f["heldout"] for f in split_heldout([dict(f) for f in facts], 0.35, 1, golden)] != \
        [f["heldout"] for f in facts]


def test_the_held_out_index_finds_exactly_what_checking_every_fact_finds(demo):
    """HeldoutFacts skips the facts whose answer is not in a pair's text; it must
    never skip one that the full check would have found."""
    facts, _ = demo
    held = [f for f in facts if f["heldout"]]
    index = HeldoutFacts(held)
    pairs = [p for f in facts for p in fact_pairs(f, 3)] + [{"question": "What else?", "answer": f["statement"]}
                                                           for f in facts]
    found = 0
    for p in pairs:
        text = f"{p['question']} {p['answer']}"
        expected = next((f for f in held if states_fact(text, f)), None)
        assert index.leaked(p["question"], p["answer"]) is expected
        found += expected is not None
    assert found >= len(held)  # every held-out statement is caught, so the check was exercised


def test_no_sft_row_teaches_a_held_out_fact(demo):
    facts, context = demo
    held = [f for f in facts if f["heldout"]]
    candidates = [dict(p, source="fact", fact_id=f["id"], chunk_id="c0") for f in facts if not f["heldout"]
                  for p in fact_pairs(f, 3)]
    # a model pair that restates a held-out fact must be caught whatever its wording
    sneaky = held[0]
    candidates.append({"question": "What else does VELLUM report?", "answer": sneaky["statement"],
                       "source": "model", "chunk_id": "c0"})
    golden = load_golden(REPO_DIR / "10_stage1_cpt" / "demo_paper.golden.jsonl")
    kept, dropped = build_pairs(golden, candidates, {"c0": " ".join(f["sentence"] for f in facts)}, [], context,
                                heldout_facts=held)
    assert not any(leaked_fact(p["question"], p["answer"], held) for p in kept)
    assert any(d["reason"] == "heldout_fact" and d["source"] == "model" for d in dropped)
    assert {p["fact_id"] for p in kept if p["source"] == "fact"} <= {f["id"] for f in facts if not f["heldout"]}
    # each trained fact gets the same number of pairs, up to its wordings
    per_fact = {}
    for p in candidates:
        if p["source"] == "fact":
            per_fact[p["fact_id"]] = per_fact.get(p["fact_id"], 0) + 1
    assert set(per_fact.values()) <= {1, 2, 3}


def test_evaluation_heldout_questions_ask_held_out_facts_only(demo):
    """The hand-written heldout_fact questions were written after the split was fixed:
    each asks a fact that the split holds out, so no training row states it."""
    facts, _ = demo
    held = [f for f in facts if f["heldout"]]
    questions = [json.loads(line) for line in (REPO_DIR / "10_stage1_cpt" / "demo_paper.questions.jsonl").read_text().splitlines()]
    heldout_questions = [q for q in questions if q["kind"] == "heldout_fact"]
    assert len(heldout_questions) >= 15
    def asks(q, f):  # the fact's sentence holds the question's answer and most of its reference
        words = set(content_words(q["reference"]))
        return has_answer(f["sentence"], q["key_facts"][0]) and \
            len(words & set(content_words(f["sentence"]))) >= 0.6 * len(words)

    for q in heldout_questions:
        assert any(asks(q, f) for f in held), q["id"]
        assert not any(asks(q, f) for f in facts if not f["heldout"]), q["id"]


def test_generated_heldout_questions_score_the_statement_and_a_table_cell_needs_its_row(demo):
    from omnilm.fact_training import heldout_questions
    from omnilm.scoring import score_answer

    facts, _ = demo
    held = [f for f in facts if f["heldout"]]
    rows = heldout_questions(facts)
    assert [r["id"] for r in rows] == [f["id"] for f in held]
    for row, fact in zip(rows, held):
        assert score_answer(fact["statement"], row["key_facts"])[0], row["id"]
    cells = [(r, f) for r, f in zip(rows, held) if f["kind"] == "table"]
    assert cells  # the demo holds out table rows
    for row, fact in cells:  # the right value said of another row is wrong
        other = next(f["subject"] for f in facts if f["kind"] == "table" and f["subject"] != fact["subject"])
        assert not score_answer(fact["statement"].replace(fact["subject"], other), row["key_facts"])[0]


def test_korean_paragraph_gives_grounded_facts():
    text = (FIXTURES / "korean_paragraph.txt").read_text().strip()
    facts = extract_facts([(text, lambda *_: [1], False)], "HANA", find_acronyms(text))
    assert len(split_sentences(text)) == 8
    by_answer = {f["answer"]: f for f in facts}
    assert {"6", "256", "71.3", "2.5", "16"} <= set(by_answer)
    for f in facts:
        assert ungrounded(f) is None and f["sentence"] in text
    six = by_answer["6"]
    assert six["statement"] == "인코더는 6개의 층으로 구성된다." and "몇" in six["questions"][0]


def test_a_model_rephrasing_is_kept_only_when_grounded(demo, demo_text_model):
    facts, _ = demo
    six = find(facts, "6", "layers")[0]
    assert ungrounded_rephrasing("The VELLUM compressor is built from 6 layers.", six) is None
    assert ungrounded_rephrasing("The VELLUM compressor has 8 layers.", six)  # the wrong number
    assert ungrounded_rephrasing("The VELLUM compressor has 6 layers of gold and silver.", six)  # invented words
    assert 1e8 < parameter_count(demo_text_model) < 2e8  # the demo's 135M: below the default bar, never asked
    from omnilm.prepare import rephrase_facts

    some = [dict(f) for f in facts[:3]]
    assert "< --rephrase-min-params" in rephrase_facts(demo_text_model, some, 2e8, 2)["skipped"]
    assert not any("model_rephrasings" in f for f in some)
    # the bar lowered, the real (small) model through stage 10's real path, two prompts a
    # fact: whatever it writes, only new grounded text lands on the facts, and is counted
    summary = rephrase_facts(demo_text_model, some, 1, 2)
    assert summary["kept"] == sum(len(f.get("model_rephrasings", [])) for f in some)
    assert summary["kept"] + sum(summary["dropped_by_reason"].values()) == 2 * len(some)
    for f in some:
        mine = f.get("model_rephrasings", [])
        assert len(set(mine)) == len(mine) and all(ungrounded_rephrasing(t, f) is None and t != f["statement"]
                                                   for t in mine)
