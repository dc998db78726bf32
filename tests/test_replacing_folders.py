"""One rule for replacing a folder: a stage replaces only a folder this project made
(its manifest.json names a stage), and only with --force; a user's folder survives
byte for byte, with or without --force, and the refusal is one line. Names that are
empty, '.' or '..' (a paper '..pdf') never become an output."""
import json
import os
import subprocess
import sys

import pytest
from conftest import assert_one_line_refusal, plant_user_folder, snapshot

from omnilm.atomic import check_output, staged_dir
from omnilm.errors import UserError
from omnilm.paths import REPO_DIR
from omnilm.pdf_writer import render_paper

DEMO_MD = (REPO_DIR / "10_stage1_cpt" / "demo_paper.md").read_text()


def run(script, *args, root):
    env = {**os.environ, "OMNILM_ROOT": str(root)}
    return subprocess.run([sys.executable, str(REPO_DIR / script), *map(str, args)], capture_output=True, text=True,
                          env=env, cwd=root, timeout=300)


def pipeline(*args, root):
    env = {**os.environ, "OMNILM_ROOT": str(root)}
    return subprocess.run([sys.executable, "-m", "omnilm.pipeline", *map(str, args)], capture_output=True, text=True,
                          env=env, cwd=REPO_DIR, timeout=300)


def test_the_rule(tmp_path):
    user, ours, empty, a_file = (tmp_path / n for n in ("user", "ours", "empty", "file"))
    mine = plant_user_folder(user)
    ours.mkdir()
    (ours / "manifest.json").write_text(json.dumps({"stage": "prepare"}))
    empty.mkdir()
    a_file.write_text("a file of the user's")
    for force in (False, True):
        for path, words in ((user, "did not make"), (a_file, "is not a folder this project made"),
                            (tmp_path / "x" / "..", "does not name a folder of its own")):
            with pytest.raises(UserError, match=words) as refused:
                with staged_dir(path, force=force):
                    pass
            assert "\n" not in str(refused.value)
    with pytest.raises(UserError, match="already exists; pass --force"):
        check_output(ours)
    assert snapshot(user) == mine and a_file.read_text() == "a file of the user's"
    for path, force in ((ours, True), (empty, False), (tmp_path / "new", False)):
        with staged_dir(path, force=force) as tmp:
            (tmp / "manifest.json").write_text(json.dumps({"stage": "qa"}))
        assert os.listdir(path) == ["manifest.json"]
    # a manifest of something else (another tool's, or not JSON) is no stage's
    for text in ('{"stage": "my-own-step"}', '["stage"]', "not json"):
        (user / "manifest.json").write_text(text)
        with pytest.raises(UserError, match="did not make"):
            check_output(user, force=True)


def test_benchmark_never_deletes_a_users_output_or_results(tiny_model, project_root):
    """`benchmark.py --output results` wiped results/ (eval.*, REPORT.md, .gitkeep): it
    called staged_dir(force=True). Now it has --force, and the rule, like every stage."""
    results = project_root / "results"
    mine = {"results": plant_user_folder(results, **{"eval.md": "| stage |", "REPORT.md": "# report", ".gitkeep": ""}),
            "mine": plant_user_folder(project_root / "mine")}
    for output in mine:
        for force in ([], ["--force"]):
            r = run("01_quantize/benchmark.py", "--models", tiny_model, "--output", output, "--repeats", 1,
                    *force, root=project_root)
            assert_one_line_refusal(r, f"results folder {output} holds files this project did not make")
            assert "[1/" not in r.stdout  # refused before measuring
    assert {name: snapshot(project_root / name) for name in mine} == mine


def test_a_paper_named_dot_pdf_never_makes_data_cpt_its_output(project_root):
    """'..pdf' gave the paper stem '.', so data/cpt itself was the output and every other
    paper's data was deleted; '...pdf' gave '..' (data/) and a traceback."""
    other = project_root / "data" / "cpt" / "other"
    other.mkdir(parents=True)
    (other / "manifest.json").write_text(json.dumps({"stage": "prepare"}))
    (other / "train.jsonl").write_text('{"text": "another paper"}\n')
    before = snapshot(project_root / "data")
    for name in ("..pdf", "...pdf"):
        pdf = project_root / "papers" / name
        pdf.parent.mkdir(exist_ok=True)
        pdf.write_bytes(render_paper(DEMO_MD)[0])
        for force in ([], ["--force"]):
            r = run("10_stage1_cpt/prepare_data.py", "--pdf", pdf, "--replay", 0, *force, root=project_root)
            assert_one_line_refusal(r, f"the paper {name} gives the folder name", "rename it")
        r = pipeline("--pdf", pdf, root=project_root)
        assert_one_line_refusal(r, f"the paper {name} gives the folder name")
        assert snapshot(project_root / "data") == before
        assert not [p for p in project_root.rglob("*.tmp-*")]
    assert sorted(os.listdir(project_root / "models")) == []  # the pipeline stopped before stage 00


