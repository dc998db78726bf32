"""The chat log: rows from the store, an old CSV log still read (never rewritten)."""
from omnilm import chat_store, chatlog

AWKWARD = 'line one\nline "two", with commas,\r\nünïcödé 🙂 and a <think>tag</think>'


def test_old_csv_log_still_loads_before_the_stores_rows(project_root):
    path = chatlog.log_path()
    old_columns = chatlog.COLUMNS[:6]  # a log from before reasoning/ttft/stopped were recorded
    old_text = ",".join(old_columns + ["question"]) + "\n2025-01-01T10:00:00,m,a,0.0,1.0,64,\"kept, really\"\n"
    path.write_text(old_text)
    table = chatlog.read_log()
    assert list(table.columns) == chatlog.COLUMNS + ["question"] and len(table) == 1
    assert table.iloc[0]["stopped"] == "" and table.iloc[0]["conversation_id"] == ""

    assert chatlog.append_row({"model": "m2", "prompt": "p", "answer": AWKWARD, "stopped": True}) is None
    chatlog.append_row({"model": "m3", "prompt": "q", "conversation_id": "c1"})
    table = chatlog.read_log()
    assert list(table["model"]) == ["m", "m2", "m3"]
    assert table.iloc[0]["max_tokens"] == "64" and table.iloc[0]["question"] == "kept, really"
    assert table.iloc[1]["stopped"] == "True" and table.iloc[1]["answer"] == AWKWARD  # exact, \r\n too
    assert (table.iloc[2]["conversation_id"], table.iloc[2]["turn"]) == ("c1", "1")
    assert path.read_text() == old_text  # the old log is read, never rewritten


def test_damaged_line_of_the_old_log_does_not_hide_the_rest(project_root):
    path = chatlog.log_path()
    path.write_text("timestamp,model,prompt\n2025,a,first\n2025,too,many," + ",".join(["x"] * 30) + "\n2025,b,last\n")
    assert [r["model"] for r in chatlog.read_rows()] == ["a", "too", "b"]


def test_empty_or_missing_log(project_root):
    assert chatlog.read_rows() == [] and chatlog.read_log().empty
    chatlog.log_path().write_text("")
    chatlog.append_row({"model": "m"})
    rows = chatlog.read_rows()
    assert [r["model"] for r in rows] == ["m"] and rows[0]["timestamp"]
    assert chat_store.db_path().exists()
