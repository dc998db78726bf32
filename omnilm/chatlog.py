"""The chat app's log: one row per generated answer, with the columns of chat_store.COLUMNS.

The rows live in the chat store (omnilm.chat_store, logs/chats.sqlite3), which also
rebuilds conversations from them: one source of truth, so the log and a reopened
conversation never disagree, and the CSV the History tab downloads is made from it.
We dropped the CSV writer rather than keep it beside the store: two files written
for every answer can drift apart, and SQLite already gives the safe concurrent
appends the CSV needed a lock file for.

A logs/inference_logs.csv written by earlier versions is still read, never written:
its rows come first, with whatever columns it had (missing ones empty, extra ones
kept), so old logs still load."""
import csv
from pathlib import Path

from omnilm import chat_store
from omnilm.chat_store import COLUMNS  # the store keeps the rows, so it owns their columns
from omnilm.paths import logs_dir

LOG_NAME = "inference_logs.csv"  # the old log's file, and the name of the CSV download


def log_path():
    """The CSV log of earlier versions (read only)."""
    return logs_dir() / LOG_NAME


def append_row(row, conversation_id=None, turn=None):
    """Log one answer (a dict keyed by COLUMNS); see chat_store.add_exchange. Returns its turn."""
    return chat_store.add_exchange(row, row.get("conversation_id") or conversation_id,
                                   row.get("turn") or turn)


def read_old_rows(path=None):
    """The old CSV log's rows: at least COLUMNS (missing ones empty), its other columns kept."""
    path = Path(path or log_path())
    if not path.exists():
        return []
    with open(path, newline="", encoding="utf-8", errors="replace") as f:
        rows = []
        for row in csv.DictReader(f, restval=""):
            row.pop(None, None)  # surplus fields of a damaged line
            rows.append({**dict.fromkeys(COLUMNS, ""), **row})
    return rows


def read_rows():
    """Every logged answer, oldest first, as dicts of text: the old CSV's, then the store's."""
    return read_old_rows() + chat_store.log_rows()


def read_log():
    """The log as a pandas DataFrame (current columns first, then any the old CSV had)."""
    import pandas as pd

    rows = read_rows()
    extra = list(dict.fromkeys(c for r in rows for c in r if c not in COLUMNS))
    return pd.DataFrame(rows, columns=COLUMNS + extra)