def test_prepare_never_replaces_a_users_output(project_root):
    pdf = project_root / "paper.pdf"
    pdf.write_bytes(render_paper(DEMO_MD)[0])
    mine = plant_user_folder(project_root / "mine")
    for force in ([], ["--force"]):
        r = run("10_stage1_cpt/prepare_data.py", "--pdf", pdf, "--output", "mine", "--replay", 0, *force,
                root=project_root)
        assert_one_line_refusal(r, "output mine holds files this project did not make", "pick another --output")
        assert snapshot(project_root / "mine") == mine


def test_the_pipeline_refuses_a_users_text_model_folder_before_stage_00(demo_omni_model, project_root):
    """`./run_pipeline.sh --source X` replaced the user's own X-Text folder (every stage
    is run with --force); now the pipeline checks each output before any stage runs."""
    source = project_root / "models" / "X"
    source.mkdir()
    for f in demo_omni_model.iterdir():  # a whole source: the first check reads its shards too
        if f.name != ".stamp":
            (source / f.name).symlink_to(f)
    pdf = project_root / "paper.pdf"
    pdf.write_bytes(render_paper(DEMO_MD)[0])
    mine = plant_user_folder(project_root / "models" / "X-Text")
    for force in ([], ["--force"]):
        r = pipeline("--source", source, "--pdf", pdf, *force, root=project_root)
        assert_one_line_refusal(r, "the extract stage's output models/X-Text holds files this project did not make")
        assert snapshot(project_root / "models" / "X-Text") == mine
    assert sorted(os.listdir(project_root / "models")) == ["X", "X-Text"] and not os.listdir(project_root / "data")


def test_training_never_clears_a_users_adapter_path(project_root):
    """`train_cpt.py --adapter-path DIR --force` on a user's folder deleted its resume/
    (a cv.pdf in it), manifest.json and losses.csv: our file names, not our files."""
    data = project_root / "data" / "cpt" / "paper"
    data.mkdir(parents=True)
    for split in ("train", "valid"):
        (data / f"{split}.jsonl").write_text('{"text": "the cat sat on the mat"}\n')
    (data / "manifest.json").write_text(json.dumps({"stage": "prepare", "args": {"model": "models/none"}}))
    folder = project_root / "mine"
    mine = plant_user_folder(folder, **{"resume/cv.pdf": "my cv", "manifest.json": '{"title": "my notes"}',
                                        "losses.csv": "week,kg\n1,80\n"})
    for flags in ([], ["--force"], ["--resume"], ["--force", "--resume"]):
        r = run("10_stage1_cpt/train_cpt.py", "--data", data, "--adapter-path", folder, *flags, root=project_root)
        assert_one_line_refusal(r, "--adapter-path mine is not an adapter folder this project made",
                                "even with --force", "pick another --adapter-path")
        assert snapshot(folder) == mine
    r = run("10_stage1_cpt/train_cpt.py", "--data", data, "--adapter-path", folder / "resume" / "..", "--force",
            root=project_root)
    assert_one_line_refusal(r, "does not name a folder of its own")
    assert snapshot(folder) == mine


def test_which_adapter_folders_a_training_run_may_write_into(tmp_path):
    from omnilm.adapters import check_adapter_path

    def folder(name, **files):
        (tmp_path / name).mkdir()
        for path, text in files.items():
            (tmp_path / name / path).parent.mkdir(parents=True, exist_ok=True)
            (tmp_path / name / path).write_text(text)
        return tmp_path / name

    ours = [folder("empty"), folder("trained", **{"manifest.json": '{"stage": "sft", "complete": true}'}),
            folder("started", **{"manifest.json": '{"stage": "cpt", "complete": false}'}),
            # killed by an older version, which wrote the manifest last: its checkpoint says it is ours
            folder("killed", **{"adapter_config.json": "{}", "resume/state.json": '{"setup": {}, "iteration": 4}'})]
    for path in ours:
        assert check_adapter_path(path) == path
    data = folder("data", **{"manifest.json": '{"stage": "prepare"}', "train.jsonl": "{}\n"})  # ours, no adapter
    user = folder("user", **{"resume/state.json": '{"mine": 1}', "manifest.json": "{}", "losses.csv": "1\n"})
    (tmp_path / "a-file").write_text("mine")
    for path in (data, user, tmp_path / "a-file"):
        with pytest.raises(UserError, match="not an adapter folder this project made"):
            check_adapter_path(path)
