"""The chat app through Streamlit's AppTest (pickers, controls, chat, log), and the
logic under it: message history, sampling settings, a reply that stops when closed."""
import threading
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from omnilm import chat_store, chatlog
from omnilm.chat_session import ModelHolder, build_messages, sampling, stream_reply

APP = str(Path(__file__).resolve().parents[1] / "04_inference" / "app.py")
TIMEOUT = 120  # the first run loads the demo model


def start(**state):
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    for key, value in state.items():
        at.session_state[key] = value
    return at.run()


def sidebar_text(at):
    return " ".join(e.value for e in [*at.sidebar.caption, *at.sidebar.error, *at.sidebar.markdown])


def test_pickers_skip_omni_and_explain_incompatible_adapters(chat_project):
    at = start()
    assert not at.exception
    model = at.sidebar.selectbox(key="model")
    assert model.options == ["demo-omni-Text"] and model.value == "demo-omni-Text"
    assert "1 folder under models/ skipped (demo-omni: omni/VLM" in sidebar_text(at)
    adapter = at.sidebar.selectbox(key="adapter::demo-omni-Text")
    assert adapter.options == ["None", "demo_paper-sft", "tiny-cpt (incompatible)"]
    assert adapter.value == "demo_paper-sft"  # the newest SFT adapter by default
    assert not at.chat_input(key="question").proto.disabled

    adapter.set_value("tiny-cpt").run()
    assert not at.exception
    assert "tiny-cpt cannot be used with demo-omni-Text" in sidebar_text(at)
    assert "hidden size 576" in sidebar_text(at)
    assert at.chat_input(key="question").proto.disabled  # nothing to chat with until a fitting pick

    at.sidebar.selectbox(key="adapter::demo-omni-Text").set_value("None").run()
    assert not at.exception and not at.chat_input(key="question").proto.disabled


def test_creativity_controls(chat_project):
    at = start()
    assert at.sidebar.toggle(key="creative").value is False
    temperature = at.sidebar.slider(key="temperature_off")
    assert temperature.value == 0.0 and temperature.proto.disabled
    assert at.sidebar.toggle(key="show_reasoning").value is False
    assert at.sidebar.toggle(key="multi_turn").value is True

    at.sidebar.toggle(key="creative").set_value(True).run()
    temperature = at.sidebar.slider(key="temperature")
    assert not temperature.proto.disabled and temperature.value == 0.7
    assert not at.sidebar.slider(key="top_p").proto.disabled

    assert sampling(False, 1.3, 0.5) == (0.0, 1.0)
    assert sampling(True, 1.3, 0.5) == (1.3, 0.5)
    assert sampling(True, 9, 0) == (2.0, 0.01)


def test_chat_streams_records_and_logs(chat_project):
    at = start(max_tokens=32)
    at.chat_input(key="question").set_value("What does VELLUM stand for?").run()
    assert not at.exception
    messages = at.chat_message
    assert [m.name for m in messages] == ["user", "assistant"]
    history = at.session_state["history"]
    assert history[0] == {"role": "user", "content": "What does VELLUM stand for?"}
    assert history[1]["content"] and "tok/s" in history[1]["stats"] and "GB" in history[1]["stats"]
    assert "tok/s" in " ".join(c.value for c in messages[1].caption)

    rows = chatlog.read_rows()
    assert len(rows) == 1
    row = rows[0]
    assert (row["model"], row["adapter"], row["prompt"]) == ("demo-omni-Text", "demo_paper-sft",
                                                             "What does VELLUM stand for?")
    assert (row["temperature"], row["top_p"], row["max_tokens"], row["multi_turn"]) == ("0.0", "1.0", "32", "True")
    assert row["answer"] == history[1]["content"] and 0 < int(row["tokens"]) <= 32
    assert float(row["tokens_per_s"]) > 0 and float(row["peak_memory_gb"]) > 0 and row["stopped"] == "False"

    assert "1 exchanges logged in logs/chats.sqlite3" in " ".join(c.value for c in at.caption)
    assert at.get("download_button")

    at.sidebar.button(key="clear").click().run()
    assert at.session_state["history"] == [] and not at.chat_message
    assert len(chatlog.read_rows()) == 1  # clearing the chat never touches the log


