"""The evaluation's verdict: intervals, bleed, the pick, and questions the training never shaped."""
import math

import pytest

from omnilm.probes import (check_independent, cloze_probes, independent_questions, question_form,
                           shares_trained_form, trained_forms, trained_questions)
from omnilm.verdict import bleed_terms, figure, paper_terms, recommend, wilson

FACTS = [
    {"id": "p-f0", "kind": "quantity", "answer": "8", "accept": ["8", "eight"], "subject": "VELLUM",
     "unit": "anchor tokens", "statement": "VELLUM compresses each passage into exactly 8 anchor tokens.",
     "sentence": "VELLUM compresses each retrieved passage into exactly 8 anchor tokens.", "heldout": False,
     "questions": ["How many anchor tokens does VELLUM compress each passage into?"]},
    {"id": "p-f1", "kind": "quantity", "answer": "19.06", "accept": ["19.06"], "subject": "The KelpQA field logger",
     "unit": "kilobytes", "statement": "The KelpQA field logger stores 19.06 kilobytes a day.",
     "sentence": "Each day the KelpQA field logger stores 19.06 kilobytes.", "heldout": True,
     "questions": ["How many kilobytes does the KelpQA field logger store a day?"]},
    {"id": "p-f2", "kind": "quantity", "answer": "48", "accept": ["48"], "subject": "ATD",
     "unit": "probe questions", "statement": "ATD uses 48 probe questions per passage.",
     "sentence": "ATD uses 48 probe questions per passage.", "heldout": False,
     "questions": ["How many probe questions does ATD use per passage?"]},
]


def test_wilson_interval_of_3_in_16():
    # 90%: z = 1.6449; p = 0.1875; centre (p + z^2/32) / (1 + z^2/16), half-width as in Wilson (1927)
    lo, hi = wilson(3, 16)
    z = 1.6448536269514722
    centre = (3 / 16 + z * z / 32) / (1 + z * z / 16)
    half = z * math.sqrt(3 / 16 * 13 / 16 / 16 + z * z / (4 * 256)) / (1 + z * z / 16)
    assert (lo, hi) == pytest.approx((centre - half, centre + half))
    assert (round(lo, 3), round(hi, 3)) == (0.078, 0.388)
    assert figure(3, 16) == "0.19 (3/16, 0.08-0.39)"
    assert wilson(0, 10)[0] == 0.0 and wilson(10, 10)[1] == 1.0 and wilson(0, 0) == (0.0, 1.0)


def test_bleed_flags_a_planted_paper_term():
    terms = paper_terms(FACTS + [dict(FACTS[0], subject=None, accept=["Orrin"])])  # a fact with no subject
    assert {"19.06", "vellum", "kelpqa", "orrin"} <= terms
    assert "8" not in terms and "eight" not in terms  # too common in general answers to tell anything
    planted = bleed_terms("A typical day in the field is 19.06 kilobytes.", "A day has 24 hours.",
                          "How many hours are in a day?", terms)
    assert planted == {"19.06"}
    assert bleed_terms("A day has 24 hours.", "A day has 24 hours.", "How many hours are in a day?", terms) == set()
    # a term the first stage used too, or the question names, is not bleed
    assert bleed_terms("VELLUM is a word.", "VELLUM is a word.", "What is VELLUM?", terms) == set()


def _stage(**figures):
    s = {}
    for kind, (k, n) in figures.items():
        s[kind], s[f"{kind}_k"], s[f"{kind}_n"] = k / n, k, n
    if "bleed" in figures:
        s["bleed"] = figures["bleed"][0] / figures["bleed"][1]
    return s


