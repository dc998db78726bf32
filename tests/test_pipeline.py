"""The top-level pipeline: which stages run, which are skipped, and bad inputs stopping at once."""
import json
import subprocess
import sys
from pathlib import Path

import pytest

from omnilm.errors import UserError
from omnilm.pipeline import Stage, StageFailed, demo_plan, run_stages

REPO = Path(__file__).resolve().parents[1]

# A stage script: appends its name to a run log, then writes its output folder with a manifest.
STAGE_SCRIPT = """
import json, sys, pathlib
out, log, fail = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2]), sys.argv[3] == "fail"
with open(log, "a") as f:
    f.write(out.name + "\\n")
if fail:
    sys.exit(3)
out.mkdir(exist_ok=True)
(out / "manifest.json").write_text(json.dumps({"stage": out.name, "args": sys.argv[4:]}))
"""


@pytest.fixture
def chain(tmp_path):
    script = tmp_path / "stage.py"
    script.write_text(STAGE_SCRIPT)
    log = tmp_path / "runs.log"

    def make(option="x", fail_b=False):
        a, b, c = (tmp_path / n for n in ("a", "b", "c"))
        return [Stage("a", str(script), [a, log, "ok", option], writes=[a]),
                Stage("b", str(script), [b, log, "fail" if fail_b else "ok"], reads=[a], writes=[b]),
                Stage("c", str(script), [c, log, "ok"], reads=[b], writes=[c])]

    def runs():
        return log.read_text().split() if log.exists() else []

    return make, runs


def _quiet(*_):
    pass


def test_second_run_skips_everything(chain):
    make, runs = chain
    first = run_stages(make(), log=_quiet)
    assert [what for _, what, _ in first] == ["ran"] * 3 and runs() == ["a", "b", "c"]
    second = run_stages(make(), log=_quiet)
    assert [what for _, what, _ in second] == ["skipped"] * 3 and runs() == ["a", "b", "c"]


def test_changed_option_reruns_the_stage_and_what_reads_it(chain):
    make, runs = chain
    run_stages(make(), log=_quiet)
    done = run_stages(make(option="y"), log=_quiet)
    # a's output changed, so b (which reads it) runs again; b wrote what it wrote before, so c is left alone
    assert [what for _, what, _ in done] == ["ran", "ran", "skipped"]
    assert runs() == ["a", "b", "c", "a", "b"]


def test_an_edited_config_section_reruns_its_stage_only(tmp_path):
    """The --config path is the same from run to run; what counts is the options a stage
    reads from it: its own section and the top-level ones."""
    script, log, config = tmp_path / "stage.py", tmp_path / "runs.log", tmp_path / "my.yaml"
    script.write_text(STAGE_SCRIPT)
    a, b = tmp_path / "a", tmp_path / "b"
    stages = [Stage("a", str(script), [a, log, "ok", "--config", config], writes=[a]),
              Stage("b", str(script), [b, log, "ok", "--config", config], reads=[a], writes=[b])]

    def ran(text):
        config.write_text(text)
        return [name for name, what, _ in run_stages(stages, log=_quiet) if what == "ran"]

    assert ran("a: {lr: 1}\nb: {lr: 1}\n") == ["a", "b"]
    assert ran("a: {lr: 1}\nb: {lr: 1}\n# a comment\n") == []
    assert ran("a: {lr: 1}\nb: {lr: 2}\n") == ["b"]
    assert ran("a: {lr: 3}\nb: {lr: 2}\n") == ["a"]  # a wrote the same manifest, so b stays done
    assert ran("seed: 1\na: {lr: 3}\nb: {lr: 2}\n") == ["a", "b"]
    named = tmp_path / "rephrasings.jsonl"
    named.write_text("one\n")
    assert ran(f"seed: 1\na: {{lr: 3, file: {named}}}\nb: {{lr: 2}}\n") == ["a"]
    named.write_text("two\n")  # a file an option names counts by its content
    assert ran(f"seed: 1\na: {{lr: 3, file: {named}}}\nb: {{lr: 2}}\n") == ["a"]


def test_from_and_force(chain):
    make, runs = chain
    run_stages(make(), log=_quiet)
    run_stages(make(), start_from="b", log=_quiet)
    assert runs() == ["a", "b", "c", "b", "c"]
    run_stages(make(), force=True, log=_quiet)
    assert runs()[-3:] == ["a", "b", "c"]
    with pytest.raises(UserError, match="no such stage"):
        run_stages(make(), start_from="nope", log=_quiet)