def test_chats_are_stored_regenerated_exported_and_reopened(chat_project):
    at = start(max_tokens=16)
    at.chat_input(key="question").set_value("What does VELLUM stand for?").run()
    at.chat_input(key="question").set_value("And what is it for?").run()
    assert not at.exception
    cid = at.session_state["conversation_id"]
    assert cid and at.query_params["chat"] == cid  # the URL names the chat, so a reload reopens it
    stored = chat_store.conversation(cid)
    assert [(t["turn"], t["prompt"]) for t in stored["turns"]] == [(1, "What does VELLUM stand for?"),
                                                                   (2, "And what is it for?")]
    assert at.session_state["history"] == chat_store.as_history(stored)
    assert [r["turn"] for r in chatlog.read_rows()] == ["1", "2"]
    assert {b.proto.label for b in at.get("download_button")} >= {"Markdown", "JSON", "Download CSV"}

    at.button(key="regenerate").click().run()  # the last answer again, as turn 2
    assert not at.exception
    assert [(r["conversation_id"], r["turn"]) for r in chatlog.read_rows()] == [(cid, "1"), (cid, "2"), (cid, "2")]
    assert len(at.session_state["history"]) == 4 and len(at.chat_message) == 4
    assert at.session_state["history"] == chat_store.as_history(chat_store.conversation(cid))

    at.sidebar.button(key="clear").click().run()  # a new chat; the old one stays listed
    assert at.session_state["history"] == [] and "chat" not in at.query_params and not at.chat_message
    at.sidebar.button(key=f"open::{cid}").click().run()
    assert [m.name for m in at.chat_message] == ["user", "assistant"] * 2
    assert at.session_state["history"] == chat_store.as_history(chat_store.conversation(cid))

    reloaded = AppTest.from_file(APP, default_timeout=TIMEOUT)  # a page reload: a new session, same URL
    reloaded.query_params["chat"] = cid
    reloaded.run()
    assert reloaded.session_state["history"] == at.session_state["history"]
    reloaded.chat_input(key="question").set_value("One more?").run()
    assert [t["turn"] for t in chat_store.conversation(cid)["turns"]] == [1, 2, 3]


def test_reasoning_is_hidden_or_collapsed(chat_project):
    history = [{"role": "user", "content": "Q"},
               {"role": "assistant", "content": "The answer.", "reasoning": "secret steps", "stats": "1.0 s"}]
    at = start(history=history)
    shown = " ".join(m.value for m in at.markdown)
    assert "The answer." in shown and "secret steps" not in shown and not at.expander

    at.sidebar.toggle(key="show_reasoning").set_value(True).run()
    assert [e.label for e in at.expander] == ["Reasoning"]
    assert "secret steps" in " ".join(m.value for m in at.expander[0].markdown)


def test_failed_load_keeps_the_app_usable(chat_project):
    broken = chat_project / "models" / "broken"
    broken.mkdir()
    (broken / "config.json").write_text((chat_project / "models" / "demo-omni-Text" / "config.json").read_text())
    (broken / "tokenizer.json").write_text("{}")
    (broken / "model.safetensors").write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{}      ")
    at = start()
    at.sidebar.selectbox(key="model").set_value("broken").run()
    assert not at.exception
    assert any("Could not load broken" in e.value for e in at.error)
    assert at.chat_input(key="question").proto.disabled
    at.sidebar.selectbox(key="model").set_value("demo-omni-Text").run()
    assert not at.exception and not at.error and not at.chat_input(key="question").proto.disabled


def test_no_models_says_what_to_do(project_root):
    at = start()
    assert not at.exception
    assert "No text model under models/" in sidebar_text(at)
    assert at.chat_input(key="question").proto.disabled


def test_history_never_carries_reasoning_and_respects_multi_turn():
    history = [{"role": "user", "content": "Q1"},
               {"role": "assistant", "content": "<think>hidden</think>A1", "reasoning": "hidden"},
               {"role": "user", "content": "Q2"}, {"role": "assistant", "content": "", "reasoning": "only thought"}]
    messages = build_messages(history, "Q3", system_prompt="  Be brief. ", multi_turn=True)
    assert messages == [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Q1"},
                        {"role": "assistant", "content": "A1"}, {"role": "user", "content": "Q2"},
                        {"role": "user", "content": "Q3"}]
    assert build_messages(history, "Q3", multi_turn=False) == [{"role": "user", "content": "Q3"}]