def test_recommendation_follows_the_independent_figures_not_the_trained():
    summary = {
        "base": _stage(trained=(0, 16), independent=(0, 40), cloze=(2, 48), control=(150, 150), bleed=(0, 150)),
        "cpt": _stage(trained=(9, 16), independent=(16, 40), cloze=(30, 48), control=(148, 150), bleed=(1, 150)),
        "sft": _stage(trained=(16, 16), independent=(9, 40), cloze=(24, 48), control=(147, 150), bleed=(2, 150)),
    }
    pick, notes = recommend(summary)
    assert pick == "cpt"
    assert any("SFT answers fewer of the paper's facts than CPT" in n and "use the cpt stage" in n for n in notes)
    # the same figures with SFT ahead on the independent evidence: SFT
    summary["sft"] = _stage(trained=(16, 16), independent=(30, 40), cloze=(40, 48), control=(148, 150),
                            bleed=(1, 150))
    assert recommend(summary)[0] == "sft"


def test_recommendation_weighs_forgetting_and_bleed():
    summary = {
        "base": _stage(independent=(0, 40), control=(150, 150), bleed=(0, 150)),
        "cpt": _stage(independent=(10, 40), control=(149, 150), bleed=(0, 150)),
        "sft": _stage(independent=(14, 40), control=(100, 150), bleed=(30, 150)),  # knows more, forgets much
    }
    pick, notes = recommend(summary)
    assert pick == "cpt"
    assert any("SFT answers fewer general questions than base" in n for n in notes)
    assert any("SFT puts the paper's terms into 20%" in n for n in notes)


def test_question_forms():
    assert question_form("How many anchor tokens does VELLUM use?") == "wh:how many"
    assert question_form("VELLUM compresses each passage into exactly how many anchor tokens?") == "wh:how many"
    assert question_form("In which year did the survey start?") == "wh:which"
    assert question_form("Is VELLUM faster than RAG?") == "yes-no"
    assert question_form('Fill in the blank: "ATD uses ____ probe questions."') == "blank"
    assert question_form('True or false, according to the paper: "ATD uses 12 probes."') == "true-false"


def test_an_independent_question_with_a_trained_form_fails_the_check():
    trained_rows = [{"messages": [{"role": "user", "content": "How many probe questions does ATD use?"},
                                  {"role": "assistant", "content": "48."}]},
                    {"text": "Is ATD trained first?\nYes, it is."}]
    asked = trained_questions(trained_rows)
    assert asked == ["How many probe questions does ATD use?", "Is ATD trained first?"]
    forms = trained_forms(asked)
    assert shares_trained_form("How many anchor tokens does VELLUM use?", forms)
    assert shares_trained_form("Does VELLUM use anchors?", forms)  # yes-no is trained here
    assert not shares_trained_form('Fill in the blank: "ATD uses ____ probe questions."', forms)
    rows = [{"kind": "independent", "question": "How many anchor tokens does VELLUM use?"},
            {"kind": "independent", "question": 'Fill in the blank: "ATD uses ____ probe questions."'},
            {"kind": "heldout_fact", "question": "How many runs collapsed?"}]  # hand-written: asked as it is
    kept, dropped = check_independent(rows, forms)
    assert [r["question"] for r in dropped] == ["How many anchor tokens does VELLUM use?"]
    assert dropped[0]["form"] == "wh:how many" and len(kept) == 2


def test_independent_questions_use_no_trained_form_and_keep_the_answer_out():
    rows = independent_questions(FACTS, "VELLUM", seed=0)
    assert rows[0]["fact_split"] == "heldout"  # held-out facts come first
    template_forms = trained_forms(q for f in FACTS for q in f["questions"])
    for r in rows:
        assert not shares_trained_form(r["question"], template_forms)
        assert r["kind"] == "independent" and r["key_facts"]
    blanks = [r for r in rows if question_form(r["question"]) == "blank"]
    assert blanks and all(not any(a in r["question"] for a in r["key_facts"][0]) for r in blanks)
    flipped = [r for r in rows if question_form(r["question"]) == "true-false"]
    assert flipped and all(r["key_facts"][0][0] not in r["question"].split('"')[1] for r in flipped)


