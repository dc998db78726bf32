"""Stage 30: the reference-answer NLL and the written results."""
import csv
import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from omnilm.errors import UserError
from omnilm.evaluation import answer_nll, fuse_lora, load_questions, parse_stage, prompt_tokens, run_comparison

REPO = Path(__file__).resolve().parents[1]


def _nll_token_by_token(model, tokenizer, question, reference):
    """The same quantity computed the slow way: one forward pass per answer token."""
    import mlx.core as mx

    prompt, prompt_ids = prompt_tokens(tokenizer, question)
    answer = tokenizer.encode(prompt + reference, add_special_tokens=False)[len(prompt_ids):]
    answer.append(tokenizer.eos_token_id)
    total = 0.0
    for i, tok in enumerate(answer):
        logits = model(mx.array([prompt_ids + answer[:i]]))[0, -1].astype(mx.float32)
        logp = logits - mx.logsumexp(logits)
        total -= float(logp[tok])
    return total / len(answer)


def test_answer_nll_matches_token_by_token(tiny_model):
    from mlx_lm import load

    model, tokenizer = load(str(tiny_model))
    fast = answer_nll(model, tokenizer, "What is SCP?", "Salient Compressor Pretraining.")
    slow = _nll_token_by_token(model, tokenizer, "What is SCP?", "Salient Compressor Pretraining.")
    assert math.isclose(fast, slow, rel_tol=1e-4)


def test_answer_nll_prefers_the_true_answer(demo_text_model):
    from mlx_lm import load

    model, tokenizer = load(str(demo_text_model))
    q = "What is the capital of France?"
    assert answer_nll(model, tokenizer, q, "The capital of France is Paris.") < \
        answer_nll(model, tokenizer, q, "The capital of France is Berlin.")


def test_prompt_is_tokenized_as_inside_a_training_example(tiny_model):
    """mlx-lm trains on prompt + answer encoded together; the prompt the model is asked
    with must be exactly that prefix (encoded alone, its trailing blank line differs)."""
    from mlx_lm import load
    from mlx_lm.tuner.datasets import ChatDataset

    from omnilm.chat import chat_prompt

    _, tokenizer = load(str(tiny_model))
    question, answer = "What is ATD?", "ATD is Anchor Token Distillation."
    example = {"messages": [{"role": "user", "content": question}, {"role": "assistant", "content": answer}]}
    trained, _ = ChatDataset([example], tokenizer, mask_prompt=True).process(example)
    prompt, ids = prompt_tokens(tokenizer, question)
    assert prompt == chat_prompt(tokenizer, example["messages"][:1])
    assert trained[:len(ids)] == ids and tokenizer.decode(trained[len(ids):]).startswith("ATD is")
    naive = tokenizer.encode(prompt, add_special_tokens=False)
    assert trained[:len(naive)] != naive  # the mismatch prompt_tokens exists to avoid


def test_fused_lora_computes_the_same_function(tiny_model):
    import mlx.core as mx
    from mlx.utils import tree_flatten, tree_map
    from mlx_lm import load
    from mlx_lm.tuner.utils import linear_to_lora_layers

    model, _ = load(str(tiny_model))
    model.freeze()
    linear_to_lora_layers(model, 2, {"rank": 4, "scale": 20.0, "dropout": 0.0})
    mx.random.seed(1)  # lora_b starts at zero: make the adapter change something
    model.update(tree_map(lambda p: mx.random.normal(p.shape) * 0.05, model.trainable_parameters()))
    ids = mx.array([[1, 2, 3, 4, 5]])
    before = model(ids)
    lora_layers = sum(1 for _, m in model.named_modules() if hasattr(m, "lora_a"))
    assert lora_layers > 0 and fuse_lora(model) == lora_layers
    assert not any("lora" in name for name, _ in tree_flatten(model.parameters()))
    assert mx.allclose(before, model(ids), atol=1e-4)


def test_questions_file_is_valid_and_covers_every_kind():
    questions = load_questions(REPO / "30_evaluation" / "questions.jsonl")
    kinds = {q["kind"] for q in questions}
    assert kinds == {"domain", "paraphrase", "control"}
    assert len({q["question"] for q in questions}) == len(questions)
    # every hand-written golden question is asked as a domain question: stage 20 promises them all
    golden = {json.loads(line)["question"] for line in (REPO / "20_stage2_sft" / "golden.jsonl").read_text().splitlines()}
    assert golden <= {q["question"] for q in questions if q["kind"] == "domain"}


