"""Replay data: which answers are kept, the question list, CPT rows, SFT share, generation."""
import pytest

from omnilm.errors import UserError
from omnilm.paths import REPLAY_QUESTIONS, REPO_DIR
from omnilm.replay import (MAX_PASSES, MAX_WORDS, generate_replay, load_replay_questions, past_max_words,
                           replay_count, replay_texts, select_answers, split_replay)
from omnilm.sft_data import load_eval_questions

CONTROL = ["What is the capital of France?", "How many days are there in a week?"]


def test_only_finished_clean_answers_are_kept():
    questions = ["What is the capital of Italy?", "Why is the sky blue?", "What do bees make?",
                 "What is two plus two?", "What is ice made of?", "Who painted the Mona Lisa?"]
    texts = ["The capital of Italy is Rome.",
             "The sky is blue because air scatters",  # cut by the token limit inside its first sentence
             "Question: what do bees make? Answer: honey.",  # format debris
             "Four.",  # too short to teach an answer
             "Ice is ice is ice is ice.",  # degenerate repetition
             "<think>a painter</think>Leonardo da Vinci painted the Mona Lisa."]
    truncated = [False, True, False, False, False, False]
    kept, dropped = select_answers(questions, texts, truncated)
    assert kept == [{"question": "What is the capital of Italy?", "answer": "The capital of Italy is Rome."},
                    {"question": "Who painted the Mona Lisa?",
                     "answer": "Leonardo da Vinci painted the Mona Lisa."}]  # the reasoning block is not kept
    assert [d["reason"] for d in dropped] == ["truncated", "leakage", "length", "leakage"]


def test_long_or_cut_answers_keep_their_first_whole_sentences():
    rambling = " ".join(["It also has many other uses in daily life."] * 3)
    questions = ["Why is the sky blue?", "What is water?", "What is salt?", "What is a river?", "What is rain?"]
    texts = ["Air scatters blue light the most. So the sky looks",  # cut inside its second sentence
             f"Water is a clear liquid. {rambling}",  # longer than MAX_WORDS: the first sentences stay
             "Salt is " + "a very common and useful and cheap " * 4 + "mineral.",  # its first sentence alone is long
             "A river is a stream of water. It ends in the sea.",  # cut right after a whole sentence
             "Rain is water that falls from clouds. 비는 하늘에서 내린다. And"]
    kept, dropped = select_answers(questions, texts, [True, False, False, True, True])
    assert kept == [
        {"question": "Why is the sky blue?", "answer": "Air scatters blue light the most.", "shortened": True},
        {"question": "What is water?", "answer": "Water is a clear liquid. It also has many other uses in daily life.",
         "shortened": True},
        {"question": "What is a river?", "answer": "A river is a stream of water. It ends in the sea."},
        {"question": "What is rain?", "answer": "Rain is water that falls from clouds. 비는 하늘에서 내린다.",
         "shortened": True}]
    assert dropped == [{"question": "What is salt?", "answer": texts[2], "reason": "long"}]


def test_generation_may_stop_once_the_kept_sentences_are_settled():
    # the answer kept from the text up to where past_max_words first holds, treated as
    # cut, is the one kept from the whole text: whichever character a token ends on
    rambling = " ".join(["It also has many other uses in daily life."] * 3)
    cases = [(f"Water is a clear liquid. {rambling}", False),
             ("The speed is 3.5 km per hour, e.g. on a flat road. Dr. Smith walks at 4.2 km per hour. "
              "So he walks faster than most people do on roads.", False),
             ("Rain falls.\n\nIt comes from clouds that hold water. Clouds form when warm air rises and cools, "
              "and then", True),
             ("Salt is " + "a very common and useful and cheap " * 4 + "mineral.", False),
             ("A river is a stream of water. It ends in the sea.", True)]  # short: never stops early
    for text, cut in cases:
        question = ["What is it?"]
        stops = [n for n in range(1, len(text) + 1) if past_max_words(text[:n])]
        if len(text.split()) <= MAX_WORDS:
            assert not stops
            continue
        prefix = text[:stops[0]]
        assert len(prefix.split()) == MAX_WORDS + 1  # the first character of the word past the limit
        kept, dropped = select_answers(question, [text], [cut])
        kept_early, dropped_early = select_answers(question, [prefix], [True])
        assert kept_early == kept and [d["reason"] for d in dropped_early] == [d["reason"] for d in dropped]
    assert not past_max_words("<think>" + "word " * 40)  # reasoning is not the answer


def test_question_list_skips_control_questions_and_repeats(tmp_path):
    path = tmp_path / "q.txt"
    path.write_text("# everyday questions\nWhat is the capital of Italy?\n\nWhat is the capital city of France?\n"
                    "How many days are in a week?\nWhat is the capital of Italy?\nWho wrote Hamlet?\n")
    questions, skipped = load_replay_questions(path, CONTROL)
    assert questions == ["What is the capital of Italy?", "Who wrote Hamlet?"]
    assert skipped == {"near_control_question": 2, "repeated": 1}
    with pytest.raises(UserError, match="do not exist"):
        load_replay_questions(tmp_path / "missing.txt")


def test_committed_questions_stay_clear_of_the_control_questions():
    control = load_eval_questions(REPO_DIR / "10_stage1_cpt" / "control_questions.jsonl", "control")
    questions, skipped = load_replay_questions(REPLAY_QUESTIONS, control)
    assert len(control) >= 150 and skipped == {} and len(questions) >= 40


