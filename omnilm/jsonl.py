"""JSON-lines files: every data set of the pipeline (chunks, train/valid, pairs, replay)."""
import json
from pathlib import Path

from omnilm.errors import UserError
from omnilm.paths import display


def read_jsonl(path, what="file"):
    """The objects of a JSON-lines file (blank lines skipped); a bad line is one clear error."""
    rows = []
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                raise UserError(f"{what} {display(path)} line {n} is not valid JSON ({e.msg})")
            if not isinstance(row, dict):
                raise UserError(f"{what} {display(path)} line {n} is not a JSON object")
            rows.append(row)
    return rows


def json_lines(path, bad_line):
    """(line number, value) for each non-blank line of a JSON-lines file, any JSON value:
    for a reader that checks the rows itself and words its own errors. A line that is
    not JSON raises UserError(bad_line(n)). Lines are split by str.splitlines, as these
    readers always split them."""
    for n, line in enumerate(Path(path).read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except json.JSONDecodeError:
            raise UserError(bad_line(n))
        yield n, value


def write_jsonl(path, rows):
    with open(path, "w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