def test_closing_the_stream_stops_generation_and_frees_the_lock(demo_text_model):
    holder = ModelHolder()
    model, tokenizer = holder.get(demo_text_model)
    messages = [{"role": "user", "content": "Write a long story about a lighthouse."}]
    stream = stream_reply(model, tokenizer, messages, max_tokens=200, lock=holder.lock)
    for reply in stream:
        if reply.tokens == 3:
            break
    assert holder.lock.acquire(blocking=False) is True  # held by this thread while streaming (RLock)
    holder.lock.release()
    stream.close()
    assert reply.stopped and reply.tokens == 3 and reply.finish_reason == ""
    other = threading.Thread(target=lambda: results.append(holder.lock.acquire(timeout=1)))
    results = []
    other.start()
    other.join()
    assert results == [True]  # released by the close, so another session can go on

    full = list(stream_reply(model, tokenizer, messages, max_tokens=5))[-1]
    assert not full.stopped and full.finish_reason == "length" and full.tokens == 5
    assert full.time_to_first_token_s > 0 and full.tokens_per_s > 0


@pytest.mark.parametrize("bad", ["/no/such/folder"])
def test_holder_never_downloads(bad):
    from omnilm.errors import UserError

    with pytest.raises(UserError, match="does not exist"):
        ModelHolder().get(bad)


def page_errors(at):
    return [e.value for e in [*at.error, *at.sidebar.error]]


def test_a_corrupt_chat_store_is_one_message_and_the_app_still_answers(chat_project):
    store = chat_project / "logs" / "chats.sqlite3"
    store.write_bytes(b"not a database, a user's file " * 200)
    before = store.read_bytes()
    at = start(max_tokens=16)
    assert not at.exception
    errors = page_errors(at)
    assert len(errors) == 1 and "logs/chats.sqlite3" in errors[0] and "not saved" in errors[0], errors
    at.chat_input(key="question").set_value("What does VELLUM stand for?").run()
    assert not at.exception and len(page_errors(at)) == 1
    history = at.session_state["history"]
    assert history[1]["content"] and "not saved" in history[1]["stats"]
    assert "not saved" in " ".join(c.value for c in at.chat_message[1].caption)
    assert "log is not available" in " ".join(c.value for c in at.caption)
    assert store.read_bytes() == before  # never overwritten
    assert sorted(p.name for p in store.parent.iterdir()) == ["chats.sqlite3"]


def test_a_read_only_chat_store_still_answers_and_shows_its_chats(chat_project):
    import subprocess

    store = chat_project / "logs" / "chats.sqlite3"
    chat_store.add_exchange({"prompt": "An earlier question", "answer": "An earlier answer"}, "c0", path=store)
    if subprocess.run(["chattr", "+i", str(store)], capture_output=True).returncode:
        pytest.skip("chattr +i (immutable: read-only even for root) is not available here")
    try:
        before = store.read_bytes()
        at = start(max_tokens=16)
        errors = page_errors(at)
        assert not at.exception and len(errors) == 1 and "cannot be written" in errors[0], errors
        at.chat_input(key="question").set_value("What does VELLUM stand for?").run()
        assert not at.exception and len(page_errors(at)) == 1
        assert "not saved" in at.session_state["history"][1]["stats"]
        assert "An earlier question" in " ".join(b.proto.label for b in at.sidebar.button)  # still listed
        assert store.read_bytes() == before
    finally:
        subprocess.run(["chattr", "-i", str(store)], capture_output=True)


def test_an_empty_chat_store_file_is_a_new_store(chat_project):
    store = chat_project / "logs" / "chats.sqlite3"
    store.write_bytes(b"")
    at = start(max_tokens=16)
    at.chat_input(key="question").set_value("What does VELLUM stand for?").run()
    assert not at.exception and not page_errors(at)
    assert [r["prompt"] for r in chatlog.read_rows()] == ["What does VELLUM stand for?"]
