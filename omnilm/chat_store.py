"""Chats that last: every answer of the chat app in one SQLite database, logs/chats.sqlite3.

One table holds every generation (question, answer, model, settings, figures) with
its conversation id and turn; a second one names the conversations. A conversation
is the newest generation of each of its turns: regenerating an answer adds a row
for the same turn, so the log still has both. This store is the log's one source
of truth: the History tab and its CSV download are read from these same rows
(omnilm.chatlog), so a conversation and the log can never disagree.

Many app processes and browser sessions write at once: WAL mode (readers never
block the writer), a busy timeout (a writer waits for the one before it instead
of failing), and one short IMMEDIATE transaction per write, so the turn number a
new question gets and its row are decided together."""
import contextlib
import datetime as _dt
import json
import sqlite3
import time
import uuid
from pathlib import Path

from omnilm.errors import UserError
from omnilm.paths import display, logs_dir

DB_NAME = "chats.sqlite3"
BUSY_TIMEOUT_S = 60
TITLE_CHARS = 60
# the columns of a logged answer (omnilm.chatlog reads the log through this store)
COLUMNS = ["timestamp", "model", "adapter", "temperature", "top_p", "max_tokens", "multi_turn",
           "system_prompt", "prompt", "answer", "reasoning", "tokens", "tokens_per_s", "peak_memory_gb",
           "duration_s", "time_to_first_token_s", "stopped", "conversation_id", "turn",
           "stage", "compare_id"]  # the last two: set for the answers of compare mode (omnilm.compare)
# store-only columns: the stats line shown under an answer; the rest are COLUMNS
_TEXT_COLUMNS = [c for c in COLUMNS if c not in ("conversation_id", "turn")] + ["stats"]
_FLOATS = {"temperature", "top_p", "tokens_per_s", "peak_memory_gb", "duration_s", "time_to_first_token_s"}
_INTS = {"max_tokens", "tokens"}
_BOOLS = {"multi_turn", "stopped"}


def db_path():
    return logs_dir() / DB_NAME


def now():
    return _dt.datetime.now().isoformat(timespec="seconds")


def new_id():
    return uuid.uuid4().hex[:12]


def _quote(name):
    return '"' + name.replace('"', '""') + '"'


def _ensure_schema(conn):
    """Create the tables, and add any column a newer version logs (old rows get '')."""
    have = {r[1] for r in conn.execute("PRAGMA table_info(exchanges)")}
    if have and set(_TEXT_COLUMNS) <= have:
        return
    conn.execute("BEGIN IMMEDIATE")
    try:
        conn.execute("CREATE TABLE IF NOT EXISTS conversations (id TEXT PRIMARY KEY, title TEXT NOT NULL, "
                     "created TEXT NOT NULL, updated TEXT NOT NULL)")
        conn.execute("CREATE TABLE IF NOT EXISTS exchanges (seq INTEGER PRIMARY KEY AUTOINCREMENT, "
                     "conversation_id TEXT, turn INTEGER)")
        conn.execute("CREATE INDEX IF NOT EXISTS exchanges_by_turn ON exchanges (conversation_id, turn, seq)")
        have = {r[1] for r in conn.execute("PRAGMA table_info(exchanges)")}
        for column in _TEXT_COLUMNS:
            if column not in have:
                conn.execute(f"ALTER TABLE exchanges ADD COLUMN {_quote(column)} TEXT NOT NULL DEFAULT ''")
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise


def _wal(conn):
    # switching to WAL takes a lock; a few processes opening a new database at once retry
    for attempt in range(50):
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as e:
            if "locked" not in str(e) or attempt == 49:
                raise
            time.sleep(0.05)


@contextlib.contextmanager
def connect(path=None):
    """A connection in autocommit mode (transactions are explicit), schema ready."""
    path = Path(path or db_path())
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = None
    try:
        conn = sqlite3.connect(path, timeout=BUSY_TIMEOUT_S, isolation_level=None)
        conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_S * 1000}")
        _wal(conn)
        _ensure_schema(conn)
        conn.row_factory = sqlite3.Row
        yield conn
    except sqlite3.DatabaseError as e:
        if any(why in str(e) for why in ("readonly", "read-only", "disk is full", "disk I/O")):
            raise UserError(f"{display(path)} cannot be written ({e}): make it writable (or make room) "
                            "to save chats") from None
        if not any(why in str(e) for why in ("not a database", "malformed", "unable to open")):
            raise  # a bug of ours or a lock held past the timeout: not the user's file's fault
        raise UserError(f"{display(path)} cannot be used as the chat store ({e}): move it aside "
                        "and the app starts a new one") from None
    except OSError as e:  # logs/ itself cannot be made
        raise UserError(f"{display(path)} cannot be written ({e.strerror}): make {display(path.parent)} "
                        "writable to save chats") from None
    finally:
        if conn is not None:
            conn.close()


@contextlib.contextmanager
def _write(path=None):
    """One write transaction, taken at once (IMMEDIATE) so reads inside it stay valid."""
    with connect(path) as conn:
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")


def check(path=None):
    """Raise UserError when the store cannot be both read and written (damaged, read-only,
    full), before an answer is generated and then lost. A missing or 0-byte file is a
    new store; a damaged one is never replaced (the user moves it aside)."""
    with connect(path) as conn:
        conn.execute("SELECT COUNT(*) FROM exchanges").fetchone()
        conn.execute("BEGIN IMMEDIATE")
        try:  # a write that is rolled back: the store is left exactly as it was
            conn.execute("INSERT INTO conversations (id, title, created, updated) VALUES ('', '', '', '')")
        finally:
            conn.execute("ROLLBACK")


