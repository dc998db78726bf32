"""The automatic verdict of stage 30 on crafted answers."""
import pytest

from omnilm.scoring import normalize, score_answer

SCP = [["Salient Compressor Pretraining"]]


@pytest.mark.parametrize("answer,expected", [
    ("SCP stands for Salient Compressor Pretraining.", True),
    ("salient-compressor pretraining (SCP)", True),
    ("It is SALIENT COMPRESSOR PRETRAINING!", True),
    ("SCP stands for Secure Copy Protocol.", False),                 # the common wrong expansion
    ("SCP stands for Salient Compression Pretraining.", False),       # close but wrong
    ("SCP is not Salient Compressor Pretraining.", False),           # negated
    ("It is no Salient Compressor Pretraining at all", False),
    ("", False),
])
def test_acronym_expansion(answer, expected):
    assert score_answer(answer, SCP)[0] is expected


def test_variants_and_numbers():
    facts = [["16x", "16 times", "sixteen times"], ["12000", "twelve thousand"]]
    assert score_answer("It compresses 16 times, trained on 12,000 papers.", facts)[0]
    assert score_answer("Sixteen times smaller; twelve thousand documents", facts)[0]
    ok, found, missing = score_answer("It compresses 16x.", facts)
    assert not ok and found == ["16x"] and missing == ["12000"]
    assert not score_answer("It compresses 160x on 12000 papers", facts)[0]  # whole words only


def test_percent_and_decimals_normalize():
    assert normalize("Accuracy rose to 38.5%.") == "accuracy rose to 38.5 percent"
    assert score_answer("about 38.5 %", [["38.5 percent", "38.5%"]])[0]
    assert not score_answer("about 38 percent", [["38.5 percent"]])[0]


def test_negation_only_right_before_the_fact():
    facts = [["Paris"]]
    assert score_answer("Not Lyon: the capital is Paris.", facts)[0]
    assert not score_answer("The capital is not Paris.", facts)[0]


def test_a_negation_does_not_reach_into_the_next_clause():
    runs = [["3 of 5"]]
    # the SFT model's real answer to a held-out question, once scored wrong: "Without" is PCW's
    assert score_answer("Without PCW, in 3 of 5 runs, joint training collapsed.", runs)[0]
    assert score_answer("No, it collapsed in 3 of 5 runs.", runs)[0]
    assert not score_answer("Without PCW it did not collapse in 3 of 5 runs.", runs)[0]
    assert not score_answer("It was never 3 of 5; it was 2.", runs)[0]
    # numbers keep their decimal points and thousands separators inside one clause
    assert not score_answer("It is not 12,000 papers.", [["12000"]])[0]
    assert not score_answer("It is not 38.5 percent.", [["38.5 percent"]])[0]


def test_no_key_facts_is_never_correct():
    assert score_answer("anything", [])[0] is False


def test_every_reference_answer_passes_its_own_key_facts():
    """The shipped questions are consistent: a reference answer is a correct answer."""
    from pathlib import Path

    from omnilm.evaluation import load_questions

    folder = Path(__file__).resolve().parents[1] / "10_stage1_cpt"
    for q in load_questions(folder / "demo_paper.questions.jsonl") + load_questions(folder / "control_questions.jsonl"):
        assert score_answer(q["reference"], q["key_facts"])[0], q["id"]


@pytest.mark.parametrize("answer,facts", [
    # wrong answers the demo models really gave: a made-up expansion, digits inside other numbers
    ("A PCW (Politically-Justified Economic Warfare) is a term used...", [["Phased Curriculum Warmup"]]),
    ("VELLUM compresses each retrieved passage into exactly 83 percent.", [["8", "eight"]]),
    ("VELLUM reaches a compression ratio of 72x for passages of 256 tokens.", [["32x", "32 times"]]),
    ("VELLUM gets 71.35 exact match", [["71.3"]]),
])
def test_real_wrong_answers_are_wrong(answer, facts):
    assert not score_answer(answer, facts)[0]
