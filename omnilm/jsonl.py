"""JSON-lines files: every data set of the pipeline (chunks, train/valid, pairs, replay)."""
import json

from omnilm.errors import UserError
from omnilm.paths import display


def json_lines(path, bad_line):
    """(line number, value) for each non-blank line of a JSON-lines file, any JSON value;
    a line that is not JSON raises UserError(bad_line(n, error)), so each reader words its
    own error. The file is split at its line ends only (not str.splitlines): write_jsonl
    keeps U+2028 and other separators raw inside strings."""
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                value = json.loads(line)
            except json.JSONDecodeError as e:
                raise UserError(bad_line(n, e))
            yield n, value


def read_jsonl(path, what="file"):
    """The objects of a JSON-lines file (blank lines skipped); a bad line is one clear error."""
    rows = []
    for n, row in json_lines(path, lambda n, e: f"{what} {display(path)} line {n} is not valid JSON ({e.msg})"):
        if not isinstance(row, dict):
            raise UserError(f"{what} {display(path)} line {n} is not a JSON object")
        rows.append(row)
    return rows


def write_jsonl(path, rows):
    with open(path, "w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
