"""What the benchmarks and the experiments share: the line that says where figures were
measured, variants timed in turn, and a results folder of their own with a manifest.

A script in benchmarks/ or experiments/ puts the repository on sys.path and imports
this as benchmarks.harness. It is not in omnilm/: the package runs the pipeline, and
only these scripts measure it.
"""
import shlex
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from omnilm.errors import UserError
from omnilm.paths import REPO_DIR, display, resolve, results_dir

OWNER = "harness"  # the "stage" a results folder's manifest names (omnilm.manifest.STAGES)
# folders under results/ that a stage replaces whole: stage 01's benchmark tables
STAGE_RESULTS = ("benchmark",)


def machine_line():
    """This machine as REPORT.md's "Machine:" line describes it."""
    from omnilm.benchmark_report import machine_line as line
    from omnilm.runtime import machine_summary

    return line(machine_summary())


@dataclass
class Timed:
    """One variant's runs, in order: the seconds each took and what each returned."""
    seconds: list = field(default_factory=list)
    results: list = field(default_factory=list)

    @property
    def median(self):
        return statistics.median(self.seconds)


def alternate(variants, repeats):
    """Run every variant ({name: function taking no argument}) `repeats` times, taking
    turns: the given order in the first round, reversed in the next (A B, B A, A B ...),
    so a machine that slows down or speeds up during the run weighs on every variant
    alike and none always goes first. A function must finish its work before it
    returns (mx.eval what it computes). Returns {name: Timed}."""
    if repeats < 1:
        raise UserError(f"repeats must be at least 1, not {repeats}")
    names = list(variants)
    timed = {name: Timed() for name in names}
    for round_ in range(repeats):
        for name in names if round_ % 2 == 0 else names[::-1]:
            started = time.perf_counter()
            result = variants[name]()
            timed[name].seconds.append(time.perf_counter() - started)
            timed[name].results.append(result)
        print(f"round {round_ + 1}/{repeats}: " + ", ".join(f"{n} {timed[n].seconds[-1]:.2f} s" for n in names),
              file=sys.stderr, flush=True)
    return timed


def stage_folder_of(folder):
    """The stage's folder that `folder` is or lies inside, else None. results/ itself
    counts (stage 30 writes its eval.* there), but not the folders under it."""
    from omnilm.manifest import made_by_stage

    folder, results = Path(folder).resolve(), results_dir().resolve()
    if folder == results:
        return results
    for name in STAGE_RESULTS:  # known by name: the stage may not have run yet
        if folder == results / name or results / name in folder.parents:
            return results / name
    return next((f for f in [folder, *folder.parents] if made_by_stage(f) not in (None, OWNER)), None)


def results_folder(name, output=None):
    """Where a script writes: `output` when given, else results/<name>/. Refused when it
    is a stage's folder or inside one, where the stage's next run would delete or mix
    with what it holds. Checked before a long run starts, created by the first write."""
    from omnilm.atomic import check_folder_name

    folder = check_folder_name(resolve(output) if output else results_dir() / name)
    owner = stage_folder_of(folder)
    if owner is not None:
        where = "a stage's folder" if owner == folder.resolve() else f"inside a stage's folder, {display(owner)}"
        raise UserError(f"{display(folder)} is {where}: the stage's next run may replace what is written there; "
                        f"pick another --output, such as results/{name}")
    if folder.exists() and not folder.is_dir():
        raise UserError(f"{display(folder)} is not a folder; pick another --output")
    return folder


def git_commit():
    """The commit the scripts run from, with a note when tracked files differ from it;
    None where git cannot tell."""
    def git(*args):
        return subprocess.run(["git", "-C", str(REPO_DIR), *args], capture_output=True, text=True, timeout=30)

    try:
        head, changed = git("rev-parse", "HEAD"), git("status", "--porcelain", "--untracked-files=no")
    except (OSError, subprocess.TimeoutExpired):
        return None
    if head.returncode != 0:
        return None
    return head.stdout.strip() + (" (with uncommitted changes)" if changed.stdout.strip() else "")


def write_results_manifest(folder, name, args=None, metrics=None, inputs=None):
    """manifest.json in `folder`: which script wrote it and how (command, options,
    commit), on what machine, and its headline figures."""
    from omnilm.benchmark_report import machine_line as line
    from omnilm.manifest import write_manifest
    from omnilm.runtime import machine_summary

    machine = machine_summary()
    return write_manifest(folder, OWNER, args, inputs=inputs, metrics=metrics, name=name,
                          command=shlex.join([sys.executable, *sys.argv]), commit=git_commit(),
                          machine=machine, machine_line=line(machine))