def test_cloze_probes_stop_before_the_answer_and_prefer_an_untrained_wording():
    facts = [dict(FACTS[0], variants=["Each passage is compressed by VELLUM into exactly 8 anchor tokens."])]
    [probe] = cloze_probes(facts, trained_texts=[])
    assert probe["probe"] == "restated" and probe["question"] == "Each passage is compressed by VELLUM into exactly"
    [probe] = cloze_probes(facts, trained_texts=facts[0]["variants"])  # that wording was trained: the sentence
    assert probe["probe"] == "verbatim"
    assert probe["question"] == "VELLUM compresses each retrieved passage into exactly" and probe["reference"] == "8"


def test_the_broad_control_shares_no_question_and_no_topic_with_replay():
    from omnilm.evaluation import load_questions
    from omnilm.paths import CONTROL_QUESTIONS, REPLAY_QUESTIONS
    from omnilm.replay import shared_topics

    replay = [q for q in REPLAY_QUESTIONS.read_text().splitlines() if q.strip() and not q.startswith("#")]
    control = load_questions(CONTROL_QUESTIONS)
    assert len(control) >= 150 and {q["kind"] for q in control} == {"control"}
    assert not {q["question"].lower() for q in control} & {q.lower() for q in replay}
    clashes = {q["question"]: shared_topics(q["question"], replay) for q in control}
    assert not {q: words for q, words in clashes.items() if words}
    # the rule bites: a capital beside replay's capitals, a planet beside its planets
    assert shared_topics("What is the capital of Peru?", replay) == ["capital"]
    assert "planet" in shared_topics("Which planet is closest to the Sun?", replay)
    forms = {q["question"].split()[0].lower() for q in control}
    assert {"who", "what", "when", "how"} <= forms and len(forms) >= 6  # varied forms, not one template


def test_the_second_paper_and_its_reader_questions_written_before_any_run():
    """A paper not about the demo's method, run with no golden pairs as a user's would be;
    its questions were written in a reader's words before the pipeline ever saw it."""
    from pathlib import Path

    from omnilm.evaluation import load_questions
    from omnilm.scoring import score_answer

    folder = Path(__file__).parent / "fixtures" / "second_paper"
    paper = (folder / "tidewell.md").read_text()
    text = " ".join(" ".join(line.strip() for line in block.splitlines()) for block in paper.split("\n\n"))
    assert len(paper.split()) >= 800 and "VELLUM" not in paper
    questions = load_questions(folder / "tidewell.questions.jsonl")
    assert len(questions) >= 15 and {q["kind"] for q in questions} == {"reader"}
    for q in questions:
        assert q["passage"] in text, q["id"]
        assert score_answer(q["reference"], q["key_facts"])[0], q["id"]
        assert q["question"] not in text  # asked in other words than the paper's


def test_a_fact_whose_answer_is_the_rest_of_a_sentence_makes_no_question_or_probe():
    long = dict(FACTS[0], id="p-f9", kind="name", answer="kilometres in the Orrin Estuary, on the northern shore",
                accept=["kilometres in the Orrin Estuary, on the northern shore"],
                statement="The marsh covers 14.2 square kilometres in the Orrin Estuary, on the northern shore.",
                sentence="The marsh covers 14.2 square kilometres in the Orrin Estuary, on the northern shore.")
    assert not [r for r in independent_questions([long, *FACTS], "X") if r["id"].startswith("p-f9")]
    assert not [r for r in cloze_probes([long, *FACTS], []) if r["id"].startswith("p-f9")]


def test_evaluation_refuses_a_batch_of_no_rows(tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    script = Path(__file__).resolve().parents[1] / "30_evaluation" / "compare_stages.py"
    r = subprocess.run([sys.executable, str(script), "--batch-size", "0"], capture_output=True, text=True)
    assert r.returncode == 2 and "--batch-size: must be at least 1, not 0" in r.stderr and "Traceback" not in r.stderr
