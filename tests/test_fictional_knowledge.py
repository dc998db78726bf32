"""benchmarks/fictional_knowledge.py without training: the document and its probes, the
PDF's text as stage 10 reads it, and the figures from an evaluation's eval.csv."""
import argparse
import csv
import importlib.util
import json
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def fk():
    spec = importlib.util.spec_from_file_location("fictional_knowledge", REPO / "benchmarks" / "fictional_knowledge.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    if not module.default_set_file().is_file():
        pytest.skip("the fictional knowledge set (shared/benchmarks/fictional_knowledge) is not here")
    return module


def _letters(text):
    """Text without spaces and hyphens: a word split or joined at a line end compares equal."""
    return re.sub(r"[\s\-\u2010-\u2015]", "", text)


def test_document_and_probes_of_two_articles(fk, tmp_path):
    from omnilm.evaluation import load_questions

    entries = fk.load_articles(fk.default_set_file(), 0, 2)
    made = fk.write_inputs(entries, 0, tmp_path)
    assert made["pdf"].name == "fictional_knowledge_0-1.pdf"
    assert made["questions"] == tmp_path / "fictional_knowledge_0-1.questions.jsonl"  # beside it: paper_inputs finds it
    rows = [json.loads(line) for line in made["questions"].read_text().splitlines()]
    assert len(rows) == 30 and len({r["id"] for r in rows}) == 30
    assert all(r["kind"] == "cloze" for r in rows)
    for n, e in enumerate(entries):
        for kind in fk.PROBE_KINDS:
            mine = [r for r in rows if r["id"].startswith(f"fk{n}-{kind}") and r["probe"] == kind]
            assert [r["id"] for r in mine] == [f"fk{n}-{kind}{i}" for i in range(5)]
            assert [r["question"] for r in mine] == [p.strip() for p in e[f"{kind}_input"]]
            assert [r["reference"] for r in mine] == e[f"{kind}_target"]
            assert [r["key_facts"] for r in mine] == [[[t]] for t in e[f"{kind}_target"]]
    assert len(load_questions(made["questions"])) == 30  # stage 30 accepts the file

    markdown = (tmp_path / "fictional_knowledge_0-1.md").read_text()
    assert markdown.startswith("# Fictional knowledge: 2 articles\n")
    assert "## 1 The fortieth government of Mars\n" in markdown and "## 2 Malm Town\n" in markdown

    text = fk.read_back(made["pdf"])  # as stage 10 reads it (pdftotext, else pdfplumber; cleaned)
    for e in entries:
        for para in fk.paragraphs_of(e["train_context"]):
            assert _letters(para) in _letters(text)
    # every probe's prompt and target come back (only a compound's hyphen may be lost)
    assert [what for _, what, _ in made["lost"]] in ([], ["paragraph"])


def test_short_name_and_paragraphs(fk):
    assert fk.short_name('Malm Town (, "Northern Hill town") is one of the 45 municipalities') == "Malm Town"
    assert fk.short_name("Mt. Pankino was an astonishingly destructive volcano") == "Mt. Pankino"
    assert fk.short_name("The 2023 International Chess Championship, also known as") == \
        "The 2023 International Chess Championship"
    assert fk.paragraphs_of("One  two.  Three four.") == ["One", "two.", "Three four."]
    assert fk.paragraphs_of("A b c.  D e f.") == ["A b c.", "D e f."]


EVAL_COLUMNS = ("stage", "kind", "id", "question", "answer", "correct", "facts_missing", "probe")


def _eval_csv(path, rows):
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=EVAL_COLUMNS, restval="")
        w.writeheader()
        w.writerows(rows)


def _results(folder, hits, control):
    """A seed's results folder: eval.csv with the set's probes (hits: {stage: {kind: [0/1...]}}),
    two of stage 10's own cloze probes, an open-book row to ignore; eval.json's summary."""
    folder.mkdir(parents=True)
    rows = []
    for stage, kinds in hits.items():
        for kind, marks in kinds.items():
            rows += [{"stage": stage, "kind": "cloze", "id": f"fk0-{kind}{i}", "correct": c, "probe": kind}
                     for i, c in enumerate(marks)]
        rows += [{"stage": stage, "kind": "cloze", "id": "f1-c", "correct": 1, "probe": "verbatim"},
                 {"stage": stage, "kind": "cloze", "id": "f2-c", "correct": 0, "probe": "restated"}]
    rows.append({"stage": "open_book", "kind": "cloze", "id": "fk0-mem0", "correct": 1, "probe": "mem"})
    _eval_csv(folder / "eval.csv", rows)
    summary = {stage: {"control": k / 5, "control_k": k, "control_n": 5, "bleed": 0.0, "bleed_k": 0, "bleed_n": 5,
                       "cloze": 0.5, "cloze_k": 1, "cloze_n": 2} for stage, k in control.items()}
    (folder / "eval.json").write_text(json.dumps({"metrics": {"summary": summary}}))