def _text(value):
    return "" if value is None else str(value)  # what the CSV log always wrote: True -> "True"


def title_of(question):
    line = " ".join(str(question).split())
    return line if len(line) <= TITLE_CHARS else line[:TITLE_CHARS - 3].rstrip() + "..."


def add_exchange(row, conversation_id=None, turn=None, stats="", path=None):
    """Store one generation (a dict keyed by the log's COLUMNS; unknown keys are
    ignored, a missing timestamp is now) and return its turn. With a conversation
    id, the conversation is created on its first row; turn None is the next turn,
    an existing turn is a regenerated answer. Without one, the row is in the log only."""
    values = {c: _text(row.get(c)) for c in _TEXT_COLUMNS if c != "stats"}
    values["timestamp"] = values["timestamp"] or now()
    values["stats"] = _text(stats)
    with _write(path) as conn:
        if conversation_id is not None:
            conn.execute("INSERT INTO conversations (id, title, created, updated) VALUES (?, ?, ?, ?) "
                         "ON CONFLICT (id) DO UPDATE SET updated = excluded.updated",
                         (conversation_id, title_of(values["prompt"]) or "(empty question)", values["timestamp"],
                          values["timestamp"]))
            if turn is None:
                turn = conn.execute("SELECT COALESCE(MAX(turn), 0) + 1 FROM exchanges WHERE conversation_id = ?",
                                    (conversation_id,)).fetchone()[0]
        names = ["conversation_id", "turn", *values]
        conn.execute(f"INSERT INTO exchanges ({', '.join(map(_quote, names))}) "
                     f"VALUES ({', '.join('?' * len(names))})", (conversation_id, turn, *values.values()))
    return turn


def conversations(limit=None, path=None):
    """The conversations, most recently updated first: dicts of id, title, created, updated, turns."""
    sql = ("SELECT c.id, c.title, c.created, c.updated, "
           "(SELECT COUNT(DISTINCT turn) FROM exchanges e WHERE e.conversation_id = c.id) AS turns "
           "FROM conversations c ORDER BY c.updated DESC, c.rowid DESC")
    with connect(path) as conn:
        rows = conn.execute(sql + (" LIMIT ?" if limit else ""), (limit,) if limit else ()).fetchall()
    return [dict(r) for r in rows]


def label(conversation):
    """How the sidebar names a conversation: its title and when it last changed."""
    return f"{conversation['title']} · {conversation['updated'][5:16].replace('T', ' ')}"


def conversation(conversation_id, path=None):
    """{id, title, created, updated, turns: [exchange dicts, newest generation per turn]}, or None."""
    with connect(path) as conn:
        head = conn.execute("SELECT id, title, created, updated FROM conversations WHERE id = ?",
                            (conversation_id,)).fetchone()
        if head is None:
            return None
        rows = conn.execute("SELECT * FROM exchanges WHERE seq IN (SELECT MAX(seq) FROM exchanges "
                            "WHERE conversation_id = ? GROUP BY turn) ORDER BY turn", (conversation_id,)).fetchall()
    return {**dict(head), "turns": [dict(r) for r in rows]}


def as_history(conv):
    """The app's chat history (user and assistant turns) of a stored conversation."""
    history = []
    for ex in conv["turns"] if conv else []:
        history.append({"role": "user", "content": ex["prompt"]})
        history.append({"role": "assistant", "content": ex["answer"], "reasoning": ex["reasoning"],
                        "stats": ex["stats"], "turn": ex["turn"]})
    return history


def log_rows(path=None):
    """Every generation ever stored, oldest first, as the log's rows (all text)."""
    with connect(path) as conn:
        rows = conn.execute("SELECT * FROM exchanges ORDER BY seq").fetchall()
    return [{c: _text(r[c]) for c in COLUMNS} for r in rows]


# ---- export of one conversation

def _typed(column, text):
    try:
        if column in _FLOATS:
            return float(text)
        if column in _INTS:
            return int(text)
    except ValueError:
        return text
    if column in _BOOLS and text in ("True", "False"):
        return text == "True"
    return text


def to_json(conv):
    """One conversation as JSON text: its turns with question, answer, model and figures."""
    turns = [{"turn": ex["turn"], **{c: _typed(c, ex[c]) for c in _TEXT_COLUMNS if c != "stats"}}
             for ex in conv["turns"]]
    doc = {k: conv[k] for k in ("id", "title", "created", "updated")}
    return json.dumps({**doc, "exported": now(), "turns": turns}, ensure_ascii=False, indent=2) + "\n"


def to_markdown(conv):
    """One conversation as Markdown: each question, its answer, who answered and how fast."""
    lines = [f"# {conv['title']}", "", f"Conversation `{conv['id']}`, {conv['created']} to {conv['updated']}.", ""]
    for ex in conv["turns"]:
        who = ex["model"] + (f" + {ex['adapter']}" if ex["adapter"] and ex["adapter"] != "None" else "")
        lines += [f"## Turn {ex['turn']}", "", "**You:**", "", ex["prompt"], "", f"**{who or 'Assistant'}:**", "",
                  ex["answer"] or "_(empty answer)_", ""]
        if ex["reasoning"]:
            lines += ["<details><summary>Reasoning</summary>", "", ex["reasoning"], "", "</details>", ""]
        if ex["stats"]:
            lines += [f"_{ex['stats']}_", ""]
    return "\n".join(lines)


def export_name(conv, suffix):
    safe = "".join(ch if ch.isalnum() else "-" for ch in conv["title"].lower())[:40].strip("-")
    return f"chat-{safe or 'untitled'}-{conv['id']}.{suffix}"
