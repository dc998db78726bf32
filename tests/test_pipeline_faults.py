"""The real demo pipeline (small settings), killed during CPT and during Q&A generation,
then run again: it finishes, resumes CPT instead of restarting it, and no stage ever
takes a half-written artifact as done. A third run with nothing changed skips every
stage that records its inputs."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
# small enough for CI, big enough that each stage does its real work. Replay: 24 of the
# 191 general questions (a few answers are still kept); SFT validates at its start and
# end only; evaluation asks 2 questions of each kind. With all 191, a validation every
# 2 steps and all 57 questions, prepare took 220 s, SFT 194 s and evaluation 273 s of
# this test's 828 s (another job running beside it).
FAST = """
prepare: {replay: 24}
benchmark: {repeats: 1, prompt_tokens: 16, max_tokens: 4, perplexity_tokens: 64}
cpt: {num_layers: 2, rank: 4, iters: 8, eval_every: 2, patience: 10}
qa: {per_chunk: 1, max_tokens: 24}
sft: {iters: 4, eval_every: 4}
eval: {max_tokens: 8, per_kind: 2}
"""


def _start(root, config, *extra):
    env = {**os.environ, "OMNILM_ROOT": str(root), "PYTHONUNBUFFERED": "1"}
    log = open(root / f"run-{time.monotonic_ns()}.log", "w+")
    proc = subprocess.Popen([sys.executable, "-m", "omnilm.pipeline", "--config", str(config), *extra],
                            cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    return proc, log


def _kill_when(proc, ready, timeout=400):
    """SIGKILL the whole pipeline (stage processes too) once ready() holds."""
    deadline = time.monotonic() + timeout
    while not ready():
        assert proc.poll() is None, "the pipeline ended before the point where it was to be killed"
        assert time.monotonic() < deadline, "the kill point never came"
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def _finish(proc, log, timeout=600):
    assert proc.wait(timeout=timeout) == 0, _tail(log)
    return _tail(log, 100_000)


def _tail(log, n=4000):
    log.seek(0)
    return log.read()[-n:]


@pytest.mark.slow(seconds=170)
def test_killed_twice_then_finished(project_root, tmp_path):
    config = tmp_path / "fast.yaml"
    config.write_text(FAST)
    cpt = project_root / "adapters" / "demo_paper-cpt"
    sft_data = project_root / "data" / "sft" / "demo_paper"

    # 1. killed during CPT, after its first checkpoint
    proc, log = _start(project_root, config)
    _kill_when(proc, lambda: (cpt / "resume" / "state.json").exists())
    manifest = json.loads((cpt / "manifest.json").read_text())  # written first: the folder is the project's
    assert not manifest["complete"] and "pipeline_key" not in manifest  # unfinished: no stage may take it as done

    # 2. killed a few seconds into Q&A generation (loading the model, generating)
    proc, log = _start(project_root, config)
    _kill_when(proc, lambda: "] qa: " in _tail(log) and time.sleep(3) is None)
    assert "] qa: done" not in _tail(log) and not sft_data.exists()
    out = _tail(log, 100_000)
    assert "resuming" in out and "cpt: skipped" not in out  # CPT continued where it was killed
    assert json.loads((cpt / "manifest.json").read_text())["complete"] is True

    # 3. runs to the end, skipping what is done
    proc, log = _start(project_root, config)
    out = _finish(proc, log)
    for stage in ("extract", "quantize", "prepare", "benchmark", "cpt"):
        assert f"{stage}: skipped" in out, stage
    assert not list(sft_data.parent.glob(".demo_paper.tmp-*"))  # the killed run's leftovers are gone
    assert (sft_data / "manifest.json").exists() and (project_root / "results" / "eval.json").exists()
    report = (project_root / "results" / "REPORT.md").read_text()
    # the verdict the whole way: every kind the training never shaped, the control's bleed, the pick
    summary = json.loads((project_root / "results" / "eval.json").read_text())["metrics"]
    for kind in ("independent", "cloze", "heldout_fact", "paraphrase", "control"):
        assert summary["summary"]["sft"][f"{kind}_n"] == 2, kind
    assert "bleed" in summary["summary"]["sft"] and summary["recommended"]["stage"] in ("base", "cpt", "sft")
    assert f"**Use {summary['recommended']['stage']}**" in report and "90% Wilson interval" in report

    # 4. nothing changed: every recorded stage is skipped, fast
    started = time.monotonic()
    proc, log = _start(project_root, config)
    out = _finish(proc, log)
    assert "ran demo-pdf; skipped demo, extract, quantize, prepare, benchmark, cpt, qa, sft, eval" in out, out[-500:]
    assert time.monotonic() - started < 60


def test_a_manifest_write_that_fails_leaves_the_old_manifest_whole(tmp_path, monkeypatch):
    """write_manifest goes through a temporary file: a write that dies half way (disk
    full) leaves the previous manifest readable and no temporary file behind."""
    from omnilm.manifest import read_manifest, write_manifest

    write_manifest(tmp_path, "qa", metrics={"train": 1})
    real_write = Path.write_text

    def half_then_fail(self, text, *args, **kwargs):
        real_write(self, text[: len(text) // 2])
        raise OSError("No space left on device")

    monkeypatch.setattr(Path, "write_text", half_then_fail)
    with pytest.raises(OSError):
        write_manifest(tmp_path, "qa", metrics={"train": 2})
    monkeypatch.undo()
    assert read_manifest(tmp_path)["metrics"] == {"train": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["manifest.json"]


def test_staged_results_replace_their_namesakes_only_when_the_run_succeeds(tmp_path):
    """compare_stages writes into a shared results folder through staged_files: a run
    that fails half way changes nothing there, one that succeeds replaces its own files
    and leaves the others (REPORT.md, benchmark/) alone."""
    from omnilm.atomic import staged_files

    (tmp_path / "eval.md").write_text("old eval")
    (tmp_path / "REPORT.md").write_text("report")
    with pytest.raises(RuntimeError):
        with staged_files(tmp_path) as tmp:
            (tmp / "eval.md").write_text("half")
            raise RuntimeError("killed while scoring")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["REPORT.md", "eval.md"]
    assert (tmp_path / "eval.md").read_text() == "old eval"
    with staged_files(tmp_path) as tmp:
        (tmp / "eval.md").write_text("new eval")
        (tmp / "eval.csv").write_text("a,b")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["REPORT.md", "eval.csv", "eval.md"]
    assert (tmp_path / "eval.md").read_text() == "new eval" and (tmp_path / "REPORT.md").read_text() == "report"
