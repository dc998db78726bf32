"""The chat log: whole rows under concurrency, old logs kept, awkward text round-trips."""
import csv
import subprocess
import sys
import threading

from omnilm import chatlog

AWKWARD = 'line one\nline "two", with commas,\r\nünïcödé 🙂 and a <think>tag</think>'

WRITER = """
import sys
from omnilm import chatlog
who, count = sys.argv[1], int(sys.argv[2])
for i in range(count):
    chatlog.append_row({"model": who, "adapter": str(i), "prompt": f"{who}-{i} " + "x" * (i * 97 % 5000),
                        "answer": AWKWARD_TEXT})
"""


def test_concurrent_processes_lose_and_mix_nothing(project_root):
    path = chatlog.log_path()
    # an old log with fewer, differently named columns is there first: it must survive the upgrade
    path.write_text("time,model,question\n2025-01-01T00:00:00,old-model,\"kept, really\"\n")
    writers, per_writer = 4, 150
    procs = [subprocess.Popen([sys.executable, "-c", WRITER.replace("AWKWARD_TEXT", repr(AWKWARD)), f"p{w}", str(per_writer)])
             for w in range(writers)]
    threads = [threading.Thread(target=lambda i=i: chatlog.append_row({"model": "thread", "adapter": str(i),
                                                                       "prompt": f"thread-{i}"}))
               for i in range(50)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(p.wait(timeout=120) == 0 for p in procs)

    rows = chatlog.read_rows()
    assert len(rows) == 1 + writers * per_writer + 50
    assert rows[0]["question"] == "kept, really" and rows[0]["time"] == "2025-01-01T00:00:00"
    for w in range(writers):
        mine = [r for r in rows if r["model"] == f"p{w}"]
        assert [int(r["adapter"]) for r in mine] == list(range(per_writer))  # each process's order kept
        for r in mine:
            i = int(r["adapter"])
            assert r["prompt"] == f"p{w}-{i} " + "x" * (i * 97 % 5000)
            assert r["answer"] == AWKWARD.replace("\r\n", "\n") or r["answer"] == AWKWARD
    assert sorted(int(r["adapter"]) for r in rows if r["model"] == "thread") == list(range(50))
    with open(path, newline="", encoding="utf-8") as f:
        header = next(csv.reader(f))
    assert header == chatlog.COLUMNS + ["time", "question"]


def test_log_with_fewer_columns_is_read_and_kept(project_root):
    path = chatlog.log_path()
    old_columns = chatlog.COLUMNS[:6]  # a log from before reasoning/ttft/stopped were recorded
    path.write_text(",".join(old_columns) + "\n2025-01-01T10:00:00,m,a,0.0,1.0,64\n")
    table = chatlog.read_log()
    assert list(table.columns) == chatlog.COLUMNS and len(table) == 1 and table.iloc[0]["stopped"] == ""
    chatlog.append_row({"model": "m2", "prompt": "p", "answer": AWKWARD, "stopped": True})
    table = chatlog.read_log()
    assert list(table["model"]) == ["m", "m2"]
    assert table.iloc[0]["max_tokens"] == "64" and table.iloc[1]["stopped"] == "True"
    assert table.iloc[1]["answer"] in (AWKWARD, AWKWARD.replace("\r\n", "\n"))


def test_damaged_line_does_not_hide_the_rest(project_root):
    path = chatlog.log_path()
    chatlog.append_row({"model": "a", "prompt": "first"})
    with open(path, "a") as f:
        f.write("2025,too,many,fields," + ",".join(["x"] * 30) + "\n")
    chatlog.append_row({"model": "b", "prompt": "last"})
    assert [r["model"] for r in chatlog.read_rows()] == ["a", "too", "b"]


def test_empty_or_missing_log(project_root):
    assert chatlog.read_rows() == [] and chatlog.read_log().empty
    chatlog.log_path().write_text("")
    chatlog.append_row({"model": "m"})
    assert chatlog.read_rows()[0]["model"] == "m"
    assert chatlog.read_rows()[0]["timestamp"]