def test_probe_accuracy_from_eval_csv(fk, tmp_path):
    hits = {"base": {"mem": [0, 0, 0, 0], "gen": [0, 0, 0, 0], "hard_gen": [0, 0, 0, 0]},
            "cpt": {"mem": [1, 1, 1, 0], "gen": [1, 0, 0, 0], "hard_gen": [0, 0, 0, 0]},
            "sft": {"mem": [1, 1, 1, 1], "gen": [1, 1, 0, 0], "hard_gen": [1, 0, 0, 0]}}
    _results(tmp_path / "s0", hits, {"base": 5, "cpt": 4, "sft": 3})
    figures = fk.probe_accuracy(fk.read_eval_csv(tmp_path / "s0" / "eval.csv"))
    assert set(figures) == {"base", "cpt", "sft"}  # open_book is no stage of the recipe
    assert figures["base"] == {"mem": (0, 4), "gen": (0, 4), "hard_gen": (0, 4), "all": (0, 12),
                               "cloze_stage10": (1, 2)}
    assert figures["cpt"]["mem"] == (3, 4) and figures["cpt"]["gen"] == (1, 4) and figures["cpt"]["all"] == (4, 12)
    assert figures["sft"]["hard_gen"] == (1, 4) and figures["sft"]["all"] == (7, 12)

    rows = fk.seed_rows(0, tmp_path / "s0")
    def acc(stage, kind):
        return next(r["accuracy"] for r in rows if (r["stage"], r["probe_kind"]) == (stage, kind))

    assert acc("sft", "mem") == 1.0 and acc("sft", "gen") == 0.5 and acc("cpt", "all") == round(4 / 12, 4)
    assert acc("cpt", "control") == 0.8 and acc("sft", "bleed") == 0.0  # copied from eval.json
    assert not any(r["probe_kind"] == "cloze" for r in rows)  # eval.json's cloze pools ours with stage 10's

    # a second seed: the median rows, then every output file
    hits["sft"]["gen"] = [0, 0, 0, 0]
    _results(tmp_path / "s1", hits, {"base": 5, "cpt": 5, "sft": 5})
    rows += fk.seed_rows(1, tmp_path / "s1")
    medians = fk.median_rows(rows)
    sft_gen = next(r for r in medians if (r["stage"], r["probe_kind"]) == ("sft", "gen"))
    assert (sft_gen["accuracy"], sft_gen["min"], sft_gen["max"], sft_gen["total"]) == (0.25, 0.0, 0.5, 4)

    args = argparse.Namespace(articles=1, first=0, seeds=[0, 1], output=str(tmp_path / "out"), dry_run=False)
    fk.write_results(tmp_path / "out", "fictional_knowledge_N1", rows, [0, 1], {0: 60.0, 1: 61.0},
                     {0: {"cpt": 30}, 1: {"cpt": 31}}, args, {"pdf": "x.pdf"})
    out = tmp_path / "out"
    assert sorted(f.name for f in out.iterdir()) == [f"fictional_knowledge_N1.{ext}"
                                                     for ext in ("csv", "manifest.json", "md", "png")]
    with open(out / "fictional_knowledge_N1.csv", newline="") as f:
        written = list(csv.DictReader(f))
    assert len(written) == len(rows) + len(medians)
    assert {r["seed"] for r in written} == {"0", "1", "median"}
    manifest = json.loads((out / "fictional_knowledge_N1.manifest.json").read_text())
    assert manifest["seconds_per_seed"] == {"0": 60.0, "1": 61.0} and manifest["machine"]["cores"]
    assert "| sft | 1.00 (1.00-1.00) | 0.25 (0.00-0.50) |" in (out / "fictional_knowledge_N1.md").read_text()


FAKE_PIPELINE = """
import json, os, sys
print("$ stage output before the first stage line")
print("\\n[1/2] demo: build the embedded demo omni checkpoint")
print("[1/2] demo: done in 3s")
print("[2/2] eval: base vs CPT vs SFT")
print("some stage output")
json.dump({k: os.environ.get(k) for k in ("OMNILM_ROOT", "PYTHONPATH")}, open(sys.argv[1], "w"))
if os.environ["OMNILM_ROOT"].endswith("seed7"):
    print("error: stage eval failed (exit 1)", file=sys.stderr)
    sys.exit(1)
print("[2/2] eval: done in 5s")
"""


def test_run_seed_streams_the_pipeline(fk, tmp_path, monkeypatch, capsys):
    """One seed's run: its own root and seed.yaml, this checkout's code on the path, the
    output in pipeline.log, one line a stage on the screen; a failure is one clear error."""
    from omnilm.errors import UserError

    env_file = tmp_path / "env.json"
    monkeypatch.setattr(fk, "pipeline_command", lambda pdf, questions, config: [
        fk.sys.executable, "-c", FAKE_PIPELINE, str(env_file)])
    seconds, stages = fk.run_seed(3, tmp_path / "x.pdf", tmp_path / "x.questions.jsonl", tmp_path / "seed3")
    assert stages == {"demo": 3, "eval": 5} and seconds > 0
    assert (tmp_path / "seed3" / "seed.yaml").read_text().splitlines()[-1] == "seed: 3"
    assert all((tmp_path / "seed3" / d).is_dir() for d in ("models", "data", "adapters", "results", "logs"))
    env = json.loads(env_file.read_text())
    assert env["OMNILM_ROOT"] == str(tmp_path / "seed3")
    assert env["PYTHONPATH"].split(fk.os.pathsep)[0] == str(REPO)
    assert "some stage output" in (tmp_path / "seed3" / "pipeline.log").read_text()
    shown = [ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("  seed 3 [")]
    assert len(shown) == 2
    assert shown[0].startswith("  seed 3 [1/2] demo (build the embedded demo omni checkpoint): done in 3 s (")
    assert shown[1].startswith("  seed 3 [2/2] eval (base vs CPT vs SFT): done in 5 s (")
    with pytest.raises(UserError, match="(?s)seed 7: the pipeline failed .*stage eval failed"):
        fk.run_seed(7, tmp_path / "x.pdf", tmp_path / "x.questions.jsonl", tmp_path / "seed7")
