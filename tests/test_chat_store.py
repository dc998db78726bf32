"""The chat store: many writer processes lose nothing, turns and regenerated answers,
the conversation list, export, an older store upgraded, a broken file refused."""
import json
import multiprocessing
import sqlite3

import pytest

from omnilm import chat_store, chatlog
from omnilm.errors import UserError

WRITERS, PER_WRITER = 8, 40
AWKWARD = 'line one\nline "two", with commas,\r\nünïcödé 🙂 and a <think>tag</think>'


def _writer(root, who, gate):
    import os

    os.environ["OMNILM_ROOT"] = root
    gate.wait(60)  # every process starts writing at the same moment, on a database none created yet
    for i in range(PER_WRITER):
        # its own conversation, a conversation all share (turn numbers decided by the store), a log-only row
        chat_store.add_exchange({"model": who, "prompt": f"{who}-{i}", "answer": AWKWARD}, f"own-{who}")
        chat_store.add_exchange({"model": who, "prompt": f"{who}-shared-{i}"}, "shared")
        chatlog.append_row({"model": who, "prompt": f"{who}-log-{i}"})


@pytest.mark.slow
def test_eight_writer_processes_lose_nothing(project_root):
    ctx = multiprocessing.get_context("spawn")  # real separate processes, as separate app servers are
    gate = ctx.Barrier(WRITERS)
    procs = [ctx.Process(target=_writer, args=(str(project_root), f"p{w}", gate)) for w in range(WRITERS)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(180)
    assert [p.exitcode for p in procs] == [0] * WRITERS

    rows = chatlog.read_rows()
    assert len(rows) == WRITERS * PER_WRITER * 3
    for w in range(WRITERS):
        own = chat_store.conversation(f"own-p{w}")
        assert [(t["turn"], t["prompt"]) for t in own["turns"]] == [(i + 1, f"p{w}-{i}") for i in range(PER_WRITER)]
        assert all(t["answer"] == AWKWARD for t in own["turns"])
        log_only = [r["prompt"] for r in rows if r["model"] == f"p{w}" and not r["conversation_id"]]
        assert log_only == [f"p{w}-log-{i}" for i in range(PER_WRITER)]  # each process's order kept
    shared = chat_store.conversation("shared")["turns"]
    assert [t["turn"] for t in shared] == list(range(1, WRITERS * PER_WRITER + 1))  # no turn given twice
    assert sorted(t["prompt"] for t in shared) == sorted(f"p{w}-shared-{i}" for w in range(WRITERS)
                                                          for i in range(PER_WRITER))
    with sqlite3.connect(chat_store.db_path()) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_turns_regenerate_and_the_conversation_list(project_root):
    assert chat_store.add_exchange({"prompt": "  What does\nVELLUM stand for?  ", "answer": "first"}, "a") == 1
    assert chat_store.add_exchange({"prompt": "And the L?", "answer": "old", "reasoning": "r"}, "a",
                                   stats="1.0 s · 3 tokens") == 2
    assert chat_store.add_exchange({"prompt": "Other chat", "answer": "x", "timestamp": "2099-01-01T00:00:00"},
                                   "b") == 1
    assert chat_store.add_exchange({"prompt": "And the L?", "answer": "new"}, "a", turn=2) == 2  # regenerated

    conv = chat_store.conversation("a")
    assert conv["title"] == "What does VELLUM stand for?"
    assert [(t["turn"], t["answer"]) for t in conv["turns"]] == [(1, "first"), (2, "new")]
    assert chat_store.as_history(conv) == [
        {"role": "user", "content": "  What does\nVELLUM stand for?  "},
        {"role": "assistant", "content": "first", "reasoning": "", "stats": "", "turn": 1},
        {"role": "user", "content": "And the L?"},
        {"role": "assistant", "content": "new", "reasoning": "", "stats": "", "turn": 2}]
    assert [r["answer"] for r in chatlog.read_rows()] == ["first", "old", "x", "new"]  # the log keeps both

    listed = chat_store.conversations()
    assert [(c["id"], c["turns"]) for c in listed] == [("b", 1), ("a", 2)]  # most recently updated first
    assert chat_store.label(listed[0]) == "Other chat · 01-01 00:00"
    assert chat_store.conversation("nope") is None and chat_store.as_history(None) == []
    assert len(chat_store.title_of("x" * 500)) == chat_store.TITLE_CHARS


def test_export_markdown_and_json(project_root):
    chat_store.add_exchange({"prompt": "What does VELLUM stand for?", "answer": AWKWARD, "model": "demo-omni-Text",
                             "adapter": "demo_paper-sft", "temperature": 0.0, "max_tokens": 32, "tokens": 12,
                             "stopped": False, "reasoning": "steps"}, "c", stats="0.5 s · 12 tokens")
    chat_store.add_exchange({"prompt": "Second?", "answer": "", "adapter": "None", "stopped": True}, "c")
    conv = chat_store.conversation("c")

    doc = json.loads(chat_store.to_json(conv))
    assert (doc["id"], doc["title"]) == ("c", "What does VELLUM stand for?")
    first, second = doc["turns"]
    assert (first["turn"], first["prompt"], first["answer"]) == (1, "What does VELLUM stand for?", AWKWARD)
    assert (first["temperature"], first["max_tokens"], first["tokens"], first["stopped"]) == (0.0, 32, 12, False)
    assert (second["turn"], second["stopped"], second["tokens"]) == (2, True, "")

    md = chat_store.to_markdown(conv)
    assert md.startswith("# What does VELLUM stand for?\n")
    assert "## Turn 1" in md and "**demo-omni-Text + demo_paper-sft:**" in md and AWKWARD in md
    assert "<summary>Reasoning</summary>" in md and "_0.5 s · 12 tokens_" in md
    assert "## Turn 2" in md and "_(empty answer)_" in md and "+ None" not in md
    assert chat_store.export_name(conv, "md") == "chat-what-does-vellum-stand-for-c.md"


def test_an_older_store_gains_new_columns_and_keeps_its_rows(project_root):
    path = chat_store.db_path()
    with sqlite3.connect(path) as conn:  # as a version that logged fewer columns left it
        conn.execute("CREATE TABLE conversations (id TEXT PRIMARY KEY, title TEXT NOT NULL, created TEXT NOT NULL, "
                     "updated TEXT NOT NULL)")
        conn.execute("CREATE TABLE exchanges (seq INTEGER PRIMARY KEY AUTOINCREMENT, conversation_id TEXT, "
                     "turn INTEGER, timestamp TEXT, model TEXT, prompt TEXT, answer TEXT)")
        conn.execute("INSERT INTO conversations VALUES ('old', 'Old chat', '2025-01-01T00:00:00', '2025-01-01T00:00:00')")
        conn.execute("INSERT INTO exchanges (conversation_id, turn, timestamp, model, prompt, answer) "
                     "VALUES ('old', 1, '2025-01-01T00:00:00', 'm', 'q', 'a')")
    conn.close()
    assert chat_store.add_exchange({"prompt": "q2", "answer": "a2", "stopped": True}, "old") == 2
    turns = chat_store.conversation("old")["turns"]
    assert [(t["prompt"], t["answer"], t["stopped"]) for t in turns] == [("q", "a", ""), ("q2", "a2", "True")]


def test_a_file_that_is_no_database_is_one_clear_error(project_root):
    chat_store.db_path().write_bytes(b"this is not sqlite at all, " * 100)
    with pytest.raises(UserError, match=r"logs/chats.sqlite3 cannot be used as the chat store .*move it aside"):
        chat_store.conversations()
