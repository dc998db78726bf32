"""Compare mode's logic: adapters switched on one loaded base (same tokens and logits
as a fresh load), the stages offered, the evaluation verdicts, Stop and the log."""
import json
import shutil

import pytest

from conftest import make_lora_adapter
from omnilm import chatlog, compare
from omnilm.adapter_switch import AdapterSwitcher
from omnilm.chat import load_model, prompt_ids
from omnilm.chat_session import ModelHolder
from omnilm.errors import UserError
from omnilm.scoring import score_answer

QUESTION = "What does VELLUM stand for?"


def greedy(model, tokenizer, n=6, question=QUESTION):
    """(the first n greedy tokens, the prompt's last logits) of one question."""
    import mlx.core as mx
    from mlx_lm.generate import generate_step

    ids = prompt_ids(tokenizer, [{"role": "user", "content": question}])
    logits = model(mx.array([ids]))[0, -1]
    mx.eval(logits)
    tokens = [int(t) for t, _ in zip((t for t, _ in generate_step(mx.array(ids), model)), range(n))]
    return tokens, logits


def same(a, b):
    import mlx.core as mx

    return a[0] == b[0] and bool(mx.array_equal(a[1], b[1]))


@pytest.fixture(scope="module")
def two_adapters(demo_text_model, tmp_path_factory):
    """Two adapters of different shapes (rank, layer span) for the demo model."""
    folder = tmp_path_factory.mktemp("adapters")
    return (make_lora_adapter(demo_text_model, folder / "a-cpt", num_layers=2, rank=4, scale=40.0, seed=0),
            make_lora_adapter(demo_text_model, folder / "b-sft", num_layers=4, rank=8, scale=20.0, seed=1))


@pytest.mark.slow
def test_switching_gives_what_a_fresh_load_gives(demo_text_model, two_adapters):
    a, b = two_adapters
    model, tokenizer = load_model(demo_text_model)
    plain = greedy(model, tokenizer)
    switcher = AdapterSwitcher(model)
    on_a = greedy(switcher.use(a), tokenizer)
    on_b = greedy(switcher.use(b), tokenizer)
    back_a = greedy(switcher.use(a), tokenizer)
    base = greedy(switcher.use(None), tokenizer)
    assert not same(on_a, plain) and not same(on_b, plain) and not same(on_a, on_b)  # they do change answers
    assert same(back_a, on_a) and same(base, plain)  # bit-identical logits and tokens
    assert same(greedy(*load_model(demo_text_model, a)), back_a)
    # the base weights are shared, not copied: only the adapters' small arrays were added
    assert 0 < switcher.nbytes() < 2_000_000


def test_an_adapter_that_does_not_fit_is_refused_and_the_base_is_untouched(demo_text_model, tiny_model, tmp_path):
    model, tokenizer = load_model(demo_text_model)
    plain = greedy(model, tokenizer, n=4)
    switcher = AdapterSwitcher(model)
    with pytest.raises(UserError, match=r"tiny does not fit the loaded base model \(model.layers.* not an adapter parameter"):
        switcher.use(make_lora_adapter(tiny_model, tmp_path / "tiny"))
    assert switcher.active is None and same(greedy(model, tokenizer, n=4), plain)

    full = tmp_path / "full"
    shutil.copytree(tmp_path / "tiny", full)
    (full / "adapter_config.json").write_text(json.dumps({"fine_tune_type": "full", "num_layers": 2}))
    with pytest.raises(UserError, match="full fine-tune"):
        switcher.use(full)
    with pytest.raises(UserError, match="not an adapter folder"):
        switcher.use(tmp_path)


def test_the_holder_keeps_one_base_for_every_adapter(demo_text_model, two_adapters, monkeypatch):
    from omnilm import adapter_switch

    a, b = two_adapters
    holder = ModelHolder()
    model, tokenizer = holder.get(demo_text_model, a)
    on_a = greedy(model, tokenizer, n=2)
    assert holder.get(demo_text_model, b)[0] is model and holder.get(demo_text_model)[0] is model
    assert holder.switcher.active is None and holder.key == (str(demo_text_model), None)
    with holder.using(demo_text_model, a) as (same_model, _):
        assert same_model is model and holder.switcher.active == str(a.resolve())
    # only the most recently used adapters stay built; one dropped is built again when asked for
    monkeypatch.setattr(adapter_switch, "KEPT", 1)
    holder.get(demo_text_model, b)
    assert list(holder.switcher.adapters) == [str(b.resolve())]
    assert same(greedy(holder.get(demo_text_model, a)[0], tokenizer, n=2), on_a)
    assert list(holder.switcher.adapters) == [str(a.resolve())]


