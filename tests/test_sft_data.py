"""Pairs -> SFT data: priorities, hold-outs, variants, the split, chat lines, and the stage script."""
import json
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import assert_one_line_refusal, plant_user_folder, snapshot

from omnilm.sft_data import build_pairs, split_train_valid, to_messages

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "20_stage2_sft" / "generate_qa.py"
CHUNK_TEXT = ("CLaRa: Compact Latent Reasoning\n\nWe present CLaRa, which stands for Compact Latent Reasoning. "
              "Salient Compressor Pretraining (SCP) is the objective that trains the compressor. "
              "The Gated Relevance Router (GRR) decides which anchors reach the decoder.")


def golden(q, a):
    return {"question": q, "answer": a, "source": "golden", "variant": "plain", "pages": [], "chunk_id": None}


def rule(q, a, concept="SCP"):
    return {"question": q, "answer": a, "source": "rule", "rule": "definition", "concept": concept,
            "chunk_id": 0, "pages": [1]}


def test_golden_wins_duplicates_and_variants_name_the_context():
    kept, dropped = build_pairs(
        [golden("What is SCP?", "SCP is Salient Compressor Pretraining.")],
        [rule("What is the SCP?", "Salient Compressor Pretraining (SCP) is the objective that trains the compressor."),
         rule("What does GRR do?", "The Gated Relevance Router (GRR) decides which anchors reach the decoder.", "GRR")],
        {0: CHUNK_TEXT}, heldout=[], context="CLaRa")
    questions = [p["question"] for p in kept]
    assert questions[:3] == ["What is SCP?", "What is SCP in CLaRa?", "In the CLaRa paper, what is SCP?"]
    assert all(p["source"] == "golden" for p in kept[:3])
    assert "What does GRR do?" in questions and "What does GRR do in CLaRa?" in questions
    assert {d["question"]: d["reason"] for d in dropped}["What is the SCP?"] == "duplicate"


def test_paraphrase_questions_are_held_out_and_filters_count_reasons():
    kept, dropped = build_pairs(
        [], [rule("Which objective trains the compressor?", "Salient Compressor Pretraining trains the compressor."),
             rule("According to the text, what is SCP?", "SCP is the objective that trains the compressor."),
             {"source": "model", "question": None, "answer": None, "raw": "???", "reason": "malformed",
              "detail": "no_markers", "chunk_id": 0}],
        {0: CHUNK_TEXT}, heldout=["Which objective trains the compressor in CLaRa?"], context="CLaRa")
    reasons = sorted(d["reason"] for d in dropped)
    assert "heldout_for_eval" in reasons and "context_dependent" in reasons and "malformed" in reasons
    assert not any("objective" in p["question"] for p in kept)


def test_split_keeps_golden_in_train_and_every_fact_in_train():
    pairs = [dict(golden(f"Golden {i}?", "A golden answer."), group=f"golden-{i}") for i in range(5)]
    pairs += [dict(rule(f"Rule {i} {v}?", "A rule answer."), group=f"rule-{i}") for i in range(10) for v in range(3)]
    pairs += [dict(golden(f"Golden {i} in X?", "A golden answer."), group=f"golden-{i}", variant="context")
              for i in range(5)]
    train, valid, overlap = split_train_valid(pairs, valid_fraction=0.2, seed=3)
    assert not overlap and len(valid) == 8 and len(train) + len(valid) == len(pairs)
    assert all(p in train for p in pairs if p["source"] == "golden" and p["variant"] == "plain")
    only_golden = [golden("G?", "A golden answer."), dict(golden("G in X?", "A golden answer."), variant="context")]
    _, golden_valid, _ = split_train_valid([dict(p, group="golden-0") for p in only_golden], 0.5)
    assert [p["variant"] for p in golden_valid] == ["context"]  # a golden fact asked in other words validates
    assert {p["group"] for p in train} == {p["group"] for p in pairs}  # no fact only in validation
    assert split_train_valid(pairs, 0.2, seed=3) == (train, valid, overlap)  # deterministic


def test_split_with_nothing_to_spare_repeats_one_train_pair():
    pairs = [dict(golden("Golden?", "A golden answer."), group="golden-0")]
    train, valid, overlap = split_train_valid(pairs)
    assert overlap and valid == train


