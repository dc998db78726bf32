"""Subject-relation-object facts (stage 10's --relations, off by default): found in
planted sentences both ways, every answer a span of its sentence, none where a
sentence states no relation, no second fact for an answer another rule has, the
inventory untouched with the option off, and the flag reaching facts.jsonl."""
import json
import subprocess
import sys

import pytest
from conftest import place_model

import omnilm.facts
from omnilm.facts import extract_facts, has_answer, ungrounded
from omnilm.paths import REPO_DIR
from omnilm.pdf_text import clean_pages
from omnilm.pdf_writer import render_paper
from omnilm.qa_mining import find_acronyms
from omnilm.relation_facts import relation_facts
from omnilm.scoring import normalize

# sentence, what the object answer is, what the subject answer is (None: not asked)
PLANTED = [
    ("The Corran Mill is owned by the Hesk Family Trust.", "Hesk Family Trust", "Corran Mill"),
    ("Brora Harbour is located in the north of Skerra.", "north of Skerra", "Brora Harbour"),
    ("The Orla Guild was founded by Ann Pell in 1881.", "Ann Pell", "Orla Guild"),
    ("Kell Works succeeded Brora Mill as the main employer.", "Brora Mill as the main employer", "Kell Works"),
    ("The Vesk Observatory is part of the University of Tarn.", "University of Tarn", "Vesk Observatory"),
    ("The Great Thaw led to the closure of the Marn pass.", "closure of the Marn pass", "Great Thaw"),
    ("Ida Brandt was the first to cross the Vell glacier on foot.", "cross the Vell glacier on foot", "Ida Brandt"),
    ("Tomas Reed married Elin Voss in the spring.", "Elin Voss in the spring", "Tomas Reed"),
    ("The Salt Ledger was written by Mara Quell.", "Mara Quell", "Salt Ledger"),
    ("Odo Varn, the current mayor of Fennick, opened the new bridge.", "current mayor of Fennick", "Odo Varn"),
    ("On the west bank, Halvard Energy built a tidal plant.", "tidal plant", "Halvard Energy"),
    ("Sela Marr was born in Orrin.", "Orrin", "Sela Marr"),
]
NO_RELATION = ["The sky over the harbour is often grey.", "It rains a lot in the spring.",
               "We measured 12 samples at noon.", "Results are shown in Table 2.", "Such a result is rare."]


def answers(facts):
    return {f["answer"] for f in facts}


@pytest.mark.parametrize("sentence, obj, subject", PLANTED)
def test_a_planted_relation_is_found_both_ways_and_grounded(sentence, obj, subject):
    facts = relation_facts(sentence)
    assert {obj, subject} <= answers(facts), facts
    for f in facts:
        assert f["kind"] == "relation" and f["questions"] and f["questions"][0].endswith("?")
        assert set(f) == {"kind", "answer", "accept", "subject", "unit", "statement", "questions"}
        assert f["answer"] in sentence and has_answer(sentence, [f["answer"]])  # a span of its sentence
        assert ungrounded(dict(f, sentence=sentence)) is None
        assert not has_answer(f["questions"][0], [f["answer"]])  # the question does not give it away


def test_the_questions_ask_each_way():
    facts = {f["answer"]: f for f in relation_facts("The Orla Guild was founded by Ann Pell.")}
    assert facts["Ann Pell"]["questions"] == ["Who was the Orla Guild founded by?"]
    assert facts["Orla Guild"]["questions"] == ["What was founded by Ann Pell?"]
    facts = {f["answer"]: f for f in relation_facts("Brora Harbour is located in the north of Skerra.")}
    assert facts["north of Skerra"]["questions"] == ["Where is Brora Harbour located?"]
    facts = {f["answer"]: f for f in relation_facts("Kell Works succeeded Brora Mill.")}
    assert facts["Brora Mill"]["questions"] == ["Who did Kell Works succeed?"]
    assert facts["Kell Works"]["questions"] == ["Who succeeded Brora Mill?"]


@pytest.mark.parametrize("sentence", NO_RELATION)
def test_nothing_is_found_where_no_relation_is_stated(sentence):
    assert relation_facts(sentence) == []


