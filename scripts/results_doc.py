"""docs/results.md from results/REPORT.md: the latest pipeline run's figures under a
short header (the machine, the commit, the date), made by a command, never by hand.

Examples:
  ./run_pipeline.sh && .venv/bin/python scripts/results_doc.py   # run, then refresh docs/results.md
  OMNILM_ROOT=../other-checkout .venv/bin/python scripts/results_doc.py --output docs/results.md

The machine is the report's own "Machine:" line (where the figures were measured);
the commit is that of the checkout the report lies in (the project root, else this
script's); the date is when the report was written. The page's links reach the run's
artifacts (results/, adapters/, ...), which are not committed. Without a
results/REPORT.md it stops with one line and writes nothing.
"""
import argparse
import datetime as dt
import platform
import posixpath
import re
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from anywhere, like the stage scripts

from omnilm.atomic import write_text_atomic  # noqa: E402
from omnilm.errors import UserError, run_main  # noqa: E402
from omnilm.paths import REPO_DIR, display, report_file, resolve, root  # noqa: E402

LINK = re.compile(r"(\]\()([^)\s]+)(\))")  # a Markdown link's or picture's target
TO_RESULTS = "../results"  # the way from docs/ to results/ in a checkout


def machine_line(report_lines):
    """The report's "Machine: ..." line without its label, else this machine's."""
    for line in report_lines:
        if line.startswith("Machine:"):
            return line.split(":", 1)[1].strip()
    from omnilm.runtime import cpu_model

    return f"{platform.system()} {platform.machine()}, {cpu_model()} (this machine: the report names none)"


def commit():
    """The short commit of the checkout the report lies in (the project root when it is
    a git checkout, else this script's), with a note when tracked files differ from it."""
    checkout = root() if (root() / ".git").exists() else REPO_DIR

    def git(*args):
        return subprocess.run(["git", "-C", str(checkout), *args], capture_output=True, text=True, timeout=30)

    try:
        head = git("rev-parse", "--short", "HEAD")
        changed = git("status", "--porcelain", "--untracked-files=no")
    except (OSError, subprocess.TimeoutExpired):
        return "unknown (no git)"
    if head.returncode != 0:
        return "unknown (not a git checkout)"
    return head.stdout.strip() + (" (with uncommitted changes)" if changed.stdout.strip() else "")


def relink(line, prefix=TO_RESULTS):
    """A report line with its relative link targets made relative to docs/ (`prefix`
    is the way from docs/ to results/); web links and anchors stay as they are."""
    def fix(m):
        target = m.group(2)
        if re.match(r"^([a-z][a-z0-9+.-]*:|#|/)", target, re.I):
            return m.group(0)
        return f"{m.group(1)}{posixpath.normpath(prefix + '/' + target)}{m.group(3)}"
    return LINK.sub(fix, line)


def results_doc(report):
    """The page's text for `report` (a REPORT.md), as it reads from docs/."""
    lines = report.read_text().splitlines()
    written = dt.datetime.fromtimestamp(report.stat().st_mtime, dt.timezone.utc)
    head = ["# Results", "",
            f"The figures of the latest pipeline run, copied from `{display(report)}` by "
            "`scripts/results_doc.py`: edit neither by hand, rerun the pipeline and the script. Its links "
            "reach the run's artifacts (`results/`, `adapters/`...), which are not committed.", "",
            f"- Machine: {machine_line(lines)}",
            f"- Commit: {commit()}",
            f"- Date: {written:%Y-%m-%d %H:%M} UTC (when the report was written)", ""]
    body = [("#" + line if line.startswith("#") else relink(line)) for line in lines]
    return "\n".join(head + body) + "\n"


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--output", help="the page to write (default: docs/results.md in the project root)")
    args = p.parse_args()
    report = report_file()
    output = resolve(args.output) if args.output else root() / "docs" / "results.md"
    if not report.is_file():
        raise UserError(f"{display(report)} does not exist; run ./run_pipeline.sh first, it writes the report")
    write_text_atomic(output, results_doc(report))
    print(f"wrote {display(output)} from {display(report)}")


if __name__ == "__main__":
    run_main(main)