def test_training_prompt_matches_the_inference_prompt(demo_text_model):
    """The trainer renders {"messages"} with the chat template; the evaluation asks with the
    generation prompt (reasoning skipped): the answer must follow the same prefix."""
    from transformers import AutoTokenizer

    from omnilm.chat import chat_prompt

    tok = AutoTokenizer.from_pretrained(str(demo_text_model))
    row = to_messages({"question": "What is SCP?", "answer": "SCP is an objective."})
    full = tok.apply_chat_template(row["messages"], tokenize=False)
    prompt = chat_prompt(tok, row["messages"][:1])
    assert full.startswith(prompt) and full[len(prompt):].startswith("SCP is an objective.")


def write_chunks(root):
    folder = root / "data" / "cpt" / "crafted"
    folder.mkdir(parents=True)
    (folder / "chunks.jsonl").write_text(json.dumps({"id": 0, "text": CHUNK_TEXT, "pages": [1], "tokens": 60}) + "\n")
    (folder / "manifest.json").write_text("{}")
    (root / "golden.jsonl").write_text(json.dumps({"question": "What is SCP?", "answer": "SCP is an objective."}) + "\n")
    (root / "questions.jsonl").write_text(json.dumps({"kind": "paraphrase", "question": "What is CLaRa short for?"}) + "\n")
    return folder


def run_script(root, *args):
    return subprocess.run([sys.executable, str(SCRIPT), "--chunks", "data/cpt/crafted", "--golden",
                           str(root / "golden.jsonl"), "--questions", str(root / "questions.jsonl"), *args],
                          capture_output=True, text=True, cwd=root)


def test_script_writes_clean_data_without_a_model(project_root):
    write_chunks(project_root)
    r = run_script(project_root, "--per-chunk", "0")
    assert r.returncode == 0, r.stderr
    out = project_root / "data" / "sft" / "crafted"
    manifest = json.loads((out / "manifest.json").read_text())
    rows = [json.loads(line) for line in (out / "train.jsonl").read_text().splitlines()]
    valid = [json.loads(line) for line in (out / "valid.jsonl").read_text().splitlines()]
    # every fact's statements (2 each by default) ride along as plain text, never as a question
    train, statements = [r for r in rows if "messages" in r], [r for r in rows if "messages" not in r]
    assert statements and all(r["source"] == "statement" and set(r) == {"text", "source"} for r in statements)
    assert manifest["metrics"]["statement_rows"] == len(statements) and rows[-len(statements):] == statements
    text = "\n\n".join(r["text"] for r in statements)
    facts = [json.loads(line) for line in (out / "pairs.jsonl").read_text().splitlines() if '"fact"' in line]
    assert facts and all(f["answer"] in text for f in facts if f["source"] == "fact")
    fewer = run_script(project_root, "--per-chunk", "0", "--statements", "0", "--force", "--output", "data/sft/plain")
    assert fewer.returncode == 0, fewer.stderr
    assert all("messages" in json.loads(line) for line in
               (project_root / "data" / "sft" / "plain" / "train.jsonl").read_text().splitlines())
    # the golden pair is trained; its 2 context variants are trained or validate (other words, same fact)
    assert manifest["metrics"]["train"] == len(train) and manifest["metrics"]["golden_in_train"] >= 1
    assert any(row["messages"][0]["content"] == "What is SCP?" for row in train)
    assert manifest["context_name"] == "CLaRa"
    questions = [row["messages"][0]["content"] for row in train + valid]
    assert "What is SCP?" in questions and "What does CLaRa stand for?" in questions
    assert len(set(questions)) == len(questions)
    assert all([m["role"] for m in row["messages"]] == ["user", "assistant"] for row in train + valid)
    kept = [json.loads(line) for line in (out / "pairs.jsonl").read_text().splitlines()]
    assert {p["source"] for p in kept} == {"golden", "fact"} and all("variant" in p for p in kept)
    assert all(p["fact_id"] for p in kept if p["source"] == "fact")
    assert "none held out" in r.stdout  # no stage-10 fact inventory here: facts come from the chunks
    # a second run without --force refuses and leaves the data as it was
    again = run_script(project_root, "--per-chunk", "0")
    assert again.returncode == 2 and "--force" in again.stderr and "Traceback" not in again.stderr
    # a folder of the user's own is never replaced, even with --force
    mine = plant_user_folder(project_root / "mine")
    for force in ([], ["--force"]):
        refused = run_script(project_root, "--per-chunk", "0", "--output", "mine", *force)
        assert_one_line_refusal(refused, "mine holds files this project did not make", "pick another --output")
        assert snapshot(project_root / "mine") == mine


