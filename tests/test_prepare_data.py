"""prepare_data.py run as a user runs it: the demo paper end to end, a folder of PDFs,
replay pairs mixed into train only, and one clear refusal (exit 2, no output) for
every kind of bad input."""
import json
import subprocess
import sys

import pytest
from conftest import place_model

from omnilm.paths import REPO_DIR
from omnilm.pdf_writer import Page, render_paper, write_pdf
from omnilm.replay import MAX_PASSES

SCRIPT = REPO_DIR / "10_stage1_cpt" / "prepare_data.py"
DEMO_MD = (REPO_DIR / "10_stage1_cpt" / "demo_paper.md").read_text()


@pytest.fixture
def root(project_root, demo_text_model):
    """A project root holding the demo PDF and the demo model where the defaults look
    (the model answers the replay questions)."""
    (project_root / "data" / "demo_paper.pdf").write_bytes(render_paper(DEMO_MD)[0])
    place_model(demo_text_model, project_root / "models", "demo-omni-Text")
    return project_root


def prepare(*args):
    return subprocess.run([sys.executable, str(SCRIPT), *map(str, args)], capture_output=True, text=True, cwd="/")


def read_jsonl(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def text_page(lines):
    page = Page()
    for n, line in enumerate(lines):
        page.text(72, 760 - 14 * n, line, size=10)
    return page


def test_demo_paper_document_only(root):
    run = prepare("--replay", 0)  # replay has its own test: 60 answers would take a minute here
    assert run.returncode == 0, run.stderr
    out = root / "data" / "cpt" / "demo_paper"
    assert "4/4 pages" in run.stdout and "data/cpt/demo_paper" in run.stdout
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["args"]["model"] == "models/demo-omni-Text"
    m = manifest["metrics"]
    chunks, train, valid = (read_jsonl(out / f) for f in ("chunks.jsonl", "train.jsonl", "valid.jsonl"))
    assert len(chunks) == m["chunks"] >= 8 and len(valid) == m["valid_chunks"] >= 1
    # every chunk is trained on (the document is what CPT teaches); the validation ones too,
    # then the facts' rephrasings and the trained facts' Q&A as plain text
    assert [r["text"] for r in train[:len(chunks)]] == [c["text"] for c in chunks] and m["train_chunks"] == len(chunks)
    assert len(train) == len(chunks) + m["fact_train_rows"] and m["fact_train_rows"] > 0
    facts = read_jsonl(out / "facts.jsonl")
    assert len(facts) == m["facts"] >= 40 and 0 < m["facts_heldout"] == sum(f["heldout"] for f in facts)
    fact_text = "\n".join(r["text"] for r in train[len(chunks):])
    assert "The VELLUM compressor has 6 layers." in fact_text  # a rephrasing, subject named in full
    assert "There are 6 layers in the VELLUM compressor." in fact_text  # and in another structure, by rule
    assert m["facts_restructured"] == sum(f["kind"] != "table" and "variants" in f for f in facts) >= 25
    held_fact = next(f for f in facts if f["heldout"])
    assert held_fact["statement"] in fact_text and not any(q in fact_text for q in held_fact["questions"])
    assert m["replay_pairs"] == 0
    assert not (out / "replay.jsonl").exists()
    assert all(set(row) == {"text"} for row in train + valid)
    assert all(c["tokens"] <= m["chunk_tokens"] and c["pages"] and set(c["pages"]) <= {1, 2, 3, 4} for c in chunks)
    assert {c["text"] for c in chunks if c["split"] == "train+valid"} == {row["text"] for row in valid}
    text = "\n".join(c["text"] for c in chunks)
    assert "Anchor Token Distillation (ATD)" in text and "12,400 questions" in text and "compresses each" in text
    assert "Rivera" not in text and "2 of 4" not in text
    assert m["pages_dropped"] == [] and m["cleaning"]["hyphenations_joined"] >= 3

    again = prepare("--force", "--replay", 0, "--chunk-tokens", 512, "--min-chunks", 0, "--keep-references",
                    "--extractor", "pdfplumber", "--seed", 3, "--rephrasings", 0, "--qa-in-cpt", 0)
    assert again.returncode == 0, again.stderr
    m2 = json.loads((out / "manifest.json").read_text())["metrics"]
    assert m2["chunk_tokens"] == 512 and m2["chunks"] < m["chunks"] and m2["extractor"] == "pdfplumber"
    assert "Rivera" in (out / "chunks.jsonl").read_text()
    assert len(read_jsonl(out / "train.jsonl")) == m2["chunks"]  # no fact text asked for: the chunks alone
    held = prepare("--force", "--replay", 0, "--hold-out", "--rephrasings", 0, "--qa-in-cpt", 0)  # the classic split: validation chunks unseen
    assert held.returncode == 0, held.stderr
    chunks, train, valid = (read_jsonl(out / f) for f in ("chunks.jsonl", "train.jsonl", "valid.jsonl"))
    assert len(train) + len(valid) == len(chunks) and not {r["text"] for r in train} & {r["text"] for r in valid}
    assert {c["text"] for c in chunks if c["split"] == "valid"} == {row["text"] for row in valid}
    assert prepare("--replay", 0).returncode == 2  # exists, no --force


def test_pack_apart_never_puts_two_texts_of_a_fact_in_one_row():
    from omnilm.fact_training import pack_apart

    items = [(0, "a1"), (0, "a2"), (1, "b1"), (0, "a3"), (2, "same"), (3, "same"), (1, "b2"), (2, "c1"),
             (4, "a very long text " * 20)]
    rows = pack_apart(lambda text: len(text.split()), items, max_tokens=4)
    texts = [row.split("\n\n") for row in rows]
    assert sorted(t for row in texts for t in row) == sorted(t.strip() for _, t in items)  # each text once
    owners = {"a": 0, "b": 1, "c": 2}
    for row in texts:
        facts = [owners[t[0]] for t in row if t[0] in owners and t != "a very long text " * 20]
        assert len(facts) == len(set(facts)), row  # one text a fact per row
        assert row.count("same") <= 1 and not ("same" in row and "c1" in row)  # "same" states facts 2 and 3
        assert sum(len(t.split()) for t in row) <= 4 or len(row) == 1  # a text longer than a row is a row
    assert len(rows) >= 3  # fact 0 has three texts


def test_restatements_apart_reaches_the_cpt_rows(root):
    out = root / "data" / "cpt" / "demo_paper"

    def fact_texts():
        train, chunks = read_jsonl(out / "train.jsonl"), read_jsonl(out / "chunks.jsonl")
        return [r["text"].split("\n\n") for r in train[len(chunks):]]

    assert prepare("--replay", 0).returncode == 0
    packed_in_order = fact_texts()
    run = prepare("--replay", 0, "--force", "--restatements-apart")
    assert run.returncode == 0, run.stderr
    assert json.loads((out / "manifest.json").read_text())["args"]["restatements_apart"] is True
    apart = fact_texts()
    assert sorted(sum(apart, [])) == sorted(sum(packed_in_order, []))  # the same texts, packed otherwise
    for fact in read_jsonl(out / "facts.jsonl"):
        asked = [q for q in fact["questions"] if not fact["heldout"]]
        for row in apart:  # a fact's statement and a question of it never share a row
            assert not (fact["statement"] in row and any(t.startswith(q + "\n") for q in asked for t in row)), row


def test_written_rephrasings_are_checked_and_go_into_the_cpt_text(root, tmp_path):
    """--rephrasings-file: the demo paper's file matches today's facts and passes the
    grounding check whole; a wrong number, a copy of the statement and a statement no
    fact has are dropped with their reasons; a bad file is refused before any output."""
    shipped = REPO_DIR / "10_stage1_cpt" / "demo_paper.rephrasings.jsonl"
    run = prepare("--replay", 0, "--rephrasings-file", shipped)
    assert run.returncode == 0, run.stderr
    out = root / "data" / "cpt" / "demo_paper"
    manifest = json.loads((out / "manifest.json").read_text())
    summary = manifest["metrics"]["model_rephrasings"]
    assert summary["dropped_by_reason"] == {} and summary["source"].endswith("demo_paper.rephrasings.jsonl")
    assert f"rewrites: {summary['kept']} kept on {summary['facts_rephrased']} facts" in run.stdout
    assert "rephrasings_file" in manifest["inputs"]
    facts = read_jsonl(out / "facts.jsonl")
    # K = 5: the statement and at most 4 rewrites; each fact of a rewritten sentence gets them
    assert summary["kept"] == sum(len(f.get("model_rephrasings", [])) for f in facts) > 100
    gpus = next(f for f in facts if f["answer"] == "8" and f["unit"] == "GPUs")
    train_text = "\n".join(r["text"] for r in read_jsonl(out / "train.jsonl"))
    assert gpus["model_rephrasings"] and all(r in train_text for r in gpus["model_rephrasings"])

    mine = tmp_path / "mine.jsonl"
    mine.write_text("\n".join(json.dumps(r) for r in [
        {"statement": gpus["statement"], "rephrasings": ["On 8 GPUs, VELLUM was trained for 18 hours with a batch "
                                                         "size of 64 passages.", gpus["statement"],
                                                         "VELLUM was trained for 18 hours on 4 GPUs."]},
        {"statement": "A sentence no fact has.", "rephrasings": ["Nothing."]}]) + "\n")
    run = prepare("--replay", 0, "--force", "--rephrasings", 2, "--rephrasings-file", mine)
    assert run.returncode == 0, run.stderr
    summary = json.loads((out / "manifest.json").read_text())["metrics"]["model_rephrasings"]
    # K = 2: one rewrite a fact; the three facts of the GPU sentence each keep the first
    assert summary["kept"] == summary["facts_rephrased"] == 3
    assert summary["dropped_by_reason"] == {"no fact has this statement": 1}
    run = prepare("--replay", 0, "--force", "--rephrasings-file", mine)  # K = 5: the others are checked too
    summary = json.loads((out / "manifest.json").read_text())["metrics"]["model_rephrasings"]
    # the wrong one fails each fact its own way: 18 hours with a 4 it never stated, the 8 and the 64 missing
    assert summary["dropped_by_reason"] == {"same as the statement": 3, "a number the source does not state": 1,
                                            "statement lacks the answer": 2, "no fact has this statement": 1}
    assert "4 GPUs" not in "\n".join(r["text"] for r in read_jsonl(out / "train.jsonl"))

    before = (out / "manifest.json").read_text()
    mine.write_text(json.dumps({"statement": gpus["statement"], "rephrasings": "not a list"}) + "\n")
    bad = prepare("--replay", 0, "--force", "--rephrasings-file", mine)
    assert bad.returncode == 2 and "entry 1 needs" in bad.stderr
    missing = prepare("--replay", 0, "--force", "--rephrasings-file", tmp_path / "none.jsonl")
    assert missing.returncode == 2 and "does not exist" in missing.stderr
    unused = prepare("--replay", 0, "--force", "--rephrasings", 1, "--rephrasings-file", shipped)
    assert unused.returncode == 2 and "--rephrasings 2 or more" in unused.stderr
    assert (out / "manifest.json").read_text() == before  # nothing replaced


def test_a_folder_of_pdfs_with_an_image_only_page(root):
    folder = root / "papers"
    folder.mkdir()
    sentence = "The Gated Relevance Router keeps the four most relevant anchor groups out of thirty-two."
    scan = Page()
    scan.box(72, 600, 400, 100, 0.4)
    for n in range(2):
        pages = [text_page([f"Document {n} page {p}. " + sentence] * 40) for p in range(2)]
        (folder / f"paper{n}.pdf").write_bytes(write_pdf(pages + ([scan] if n else [])))
    run = prepare("--pdf", folder, "--chunk-tokens", 256, "--replay", 0)
    assert run.returncode == 0, run.stderr
    assert "1 of 3 pages have no text layer" in run.stderr
    out = root / "data" / "cpt" / "papers"
    chunks = read_jsonl(out / "chunks.jsonl")
    assert {c["source"] for c in chunks} == {"paper0.pdf", "paper1.pdf"}
    assert all(c["text"].startswith("Document") or c["text"].startswith("The") for c in chunks)
    m = json.loads((out / "manifest.json").read_text())["metrics"]
    assert m["pages"] == 5 and m["pages_used"] == 4 and m["files"] == 2
    assert m["pages_dropped"] == [{"file": "paper1.pdf", "page": 3,
                                   "reason": "no text layer (a scanned or image-only page)"}]


def test_replay_pairs_are_mixed_into_train_only_and_counted(root):
    """The model's own answers to general questions: kept at EOS, mixed into train as
    plain text (question, then answer); validation stays the document."""
    questions = root / "general.txt"
    questions.write_text("What is the capital of Italy?\nWhat is the capital of Japan?\n"
                         "How many legs does a spider have?\nWhy do we need to drink water?\n")
    run = prepare("--replay", 4, "--replay-questions", questions, "--replay-max-tokens", 24)
    assert run.returncode == 0, run.stderr
    out = root / "data" / "cpt" / "demo_paper"
    m = json.loads((out / "manifest.json").read_text())
    replay = read_jsonl(out / "replay.jsonl")
    # the control question is skipped; two answers end at EOS; the one the limit cut keeps its first whole sentence
    assert m["metrics"]["replay"]["questions_skipped"] == {"near_control_question": 1}
    assert [r["question"] for r in replay] == ["What is the capital of Italy?", "What is the capital of Japan?",
                                               "Why do we need to drink water?"]
    assert [bool(r.get("shortened")) for r in replay] == [False, False, True] and "Rome" in replay[0]["answer"]
    assert m["metrics"]["replay"]["shortened"] == 1 and m["metrics"]["replay"]["dropped_by_reason"] == {}
    train, valid = read_jsonl(out / "train.jsonl"), read_jsonl(out / "valid.jsonl")
    rows = [row["text"] for row in train if any(row["text"].startswith(r["question"]) for r in replay)]
    # the three fill one row; the share (0.35 of the train rows) asks for more, so they repeat, in new orders
    assert len(rows) == m["metrics"]["replay_train_rows"] == MAX_PASSES and m["metrics"]["replay_pairs"] == 3
    assert rows[0] == "\n\n".join(f"{r['question']}\n{r['answer']}" for r in replay)
    assert all(sorted(row.split("\n\n")) == sorted(rows[0].split("\n\n")) for row in rows)
    assert len(train) == m["metrics"]["train_chunks"] + m["metrics"]["fact_train_rows"] + MAX_PASSES
    assert not any(r["answer"] in row["text"] for r in replay for row in valid)
    assert "replay: 3/3" in run.stdout
    # the raw generations are cached: a rerun selects the same answers without the model answering again
    again = prepare("--force", "--replay", 4, "--replay-questions", questions, "--replay-max-tokens", 24)
    assert "3 generations from the cache" in again.stdout and read_jsonl(out / "replay.jsonl") == replay


def _bad_inputs():
    scan = Page()
    scan.box(72, 500, 450, 200, 0.5)
    scan.line(72, 480, 520, 480)
    good = write_pdf([text_page(["Hello there."])])
    return {
        "notes.pdf": (b"These are plain notes, not a PDF.\n", "is not a PDF"),
        "empty.pdf": (b"", "is empty"),
        "cut.pdf": (good[: len(good) // 2], "is damaged or truncated"),
        "locked.pdf": (write_pdf([text_page(["Secret text."])], password_protected=True), "is encrypted"),
        "scan.pdf": (write_pdf([scan, scan, scan]), "has no text layer on any of its 3 pages"),
        "short.pdf": (write_pdf([text_page(["VELLUM uses 8 anchor tokens per passage."])]), "is too short to split"),
    }


@pytest.mark.parametrize("name", ["notes.pdf", "empty.pdf", "cut.pdf", "locked.pdf", "scan.pdf", "short.pdf"])
def test_bad_input_is_refused_in_one_sentence_with_no_output(root, name):
    data, why = _bad_inputs()[name]
    (root / name).write_bytes(data)
    run = prepare("--pdf", root / name)
    assert run.returncode == 2
    lines = [ln for ln in run.stderr.splitlines() if ln.startswith("error:")]
    assert len(lines) == 1 and name in lines[0] and why in lines[0], run.stderr
    assert "Traceback" not in run.stderr
    assert not (root / "data" / "cpt").exists() or not any((root / "data" / "cpt").iterdir())


def test_missing_inputs_are_refused(root, tmp_path):
    assert "does not exist" in prepare("--pdf", "data/nothing.pdf").stderr
    empty = root / "empty_folder"
    empty.mkdir()
    assert "no .pdf files" in prepare("--pdf", empty).stderr
    run = prepare("--model", tmp_path)
    assert run.returncode == 2 and "no tokenizer files" in run.stderr