def test_failed_stage_stops_and_the_rerun_resumes_there(chain, tmp_path):
    make, runs = chain
    with pytest.raises(StageFailed, match="stage b failed"):
        run_stages(make(fail_b=True), log=_quiet)
    assert runs() == ["a", "b"] and not (tmp_path / "c").exists()
    done = run_stages(make(), log=_quiet)
    assert [what for _, what, _ in done] == ["skipped", "ran", "ran"]


def test_a_manifest_without_the_key_is_not_taken_as_done(chain, tmp_path):
    """An output written by hand (or by an interrupted run of another version) is redone."""
    make, runs = chain
    run_stages(make(), log=_quiet)
    m = tmp_path / "b" / "manifest.json"
    data = json.loads(m.read_text())
    del data["pipeline_key"]
    m.write_text(json.dumps(data))
    done = run_stages(make(), log=_quiet)
    # b ran again and wrote the same manifest, so c (keyed on b's manifest) stays up to date
    assert [what for _, what, _ in done] == ["skipped", "ran", "skipped"]


def test_a_stage_redone_at_another_speed_leaves_the_next_one_up_to_date(chain, tmp_path):
    """The stages after an input key on what it holds, not on how long it took."""
    make, runs = chain
    run_stages(make(), log=_quiet)
    m = tmp_path / "b" / "manifest.json"
    data = json.loads(m.read_text())
    m.write_text(json.dumps({**data, "pipeline_seconds": data["pipeline_seconds"] + 12.3}))
    assert [what for _, what, _ in run_stages(make(), log=_quiet)] == ["skipped"] * 3
    m.write_text(json.dumps({**data, "args": ["something else"]}))  # what b holds changed: c is redone
    assert [what for _, what, _ in run_stages(make(), log=_quiet)] == ["skipped", "skipped", "ran"]


def test_demo_plan_chains_each_stage_to_the_previous_outputs(project_root):
    stages = {s.name: s for s in demo_plan()}
    assert list(stages)[:3] == ["demo", "demo-pdf", "extract"] and list(stages)[-1] == "eval"
    written = {str(w) for s in stages.values() for w in s.writes}
    for name in ("quantize", "benchmark", "cpt", "qa", "sft", "eval"):
        for read in stages[name].reads:
            assert str(read) in written or Path(read).is_relative_to(REPO), (name, read)


def _pipeline(*args, root):
    env = {"OMNILM_ROOT": str(root), "PATH": "/usr/bin:/bin"}
    return subprocess.run([sys.executable, "-m", "omnilm.pipeline", *args], capture_output=True, text=True,
                          env=env, cwd=REPO, timeout=120)


def test_bad_pdf_or_source_stops_at_once(project_root, tmp_path):
    not_pdf = tmp_path / "paper.pdf"
    not_pdf.write_text("plain text, not a PDF")
    omni = project_root / "models" / "omni"
    omni.mkdir()
    (omni / "config.json").write_text(json.dumps({"model_type": "llama"}))
    cases = [
        (["--source", str(omni), "--pdf", str(not_pdf)], "is already a text model"),
        (["--source", str(tmp_path / "nope"), "--pdf", str(not_pdf)], "does not exist"),
        (["--source", str(omni)], "needs --pdf too"),
        (["--golden", str(not_pdf)], "belongs to your paper"),
        (["--pdf", str(not_pdf)], "is not a PDF"),
    ]
    for args, message in cases:
        r = _pipeline(*args, root=project_root)
        assert r.returncode == 2, r.stderr
        assert message in r.stderr and "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1
    sizes = {"hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4, "intermediate_size": 128,
             "vocab_size": 256}
    (omni / "config.json").write_text(json.dumps({"model_type": "vlm", "text_config": {"model_type": "llama",
                                                                                       **sizes}}))
    r = _pipeline("--source", str(omni), "--pdf", str(not_pdf), root=project_root)
    assert r.returncode == 2 and "is not a PDF" in r.stderr
    assert sorted(p.name for p in (project_root / "models").iterdir()) == ["omni"]  # nothing started


