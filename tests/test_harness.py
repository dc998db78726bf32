"""benchmarks/harness.py: variants timed in turn, the results folder (never a stage's)
and its manifest."""
import json
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # as the scripts in benchmarks/ and experiments/ do

from benchmarks import harness  # noqa: E402
from omnilm.errors import UserError  # noqa: E402
from omnilm.manifest import made_by_stage, write_manifest  # noqa: E402


def test_variants_take_turns_and_each_gets_its_seconds_and_median(monkeypatch):
    clock, calls = [0.0], []
    monkeypatch.setattr(harness.time, "perf_counter", lambda: clock[0])

    def variant(name, seconds):
        def run():
            calls.append(name)
            clock[0] += seconds.pop(0)  # this call's duration on the fake clock
            return f"{name}{len(calls)}"
        return run

    timed = harness.alternate({"A": variant("A", [3.0, 1.0, 2.0]), "B": variant("B", [5.0, 9.0, 4.0])}, 3)
    assert calls == ["A", "B", "B", "A", "A", "B"]  # neither always goes first
    assert timed["A"].seconds == [3.0, 1.0, 2.0] and timed["A"].median == 2.0
    assert timed["B"].seconds == [5.0, 9.0, 4.0] and timed["B"].median == 5.0
    assert timed["A"].results == ["A1", "A4", "A5"] and timed["B"].results == ["B2", "B3", "B6"]
    with pytest.raises(UserError, match="at least 1"):
        harness.alternate({"A": lambda: None}, 0)


def test_the_results_folder_is_results_name_and_never_a_stages_folder(project_root, tmp_path):
    results = project_root / "results"
    assert harness.results_folder("some_bench") == results / "some_bench"
    assert not (results / "some_bench").exists()  # made by the first write, not by the check
    assert harness.results_folder("some_bench", str(tmp_path / "elsewhere")) == tmp_path / "elsewhere"
    adapter = project_root / "adapters" / "paper-sft"
    write_manifest(adapter, "sft")
    for stage_folder in (results, results / "benchmark", results / "benchmark" / "mine", adapter, adapter / "mine"):
        with pytest.raises(UserError, match="a stage's folder"):
            harness.results_folder("some_bench", str(stage_folder))
    (results / "a_file").write_text("x")
    with pytest.raises(UserError, match="not a folder"):
        harness.results_folder("some_bench", str(results / "a_file"))


def test_the_manifest_says_what_wrote_the_folder_and_a_rerun_may_write_there_again(project_root):
    from argparse import Namespace

    folder = harness.results_folder("some_bench")
    harness.write_results_manifest(folder, "some_bench", Namespace(repeats=3, output=None), metrics={"ratio": 0.5})
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["stage"] == "harness" and made_by_stage(folder) == "harness"
    assert manifest["name"] == "some_bench" and manifest["args"] == {"repeats": 3, "output": None}
    assert manifest["metrics"] == {"ratio": 0.5} and manifest["machine_line"] == harness.machine_line()
    assert "command" in manifest and "commit" in manifest
    assert harness.results_folder("some_bench") == folder  # its own folder is no stage's


def test_extract_bench_never_takes_a_workdir_that_holds_files(tmp_path):
    """Its work folder is deleted when the run ends: a --workdir of someone's files is refused, untouched."""
    import subprocess

    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep me")
    run = subprocess.run([sys.executable, str(REPO / "benchmarks" / "extract_bench.py"), "--workdir", str(mine),
                          "--layers", "1", "--repeats", "1", "--output", str(tmp_path / "out")],
                         capture_output=True, text=True)
    assert run.returncode == 2 and "must be a new or empty folder" in run.stderr
    assert (mine / "notes.txt").read_text() == "keep me" and not (tmp_path / "out").exists()
