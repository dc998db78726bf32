"""results/REPORT.md: one page over the stages' manifests (figures, times, pictures)."""
import json
import os
from pathlib import Path

from omnilm.atomic import write_text_atomic
from omnilm.evaluation import OPEN_BOOK, summary_table, verdict_lines
from omnilm.manifest import read_manifest
from omnilm.paths import display, results_dir


def _rel(path, base):
    return os.path.relpath(Path(path).resolve(), Path(base).resolve())


def _figures(metrics, limit=10):
    """The scalar metrics of a manifest, as 'key: value' items."""
    items = []
    for k, v in metrics.items():
        if isinstance(v, (int, float, str, bool)) and len(items) < limit and len(str(v)) < 80:
            items.append(f"{k}: {round(v, 4) if isinstance(v, float) else v}")
    return ", ".join(items)


def write_report(stages, out=None):
    from omnilm.runtime import machine_summary

    out = Path(out or results_dir())
    out.mkdir(parents=True, exist_ok=True)
    report = out / "REPORT.md"
    machine = machine_summary()
    lines = ["# Pipeline report", "",
             "Machine: " + ", ".join(f"{k} {v}" for k, v in machine.items()), "",
             "## Stages", "", "| stage | what | time | key figures | artifact |", "|---|---|---|---|---|"]
    pictures = []
    for stage in stages:
        for target in stage.writes:
            target = Path(target)
            folder = target if target.is_dir() else target.parent
            m = read_manifest(folder) if target.is_dir() else (json.loads(target.read_text()) if target.exists() else {})
            if not m:
                lines.append(f"| {stage.name} | {stage.title} | - | not run | {display(target)} |")
                continue
            secs = m.get("pipeline_seconds")
            figures = _figures(m.get("metrics", {}))
            lines.append(f"| {stage.name} | {stage.title} | {f'{secs:.0f}s' if secs else '-'} | {figures} | "
                         f"[{display(target)}]({_rel(target, out)}) |")
            pictures += [p for p in sorted(folder.glob("*.png")) if target.is_dir()]
    bench = next((Path(w) for s in stages if s.name == "benchmark" for w in s.writes), None)
    if bench and (bench / "benchmark.md").exists():
        lines += ["", "## Quantization benchmark", ""] + (bench / "benchmark.md").read_text().splitlines()
    eval_md, eval_json = out / "eval.md", out / "eval.json"
    if eval_json.exists():
        metrics = json.loads(eval_json.read_text())["metrics"]
        summary = metrics["summary"]
        bound = ", open-book upper bound" if OPEN_BOOK in summary else ""
        lines += ["", f"## Evaluation (base vs CPT vs SFT{bound})", ""] + verdict_lines(metrics.get("recommended"))
        lines += [""] + summary_table(summary)
        lines += ["", f"All answers: [eval.md]({_rel(eval_md, out)})", ""]
        if (out / "eval.png").exists():
            pictures.append(out / "eval.png")
    if pictures:
        lines += ["", "## Charts", ""]
        lines += [f"![{display(p)}]({_rel(p, out)})" for p in pictures]
    write_text_atomic(report, "\n".join(lines) + "\n")
    return report
