"""The chat app's log: one CSV row per exchange in logs/inference_logs.csv.

Several browser sessions (threads) or app processes append at once: every write
happens under an exclusive lock on a sibling lock file, as one whole row, so no
row is lost or cut into another. A log written with fewer or older columns is
kept: the first append with the current columns rewrites it (under the same
lock) with the union of both headers, old rows intact."""
import contextlib
import csv
import datetime as _dt
import io
import os
import threading
from pathlib import Path

from omnilm.atomic import atomic_file
from omnilm.paths import logs_dir

LOG_NAME = "inference_logs.csv"
COLUMNS = ["timestamp", "model", "adapter", "temperature", "top_p", "max_tokens", "multi_turn",
           "system_prompt", "prompt", "answer", "reasoning", "tokens", "tokens_per_s", "peak_memory_gb",
           "duration_s", "time_to_first_token_s", "stopped"]
_thread_lock = threading.Lock()  # flock is per open file; threads of one process also queue here


def log_path():
    return logs_dir() / LOG_NAME


@contextlib.contextmanager
def locked(path):
    """Exclusive lock shared by every process appending to `path`. The lock lives in
    a separate file because a header upgrade replaces the log file itself."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with _thread_lock, open(path.with_name(path.name + ".lock"), "a") as handle:
        try:
            import fcntl
        except ImportError:  # Windows: one process at a time is all we promise there
            yield
            return
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _read_header(path):
    with open(path, newline="", encoding="utf-8") as f:
        return next(csv.reader(f), [])


def _csv_line(values):
    buf = io.StringIO()
    csv.writer(buf).writerow(values)
    return buf.getvalue()


def _upgrade(path, header):
    """Rewrite a log whose header lacks current columns: every old row and column kept."""
    columns = COLUMNS + [c for c in header if c not in COLUMNS]
    rows = read_rows(path)
    with atomic_file(path) as tmp, open(tmp, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=columns, restval="", extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
        f.flush()
        os.fsync(f.fileno())
    return columns


def append_row(row, path=None):
    """Append one exchange (a dict keyed by COLUMNS; a missing timestamp is now)."""
    path = Path(path or log_path())
    row = {"timestamp": _dt.datetime.now().isoformat(timespec="seconds"), **row}
    with locked(path):
        exists = path.exists() and path.stat().st_size > 0
        columns = _read_header(path) if exists else COLUMNS
        if exists and not set(COLUMNS) <= set(columns):
            columns = _upgrade(path, columns)
        text = ("" if exists else _csv_line(columns)) + _csv_line([row.get(c, "") for c in columns])
        data = text.encode("utf-8")
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            written = 0
            while written < len(data):  # one row, whole, under the lock
                written += os.write(fd, data[written:])
        finally:
            os.close(fd)


def read_rows(path=None):
    """Every row as a dict with at least COLUMNS (missing ones empty), old columns kept."""
    path = Path(path or log_path())
    if not path.exists():
        return []
    with open(path, newline="", encoding="utf-8", errors="replace") as f:
        reader = csv.DictReader(f, restval="")
        rows = []
        for row in reader:
            row.pop(None, None)  # surplus fields of a damaged line
            rows.append({**dict.fromkeys(COLUMNS, ""), **row})
    return rows


def read_log(path=None):
    """The log as a pandas DataFrame (current columns first, then any older ones)."""
    import pandas as pd

    rows = read_rows(path)
    extra = [c for c in (rows[0] if rows else {}) if c not in COLUMNS]
    return pd.DataFrame(rows, columns=COLUMNS + extra)