def test_an_answer_another_rule_has_is_not_found_again():
    sentence = "The Orla Guild was founded by Ann Pell."
    assert "Ann Pell" not in answers(relation_facts(sentence, known=[{"answer": "Ann Pell"}]))
    # in the inventory: no two facts of one sentence share an answer
    text = ("Ocean Glass is a Canadian drama series, created by Ann Pell. The Orla Guild has 40 members. "
            "The Orla Guild was founded by Ann Pell in 1881, and its hall is located in Brora.")
    facts = extract_facts([(text, lambda *_: [1], False)], None, find_acronyms(text), relations=True)
    keys = [(f["group"], normalize(f["answer"])) for f in facts]
    assert len(keys) == len(set(keys)) and any(f["kind"] == "relation" for f in facts)
    assert any(f["kind"] == "quantity" for f in facts)


@pytest.fixture(scope="module")
def demo_paragraphs():
    """The demo paper as stage 10 reads it (from its PDF), in extract_facts' shape."""
    from omnilm.pdf_text import extract_pages

    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory() as tmp:
        pdf = Path(tmp) / "demo_paper.pdf"
        pdf.write_bytes(render_paper((REPO_DIR / "10_stage1_cpt" / "demo_paper.md").read_text())[0])
        doc = clean_pages(extract_pages(pdf)[0])
    return [(p.text, p.pages, p.is_heading) for p in doc.paragraphs], find_acronyms(doc.text)


def test_the_option_off_leaves_the_inventory_as_before(demo_paragraphs, monkeypatch):
    paragraphs, acronyms = demo_paragraphs
    on = extract_facts(paragraphs, "VELLUM", acronyms, relations=True)

    def never(*_):
        raise AssertionError("the relation rules ran with the option off")

    monkeypatch.setattr(omnilm.facts, "relation_facts", never)  # off: the code path is not touched
    off = extract_facts(paragraphs, "VELLUM", acronyms)
    assert off == extract_facts(paragraphs, "VELLUM", acronyms, relations=False)
    assert len(on) >= len(off) >= 40  # the demo's count does not drop with the option on
    strip = [{k: v for k, v in f.items() if k not in ("id", "group")} for f in on if f["kind"] != "relation"]
    assert strip == [{k: v for k, v in f.items() if k not in ("id", "group")} for f in off]


ARTICLE = """# Corran Valley: a short history

## 1 The valley

The Corran Mill is owned by the Hesk Family Trust. Brora Harbour is located in the north of Skerra.
The Orla Guild was founded by Ann Pell. Ida Brandt was the first to cross the Vell glacier on foot.
Kell Works succeeded Brora Mill as the main employer of the valley, and its workers came from Skerra.

## 2 The people

Odo Varn, the current mayor of Fennick, opened the new bridge. Tomas Reed married Elin Voss.
The Salt Ledger was written by Mara Quell. The Great Thaw led to the closure of the Marn pass.
Sela Marr was born in Orrin. The Vesk Observatory is part of the University of Tarn.
"""


def test_the_flag_reaches_the_inventory(project_root, demo_text_model):
    pdf = project_root / "data" / "corran.pdf"
    pdf.write_bytes(render_paper(ARTICLE)[0])
    place_model(demo_text_model, project_root / "models", "demo-omni-Text")
    script = REPO_DIR / "10_stage1_cpt" / "prepare_data.py"
    kinds = {}
    for flags in ([], ["--relations"]):
        out = project_root / "data" / "cpt" / f"corran{len(flags)}"
        run = subprocess.run([sys.executable, str(script), "--pdf", pdf, "--output", out, "--replay", "0",
                              "--golden", "none", "--min-chunks", "2", *flags],
                             capture_output=True, text=True, cwd="/")
        assert run.returncode == 0, run.stderr
        facts = [json.loads(line) for line in (out / "facts.jsonl").read_text().splitlines()]
        manifest = json.loads((out / "manifest.json").read_text())
        assert manifest["args"]["relations"] is bool(flags)
        kinds[bool(flags)] = [f["kind"] for f in facts]
        assert all(ungrounded(f) is None for f in facts)
    assert "relation" not in kinds[False] and kinds[True].count("relation") >= 12