def test_script_batched_generation_path_with_a_tiny_model(project_root, tiny_model):
    """A random model writes garbage: every output must be dropped as malformed, never kept."""
    write_chunks(project_root)
    r = run_script(project_root, "--model", str(tiny_model), "--adapter", "none", "--per-chunk", "2",
                   "--max-tokens", "6", "--output", "data/sft/tiny")
    assert r.returncode == 0, r.stderr
    out = project_root / "data" / "sft" / "tiny"
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["generation"]["prompts"] == 2 and manifest["generation"]["generated_tokens"] > 0
    assert manifest["metrics"]["kept_by_source"].get("model", 0) == 0
    dropped = [json.loads(line) for line in (out / "dropped.jsonl").read_text().splitlines()]
    assert sum(d["source"] == "model" for d in dropped) >= 2


@pytest.mark.parametrize("args, message", [
    (["--chunks", "data/cpt/missing"], "no chunks.jsonl"),
    (["--adapter", "adapters/missing", "--per-chunk", "1"], "not an adapter folder"),
])
def test_script_refuses_bad_inputs_in_one_sentence(project_root, args, message):
    write_chunks(project_root)
    r = run_script(project_root, *args)
    assert r.returncode == 2 and message in r.stderr and "Traceback" not in r.stderr


def test_script_adds_replay_pairs_to_both_splits(project_root):
    """Stage 10's replay.jsonl next to the chunks: a share of train and of valid, tagged, disjoint."""
    folder = write_chunks(project_root)
    replay = [{"question": f"What is {n} plus {n}?", "answer": f"{n} plus {n} makes {2 * n} in total."}
              for n in range(1, 41)]
    (folder / "replay.jsonl").write_text("".join(json.dumps(r) + "\n" for r in replay))
    r = run_script(project_root, "--per-chunk", "0", "--replay-share", "0.5")
    assert r.returncode == 0, r.stderr
    out = project_root / "data" / "sft" / "crafted"
    m = json.loads((out / "manifest.json").read_text())["metrics"]
    rows = [json.loads(line) for line in (out / "train.jsonl").read_text().splitlines()]
    valid = [json.loads(line) for line in (out / "valid.jsonl").read_text().splitlines()]
    train = [r for r in rows if "messages" in r]  # the fact statements (plain text) are no pairs
    replay_questions = {p["question"] for p in replay}
    in_train = [row for row in train if row["messages"][0]["content"] in replay_questions]
    document_rows = len(train) - len(in_train)
    in_valid = [row for row in valid if row["messages"][0]["content"] in replay_questions]
    assert len(in_train) == m["replay_in_train"] == document_rows and m["replay_available"] == 40
    assert len(in_valid) == m["replay_in_valid"] == len(valid) - len(in_valid) >= 1
    assert not {r["messages"][0]["content"] for r in in_train} & {r["messages"][0]["content"] for r in in_valid}
    assert m["kept_by_source"]["replay"] == len(in_train) + len(in_valid) and m["train"] == len(train)
    kept = [json.loads(line) for line in (out / "pairs.jsonl").read_text().splitlines()]
    assert sum(p["source"] == "replay" for p in kept) == len(in_train) + len(in_valid)
    # each row names its source, so the trainer can report the replay loss apart
    assert {row["source"] for row in in_valid} == {"replay"}
    assert "replay" not in {row["source"] for row in valid if row not in in_valid}

    again = run_script(project_root, "--per-chunk", "0", "--replay-share", "0", "--force")
    assert again.returncode == 0, again.stderr
    m0 = json.loads((out / "manifest.json").read_text())["metrics"]
    assert m0["replay_in_train"] == m0["replay_in_valid"] == 0 and m0["train"] == document_rows