def test_stages_offered_and_picked(chat_project):
    from omnilm.catalog import list_models

    model = list_models()[0][0]
    usable, refused = compare.stage_choices(model)
    assert list(usable) == ["base", "demo_paper-sft"] and usable["base"].adapter is None
    assert "hidden size 576" in refused["tiny-cpt"]
    assert compare.default_stage_names(["base", "x-cpt", "old-sft", "new-sft", "other"]) == ["base", "x-cpt", "old-sft"]
    assert compare.default_stage_names(["base", "other"]) == ["base", "other"]
    with pytest.raises(UserError, match="2 or 3 stages"):
        compare.check_stages([usable["base"]])
    with pytest.raises(UserError, match="picked twice"):
        compare.check_stages([usable["base"], usable["base"]])


def test_evaluation_questions_are_found_and_scored_as_in_stage_30():
    q = compare.evaluation_question("  what does vellum STAND for ")
    assert q["id"] == "d1" and q["key_facts"]
    assert compare.evaluation_question("how many legs does a SPIDER have")["kind"] == "control"
    assert compare.evaluation_question("What does VELLUM eat?") is None
    good = "VELLUM stands for Vector-Encoded Latent Lookup with Unified Memory."
    for answer in (good, "It is a Latin word.", "It is not Vector Encoded Latent Lookup with Unified Memory."):
        v = compare.verdict(answer, q)
        assert (v["correct"], v["found"], v["missing"]) == score_answer(answer, q["key_facts"])
    assert compare.verdict(good, q)["correct"] and not compare.verdict("It is a Latin word.", q)["correct"]


def test_compare_answers_each_stage_and_stop_logs_what_began(chat_project, demo_text_model):
    from omnilm.chat_session import build_messages

    # an adapter that changes this answer from its first word (a seeded one: the same every run)
    make_lora_adapter(demo_text_model, chat_project / "adapters" / "demo_paper-sft", scale=40.0, seed=0)
    stages = list(compare.stage_choices(compare.catalog.list_models()[0][0])[0].values())
    model_dir = chat_project / "models" / "demo-omni-Text"
    holder = ModelHolder()
    replies = compare.compare(holder, model_dir, stages, QUESTION, max_tokens=8)
    assert all(r.finish_reason and r.tokens and r.time_to_first_token_s > 0 and r.tokens_per_s > 0 for r in replies)
    from mlx_lm import generate

    model, tokenizer = load_model(demo_text_model)
    ids = prompt_ids(tokenizer, [{"role": "user", "content": QUESTION}])
    assert replies[0].text == generate(model, tokenizer, ids, max_tokens=8)  # base: the plain model's answer
    assert replies[0].text != replies[1].text  # the adapter was switched on for the second

    # Stop during the first stage: it is kept as stopped, the second never begins
    messages = build_messages([], QUESTION, multi_turn=False)
    fresh = [compare.Reply() for _ in stages]
    steps = compare.stream_stages(holder, model_dir, stages, messages, 50, replies=fresh)
    for i, reply in steps:
        if reply.tokens == 2:
            break
    steps.close()
    assert fresh[0].stopped and fresh[0].tokens == 2 and fresh[1].tokens == 0
    assert holder.lock.acquire(blocking=False)  # released after the stop
    holder.lock.release()

    opts = {"temperature": 0.0, "top_p": 1.0, "max_tokens": 50, "multi_turn": False, "system_prompt": ""}
    assert compare.log_answers("demo-omni-Text", stages, fresh, QUESTION, opts, "run1") == 1
    assert compare.log_answers("demo-omni-Text", stages, replies, QUESTION, {**opts, "max_tokens": 8}, "run2") == 2
    rows = chatlog.read_rows()
    assert [(r["stage"], r["adapter"], r["compare_id"], r["stopped"]) for r in rows] == [
        ("base", "None", "run1", "True"), ("base", "None", "run2", "False"),
        ("demo_paper-sft", "demo_paper-sft", "run2", "False")]
    assert rows[2]["answer"] == replies[1].answer and rows[0]["conversation_id"] == ""


def test_the_app_refuses_a_single_stage_comparison(chat_project):
    from pathlib import Path

    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(Path(__file__).resolve().parents[1] / "04_inference" / "app.py"), default_timeout=60)
    at.session_state["compare_mode"] = True
    at.session_state["stages::demo-omni-Text"] = ["base"]
    at.run()
    assert not at.exception
    assert "compare needs 2 or 3 stages, got 1" in [e.value for e in at.sidebar.error]
    assert at.chat_input(key="question").proto.disabled  # nothing loads, nothing is asked
    assert at.tabs[0].label == "Compare"