def test_bad_questions_and_stage_specs(tmp_path):
    bad = tmp_path / "q.jsonl"
    bad.write_text('{"question": "x", "reference": "y", "kind": "domain", "key_facts": ["flat"]}\n')
    with pytest.raises(UserError, match="line 1"):
        load_questions(bad)
    with pytest.raises(UserError, match="name=MODEL_DIR"):
        parse_stage("models/x")
    assert parse_stage("sft=m+a") == ("sft", "m", "a") and parse_stage("base=m") == ("base", "m", None)


def test_comparison_writes_csv_markdown_png(tiny_model, tmp_path):
    questions = [
        {"id": "a", "kind": "domain", "question": "What is SCP?", "reference": "Salient Compressor Pretraining.",
         "key_facts": [["Salient Compressor Pretraining"]]},
        {"id": "b", "kind": "control", "question": "What is the capital of France?", "reference": "Paris.",
         "key_facts": [["Paris"]]},
    ]
    rows, summary, _ = run_comparison([("base", tiny_model, None), ("again", tiny_model, None)], questions,
                                      tmp_path, max_tokens=8)
    with open(tmp_path / "eval.csv") as f:
        got = list(csv.DictReader(f))
    assert len(got) == 4
    for col in ("stage", "kind", "question", "answer", "correct", "answer_nll", "generation_tps"):
        assert col in got[0]
    assert {r["stage"] for r in got} == {"base", "again"}
    assert all(float(r["answer_nll"]) > 0 and float(r["generation_tps"]) > 0 for r in got)
    # a random tiny model knows nothing: every verdict is wrong, and the same model scores the same twice
    assert all(r["correct"] == "0" for r in got)
    assert summary["base"]["answer_nll"] == summary["again"]["answer_nll"]
    md = (tmp_path / "eval.md").read_text()
    assert "| base |" in md and "What is SCP?" in md and "❌ wrong (missing: Salient Compressor Pretraining)" in md
    assert md.index("## Answers") < md.index("## Accuracy per stage and kind")
    assert (tmp_path / "eval.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_script_refuses_missing_adapter(tiny_model, project_root):
    r = subprocess.run([sys.executable, str(REPO / "30_evaluation" / "compare_stages.py"),
                        "--stages", f"sft={tiny_model}+{project_root / 'adapters' / 'nope'}"],
                       capture_output=True, text=True)
    assert r.returncode == 2 and r.stderr.strip().startswith("error: stage sft: adapter")
    assert not list((project_root / "results").iterdir())


def test_seed_spread_report(tmp_path):
    import importlib.util

    spec = importlib.util.spec_from_file_location("seed_spread", REPO / "benchmarks" / "sft_seed_spread.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    summary = {"seed0": {"domain": 1.0, "domain_n": 16, "paraphrase": 0.4, "paraphrase_n": 10, "control": 0.8,
                         "control_n": 15},
               "seed3": {"domain": 0.9, "domain_n": 16, "paraphrase": 0.2, "paraphrase_n": 10, "control": 0.6,
                         "control_n": 15}}
    table = module.spread(summary, [0, 3])
    assert table["control"] == {"per_seed": [0.8, 0.6], "mean": 0.7, "min": 0.6, "max": 0.8}
    assert table["paraphrase"]["mean"] == 0.3
    module.write_report(table, [0, 3], "--learning-rate 5e-5", tmp_path)
    md = (tmp_path / "seed_spread.md").read_text()
    assert "| control | 0.80 | 0.60 | 0.70 | 0.60-0.80 |" in md and "--learning-rate 5e-5" in md
    assert json.loads((tmp_path / "seed_spread.json").read_text())["accuracy"]["domain"]["max"] == 1.0
    bad = subprocess.run([sys.executable, str(REPO / "benchmarks" / "sft_seed_spread.py"), "--seeds", "1", "1"],
                         capture_output=True, text=True)
    assert bad.returncode != 0 and "two different seeds" in bad.stderr
