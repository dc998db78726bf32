"""A '+' in a path does not break a stage spec (name=MODEL+ADAPTER, or --adapter
name=DIR), and a relative path is taken from the current directory, as in every
command-line tool."""
import importlib.util
import os
import subprocess
import sys

import pytest

from omnilm.errors import UserError
from omnilm.evaluation import parse_stage, parse_stages
from omnilm.paths import REPO_DIR, resolve


def folder(path):
    path.mkdir(parents=True)
    (path / "config.json").write_text("{}")
    return path


def test_a_plus_in_the_project_path(tmp_path):
    model, adapter = folder(tmp_path / "run+1" / "models" / "m"), folder(tmp_path / "run+1" / "adapters" / "a+b")
    assert parse_stage(f"sft={model}+{adapter}") == ("sft", str(model), str(adapter))
    assert parse_stage(f"base={model}") == ("base", str(model), None)
    assert parse_stage("sft=m+a") == ("sft", "m", "a")  # nothing exists: the last '+'
    assert parse_stages([f"base={model}", f"sft={model}"], [f"sft={adapter}"]) == [("base", model, None),
                                                                                 ("sft", model, adapter)]
    with pytest.raises(UserError, match="no stage named cpt"):
        parse_stages([f"base={model}"], [f"cpt={adapter}"])


def test_the_pipelines_evaluation_survives_a_plus(tmp_path, monkeypatch):
    """The pipeline names each stage's adapter with --adapter, so a project folder whose
    path holds a '+' is evaluated after all the training."""
    from omnilm.pipeline import demo_plan

    root = tmp_path / "project+1"
    monkeypatch.setenv("OMNILM_ROOT", str(root))
    stage = next(s for s in demo_plan() if s.name == "eval")
    spec = importlib.util.spec_from_file_location("compare_stages", REPO_DIR / "30_evaluation" / "compare_stages.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    args = script.build_parser().parse_args([str(a) for a in stage.args if str(a) != "--config"])
    stages = parse_stages(args.stages, args.adapter)
    assert [(n, m.name, a and a.name) for n, m, a in stages] == [
        ("base", "demo-omni-Text", None), ("cpt", "demo-omni-Text", "demo_paper-cpt"),
        ("sft", "demo-omni-Text", "demo_paper-sft")]
    assert all(str(m).startswith(str(root)) for _, m, _ in stages)


def test_a_relative_path_is_taken_from_the_current_directory(tmp_path, monkeypatch):
    root, elsewhere = tmp_path / "root", tmp_path / "root" / "sub"
    elsewhere.mkdir(parents=True)
    (root / "x.pdf").write_text("the file next to sub/")
    (tmp_path / "x.pdf").write_text("another file, at root/../x.pdf")
    monkeypatch.setenv("OMNILM_ROOT", str(root))
    monkeypatch.chdir(elsewhere)
    assert resolve("../x.pdf").read_text() == "the file next to sub/"
    assert resolve("x.pdf") == elsewhere / "x.pdf"
    # and a script run from the subfolder reads the file the user means
    env = {**os.environ, "OMNILM_ROOT": str(root)}
    code = "from omnilm.paths import resolve; print(resolve('../x.pdf').read_text())"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=elsewhere, env=env)
    assert r.stdout.strip() == "the file next to sub/", r.stderr