def test_a_paper_of_your_own_never_gets_the_demo_papers_pairs_or_questions(project_root, tmp_path):
    """--pdf without --source teaches the demo model your paper: the demo PDF is not
    rendered over it, and neither the demo's golden pairs nor its questions reach
    stage 10, stage 20 or the evaluation; the held-out facts and the controls do. Pairs
    and questions found beside the paper by name are used instead."""
    from omnilm.facts import FACTS_FILE
    from omnilm.paths import CONTROL_QUESTIONS, DEMO_GOLDEN, DEMO_QUESTIONS
    from omnilm.pipeline import demo_plan
    from omnilm.probes import CLOZE_FILE, INDEPENDENT_FILE

    def args_of(stages, name):
        return [str(a) for a in next(s for s in stages if s.name == name).args]

    paper = tmp_path / "mine.pdf"
    paper.write_bytes(b"%PDF-1.4\n")
    stages = demo_plan(None, paper)
    assert [s.name for s in stages][:2] == ["demo", "extract"]  # the demo model, no demo PDF written over yours
    every_arg = [a for s in stages for a in map(str, s.args)]
    every_read = [str(r) for s in stages for r in s.reads]
    for demo_input in (DEMO_GOLDEN, DEMO_QUESTIONS):
        assert str(demo_input) not in every_arg + every_read
    qa = args_of(stages, "qa")
    assert qa[qa.index("--golden") + 1] == "none" and qa[qa.index("--questions") + 1] == "none"
    prepare = args_of(stages, "prepare")
    assert prepare[prepare.index("--golden") + 1] == "none"
    evaluation = args_of(stages, "eval")
    asked = evaluation[evaluation.index("--questions") + 1:evaluation.index("--facts")]
    mine = project_root / "data" / "cpt" / "mine"
    # no template-made question: the forms no training row has, the probes and the broad control
    assert asked == [str(mine / INDEPENDENT_FILE), str(mine / CLOZE_FILE), str(CONTROL_QUESTIONS)]
    assert evaluation[evaluation.index("--facts") + 1] == str(mine / FACTS_FILE)
    assert evaluation[evaluation.index("--training-data") + 1:] == [str(mine), str(project_root / "data" / "sft" / "mine")]

    golden, questions = tmp_path / "mine.golden.jsonl", tmp_path / "mine.questions.jsonl"
    golden.write_text("{}\n")
    questions.write_text("{}\n")
    stages = demo_plan(None, paper)
    assert args_of(stages, "qa")[args_of(stages, "qa").index("--golden") + 1] == str(golden)
    assert str(questions) in args_of(stages, "eval") and str(golden) in args_of(stages, "prepare")
    stages = demo_plan(None, paper, golden="none", questions="NONE")  # said outright: the files beside are not used
    assert str(golden) not in args_of(stages, "prepare") + args_of(stages, "qa")
    assert str(questions) not in args_of(stages, "eval") + args_of(stages, "qa")

    demo = demo_plan()
    assert str(DEMO_GOLDEN) in args_of(demo, "qa") and str(DEMO_QUESTIONS) in args_of(demo, "eval")
    assert "demo-pdf" in [s.name for s in demo]


@pytest.mark.parametrize("case", ["encrypted", "scanned", "truncated shard"])
def test_an_encrypted_or_scanned_pdf_or_a_bad_shard_stops_before_stage_00(case, project_root, tmp_path,
                                                                         demo_omni_model):
    """The first check makes stage 00's and stage 10's own checks: nothing runs (no
    extraction, no quantization replacing folders) before the refusal."""
    from conftest import assert_one_line_refusal

    from omnilm.pdf_writer import Page, render_paper, write_pdf

    source = project_root / "models" / "omni"
    source.mkdir()
    for f in demo_omni_model.iterdir():
        if f.name != ".stamp":
            (source / f.name).symlink_to(f)
    pdf = tmp_path / "paper.pdf"
    paper = render_paper((REPO / "10_stage1_cpt" / "demo_paper.md").read_text())[0]
    words = "paper.pdf"
    if case == "encrypted":
        page = Page()
        page.text(72, 760, "Secret text.", size=10)
        pdf.write_bytes(write_pdf([page], password_protected=True))
        words = "encrypted"
    elif case == "scanned":
        scan = Page()
        scan.box(72, 500, 450, 200, 0.5)
        pdf.write_bytes(write_pdf([scan, scan]))
        words = "no text layer"
    else:
        pdf.write_bytes(paper)
        shard = source / "model-00002-of-00004.safetensors"
        data = shard.read_bytes()
        shard.unlink()
        shard.write_bytes(data[:len(data) // 3])
        words = "truncated"
    r = _pipeline("--source", str(source), "--pdf", str(pdf), root=project_root)
    assert_one_line_refusal(r, words)
    assert "[1/" not in r.stdout, r.stdout  # no stage started
    assert sorted(p.name for p in (project_root / "models").iterdir()) == ["omni"]
    assert not any((project_root / "data").iterdir()) and not any((project_root / "results").iterdir())
