"""docs/results.md from results/REPORT.md: the latest pipeline run's figures under a
short header (the machine, the commit, the date), made by a command, never by hand.

Examples:
  ./run_pipeline.sh && .venv/bin/python scripts/results_doc.py   # run, then refresh docs/results.md

The machine is the report's own "Machine:" line (where the figures were measured);
the commit is this checkout's (run it on the commit that made the report); the date
is when the report was written. Links in the report point into results/, which is
not committed. Without a results/REPORT.md it stops with one line and writes nothing.
"""
import argparse
import datetime as dt
import os
import platform
import re
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from anywhere, like the stage scripts

from omnilm.atomic import write_text_atomic  # noqa: E402
from omnilm.errors import UserError, run_main  # noqa: E402
from omnilm.paths import REPO_DIR, display, results_dir, root  # noqa: E402

LINK = re.compile(r"(\]\()([^)\s]+)(\))")  # a Markdown link's or picture's target


def docs_file():
    return root() / "docs" / "results.md"


def machine_line(report_lines):
    """The report's "Machine: ..." line without its label, else this machine's."""
    for line in report_lines:
        if line.startswith("Machine:"):
            return line.split(":", 1)[1].strip()
    from omnilm.runtime import cpu_model

    return f"{platform.system()} {platform.machine()}, {cpu_model()} (this machine: the report names none)"


def commit():
    """This checkout's short commit, with a note when tracked files differ from it."""
    def git(*args):
        return subprocess.run(["git", "-C", str(REPO_DIR), *args], capture_output=True, text=True, timeout=30)

    try:
        head = git("rev-parse", "--short", "HEAD")
        changed = git("status", "--porcelain", "--untracked-files=no")
    except (OSError, subprocess.TimeoutExpired):
        return "unknown (no git)"
    if head.returncode != 0:
        return "unknown (not a git checkout)"
    return head.stdout.strip() + (" (with uncommitted changes)" if changed.stdout.strip() else "")


def relink(line, prefix):
    """A report line with its relative link targets made relative to docs/ (`prefix`
    is the way from docs/ to results/); web links and anchors stay as they are."""
    def fix(m):
        target = m.group(2)
        if re.match(r"^([a-z][a-z0-9+.-]*:|#|/)", target, re.I):
            return m.group(0)
        return f"{m.group(1)}{prefix}/{target}{m.group(3)}"
    return LINK.sub(fix, line)


def results_doc(report, output):
    """The page's text for `report` (a REPORT.md) to be written at `output`."""
    lines = report.read_text().splitlines()
    written = dt.datetime.fromtimestamp(report.stat().st_mtime, dt.timezone.utc)
    prefix = Path(os.path.relpath(report.parent.resolve(), output.parent.resolve())).as_posix()
    head = ["# Results", "",
            f"The figures of the latest pipeline run, copied from `{display(report)}` by "
            "`scripts/results_doc.py`: edit neither by hand, rerun the pipeline and the script.", "",
            f"- Machine: {machine_line(lines)}",
            f"- Commit: {commit()}",
            f"- Date: {written:%Y-%m-%d %H:%M} UTC (when the report was written)", ""]
    body = [("#" + line if line.startswith("#") else relink(line, prefix)) for line in lines]
    return "\n".join(head + body) + "\n"


def main():
    argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter).parse_args()
    report, output = results_dir() / "REPORT.md", docs_file()
    if not report.is_file():
        raise UserError(f"{display(report)} does not exist; run ./run_pipeline.sh first, it writes the report")
    write_text_atomic(output, results_doc(report, output))
    print(f"wrote {display(output)} from {display(report)}")


if __name__ == "__main__":
    run_main(main)