def test_replay_text_is_plain_and_packed_whole_in_order(demo_text_model):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(demo_text_model))
    pairs = [{"question": f"What is {n} plus {n}?", "answer": f"{n} plus {n} is {2 * n}."} for n in range(1, 20)]
    rows = replay_texts(tok, pairs, max_tokens=60)
    assert rows[0].startswith("What is 1 plus 1?\n1 plus 1 is 2.\n\nWhat is 2 plus 2?\n")
    # no chat template: CPT's unmasked loss would learn its boilerplate instead of the answers
    assert not any(marker in "".join(rows) for marker in ("<|im_start|>", "think>", "assistant"))
    assert len(rows) > 1 and all(len(tok.encode(r)) <= 60 for r in rows)
    assert "\n\n".join(rows) == "".join(f"{p['question']}\n{p['answer']}\n\n" for p in pairs).rstrip()


def test_share_of_each_split_disjoint_and_deterministic():
    assert replay_count(17, 53, 0.25) == 17 and replay_count(40, 60, 0.25) == 20
    assert replay_count(40, 60, 0) == 0 and replay_count(0, 60, 0.5) == 0
    pairs = [{"question": f"q{i}?", "answer": f"a{i}"} for i in range(40)]
    train, valid = split_replay(pairs, 30, 6, 0.25, seed=1)
    assert (len(train), len(valid)) == (10, 2) and (train, valid) == split_replay(pairs, 30, 6, 0.25, seed=1)
    assert not {p["question"] for p in train} & {p["question"] for p in valid}
    assert train == sorted(train, key=pairs.index)  # file order
    # too few pairs: both splits shrink in proportion, so validation keeps some
    train, valid = split_replay(pairs[:6], 30, 6, 0.5)
    assert (len(train), len(valid)) == (5, 1)
    assert split_replay(pairs, 30, 6, 0) == ([], [])


def test_cpt_rows_repeat_the_answers_in_new_orders_up_to_the_share(demo_text_model):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(demo_text_model))
    pairs = [{"question": f"What is {n} plus {n}?", "answer": f"{n} plus {n} is {2 * n}."} for n in range(1, 20)]
    one_pass = replay_texts(tok, pairs, max_tokens=60)
    rows = replay_texts(tok, pairs, max_tokens=60, rows=len(one_pass) + 2, seed=3)
    assert len(rows) == len(one_pass) + 2 and rows[:len(one_pass)] == one_pass  # the first pass in file order
    assert rows[len(one_pass):] != one_pass[:2]  # then a new order, so other neighbours in a row
    assert rows == replay_texts(tok, pairs, max_tokens=60, rows=len(one_pass) + 2, seed=3)
    # however large the share, each answer comes MAX_PASSES times, whole, never more
    every = "\n\n".join(replay_texts(tok, pairs, max_tokens=60, rows=10_000)).split("\n\n")
    assert sorted(every) == sorted([f"{p['question']}\n{p['answer']}" for p in pairs] * MAX_PASSES)
    assert replay_texts(tok, [], max_tokens=60, rows=5) == []


def test_generation_keeps_nothing_cut_by_the_limit_and_is_deterministic(tiny_model):
    from omnilm.chat import load_model

    model, tok = load_model(tiny_model)
    questions = ["What is the capital of Italy?", "Who wrote Hamlet?", "What do bees make?"]
    run = generate_replay(model, tok, questions, max_tokens=5, batch_size=2)
    again = generate_replay(model, tok, questions, max_tokens=5, batch_size=2)
    assert run.texts == again.texts and run.generated_tokens > 0
    kept, dropped = select_answers(questions, run.texts, run.truncated)
    assert len(kept) + len(dropped) == 3
    assert all(d["reason"] == "truncated" for d, cut in zip(dropped, run.truncated) if cut)
    assert not kept  # a random model never finishes a sentence in 5 tokens


def test_generation_keeps_the_real_model_answer(demo_text_model):
    from omnilm.chat import load_model

    model, tok = load_model(demo_text_model)
    questions = ["What is the capital of Italy?", "Why do we need water?"]
    run = generate_replay(model, tok, questions, max_tokens=24)
    kept, dropped = select_answers(questions, run.texts, run.truncated)
    assert run.truncated == [False, True] and "Rome" in kept[0]["answer"]
    # the cut answer survives only as whole sentences the model finished
    assert all(k["answer"].endswith(".") and k["answer"] in run.texts[1] for k in kept[1:])


def test_generation_stops_early_and_keeps_the_same_answers(demo_text_model):
    from omnilm.chat import load_model

    model, tok = load_model(demo_text_model)
    questions = ["Why do we need water?", "What is photosynthesis?", "How do airplanes fly?",
                 "What is the capital of Italy?"]
    run = generate_replay(model, tok, questions, max_tokens=64)
    whole = generate_replay(model, tok, questions, max_tokens=64, stop_when_settled=False)  # to the end or the limit
    assert select_answers(questions, run.texts, run.truncated)[0] == select_answers(questions, whole.texts,
                                                                                     whole.truncated)[0]
    assert [w.startswith(t) for w, t in zip(whole.texts, run.texts)] == [True] * 4  # prefixes of the same answers
    stopped = [t != w for t, w in zip(run.texts, whole.texts)]
    assert any(stopped) and run.generated_tokens < whole.generated_tokens
    assert all(len(t.split()) == MAX_WORDS + 1 for t, s in zip(run.texts, stopped) if s)
