"""scripts/results_doc.py: docs/results.md made from results/REPORT.md (header with the
machine, the commit and the date, then the report), and one line without a report."""
import calendar
import os
import subprocess
import sys

from conftest import assert_one_line_refusal

from omnilm.paths import REPO_DIR

REPORT = """# Pipeline report

Machine: platform Linux x86_64, cpu Test CPU 9000, cores 2, mlx_device cpu

## Stages

| stage | what | time | key figures | artifact |
|---|---|---|---|---|
| sft | SFT | 366s | steps: 144 | [adapters/demo_paper-sft](../adapters/demo_paper-sft/manifest.json) |

All answers: [eval.md](eval.md), the source: [mlx](https://github.com/ml-explore/mlx)

## Charts

![results/eval.png](eval.png)
"""


def run(root, *args):
    env = {**os.environ, "OMNILM_ROOT": str(root)}
    return subprocess.run([sys.executable, str(REPO_DIR / "scripts" / "results_doc.py"), *args], capture_output=True,
                          text=True, env=env, cwd=root, timeout=120)


def head_commit():
    r = subprocess.run(["git", "-C", str(REPO_DIR), "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    return r.stdout.strip()


def test_results_doc_from_a_planted_report(project_root):
    report = project_root / "results" / "REPORT.md"
    report.write_text(REPORT)
    written = calendar.timegm((2026, 12, 8, 2, 30, 0))  # 2026-12-08 02:30 UTC
    os.utime(report, (written, written))
    r = run(project_root)
    assert r.returncode == 0, r.stderr
    page = (project_root / "docs" / "results.md").read_text()
    lines = page.splitlines()
    assert lines[0] == "# Results"
    assert "- Machine: platform Linux x86_64, cpu Test CPU 9000, cores 2, mlx_device cpu" in lines
    assert any(line.startswith(f"- Commit: {head_commit()}") for line in lines), page
    assert "- Date: 2026-12-08 02:30 UTC (when the report was written)" in lines
    # the report follows whole, its headings one level down and its links made to reach results/ from docs/
    assert "## Pipeline report" in lines and "### Stages" in lines and "### Charts" in lines
    assert "[eval.md](../results/eval.md)" in page and "![results/eval.png](../results/eval.png)" in page
    assert "(../adapters/demo_paper-sft/manifest.json)" in page
    assert "[mlx](https://github.com/ml-explore/mlx)" in page
    assert "| sft | SFT | 366s | steps: 144 |" in page
    assert sorted(p.name for p in (project_root / "docs").iterdir()) == ["results.md"]  # no temporary file left
    assert "wrote docs/results.md" in r.stdout
    # --output: the same page elsewhere (another checkout's docs/)
    assert run(project_root, "--output", "elsewhere/results.md").returncode == 0
    assert (project_root / "elsewhere" / "results.md").read_text() == page


def test_results_doc_refuses_without_a_report(project_root):
    r = run(project_root)
    assert_one_line_refusal(r, "results/REPORT.md does not exist", "./run_pipeline.sh")
    assert not (project_root / "docs").exists()
