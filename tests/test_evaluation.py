"""Stage 30: the reference-answer NLL and the written results."""
import csv
import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from omnilm.errors import UserError
from omnilm.evaluation import (KINDS, OPEN_BOOK, OPEN_BOOK_NOTE, answer_nll, asked, fuse_lora, generate_answer,
                               generate_answers, load_questions, parse_stage, plan_runs, prompt_tokens,
                               run_comparison, summarize, summary_table, write_chart, write_markdown)

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


def test_batched_answer_nlls_equal_one_at_a_time(tiny_model):
    """Right-padded rows of different lengths in one forward give each row's own NLL."""
    from mlx_lm import load

    from omnilm.evaluation import answer_ids, answer_nlls

    model, tokenizer = load(str(tiny_model))
    pairs = [("What is SCP?", "Salient Compressor Pretraining."), ("Why?", "Because the paper says so, at length."),
             ("How many layers does the compressor have, and why that many?", "Six."), ("Hi", "Hello.")]
    together = answer_nlls(model, tokenizer, pairs)  # every row in one batch
    alone = [_nll_token_by_token(model, tokenizer, q, r) for q, r in pairs]
    assert len({len(answer_ids(tokenizer, q, r)[0]) for q, r in pairs}) == len(pairs)  # padding is exercised
    assert all(math.isclose(a, b, rel_tol=1e-4) for a, b in zip(together, alone))
    assert answer_nlls(model, tokenizer, pairs, batch_tokens=1) == pytest.approx(together, rel=1e-4)


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
    questions = load_questions(REPO / "10_stage1_cpt" / "demo_paper.questions.jsonl")
    controls = load_questions(REPO / "10_stage1_cpt" / "control_questions.jsonl")
    # the demo paper's questions in one file; the general controls, asked of every paper, in the other
    assert {q["kind"] for q in questions} == {"trained", "heldout_fact", "paraphrase"}
    assert {q["kind"] for q in controls} == {"control"}
    questions += controls
    assert len({q["question"] for q in questions}) == len(questions)
    # every hand-written golden question is asked as a trained question: stage 20 promises them all
    golden = {json.loads(line)["question"] for line in (REPO / "10_stage1_cpt" / "demo_paper.golden.jsonl").read_text().splitlines()}
    assert golden <= {q["question"] for q in questions if q["kind"] == "trained"}
    # the open-book bound needs each hand-written paper question's source text, copied verbatim
    paper = (REPO / "10_stage1_cpt" / "demo_paper.md").read_text()
    assert all("passage" in q and q["passage"] in paper for q in questions if q["kind"] in ("trained", "paraphrase"))


def _question(kind, qid="x"):
    return json.dumps({"id": qid, "question": f"Question {qid}?", "reference": "y", "kind": kind,
                       "key_facts": [["y"]]})


def test_loader_reads_every_kind_and_the_old_domain_name(tmp_path):
    good = tmp_path / "q.jsonl"
    good.write_text("\n".join(_question(k, str(i)) for i, k in enumerate((*KINDS, "domain"))) + "\n")
    assert [q["kind"] for q in load_questions(good)] == [*KINDS, "trained"]
    # a line separator inside a string, as write_jsonl keeps it raw, is not a line end
    from omnilm.jsonl import read_jsonl, write_jsonl

    row = dict(json.loads(_question("reader", "s")), question="First line\u2028second line?")
    write_jsonl(tmp_path / "sep.jsonl", [row])
    assert [q["question"] for q in load_questions(tmp_path / "sep.jsonl")] == [row["question"]]
    assert read_jsonl(tmp_path / "sep.jsonl") == [row]
    bad = tmp_path / "bad.jsonl"
    bad.write_text(_question("trained") + "\n" + _question("held_out") + "\n")
    with pytest.raises(UserError, match=f"{bad} line 2 needs .*trained/heldout_fact/paraphrase/reader/independent/cloze/control"):
        load_questions(bad)


def test_bad_questions_and_stage_specs(tmp_path):
    bad = tmp_path / "q.jsonl"
    bad.write_text('{"question": "x", "reference": "y", "kind": "trained", "key_facts": ["flat"]}\n')
    with pytest.raises(UserError, match="line 1"):
        load_questions(bad)
    bad.write_text('{"question": "x", "reference": "y", "kind": "trained", "key_facts": [["y"]], "passage": ""}\n')
    with pytest.raises(UserError, match="line 1: passage"):
        load_questions(bad)
    with pytest.raises(UserError, match="name=MODEL_DIR"):
        parse_stage("models/x")
    assert parse_stage("sft=m+a") == ("sft", "m", "a") and parse_stage("base=m") == ("base", "m", None)


def test_comparison_writes_csv_markdown_png(tiny_model, tmp_path):
    questions = [
        {"id": "a", "kind": "heldout_fact", "question": "What is SCP?",
         "reference": "Salient Compressor Pretraining.", "key_facts": [["Salient Compressor Pretraining"]],
         "passage": "SCP is Salient Compressor Pretraining."},
        {"id": "t", "kind": "trained", "question": "What does SCP stand for?",
         "reference": "Salient Compressor Pretraining.", "key_facts": [["Salient Compressor Pretraining"]],
         "passage": "SCP is Salient Compressor Pretraining."},  # trained: no open-book bound
        {"id": "b", "kind": "control", "question": "What is the capital of France?", "reference": "Paris.",
         "key_facts": [["Paris"]]},
    ]
    runs = plan_runs([("base", tiny_model, None), ("again", tiny_model, None)], questions)
    assert [r[0] for r in runs] == ["base", "again", OPEN_BOOK]
    assert runs[2][1:] == (tiny_model, None, questions[:1], True)  # the first model, no adapter, passages only
    rows, summary, recommendation, _ = run_comparison(runs, tmp_path, max_tokens=8)
    with open(tmp_path / "eval.csv") as f:
        got = list(csv.DictReader(f))
    assert len(got) == 7 and [r["id"] for r in got if r["stage"] == OPEN_BOOK] == ["a"]
    got = [r for r in got if r["stage"] != OPEN_BOOK]
    for col in ("stage", "kind", "question", "answer", "correct", "answer_nll", "generation_tps"):
        assert col in got[0]
    assert {r["stage"] for r in got} == {"base", "again"}
    assert all(float(r["generation_tps"]) > 0 for r in got)
    # the reference answer's NLL for the hand-written kinds only
    assert all(float(r["answer_nll"]) > 0 for r in got if r["kind"] == "trained")
    assert all(r["answer_nll"] == "" for r in got if r["kind"] == "control")
    # a random tiny model knows nothing: every verdict is wrong, and the same model scores the same twice
    assert all(r["correct"] == "0" for r in got)
    assert summary["base"]["answer_nll"] == summary["again"]["answer_nll"]
    md = (tmp_path / "eval.md").read_text()
    assert "| base |" in md and "What is SCP?" in md and "❌ wrong (missing: Salient Compressor Pretraining)" in md
    assert md.index("Use base") < md.index("## Figures") < md.index("## Answers")
    assert recommendation["stage"] == "base" and recommendation["adapter"] is None
    assert (tmp_path / "eval.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # the passage changes what the model is asked, hence the reference answer's NLL
    assert summary[OPEN_BOOK]["answer_nll"] != rows[0]["answer_nll"]
    closed = plan_runs([("base", tiny_model, None)], questions, open_book=False)
    assert closed == [("base", tiny_model, None, questions, False)]


def test_open_book_prompt_holds_the_passage_and_the_question(tiny_model):
    from mlx_lm import load

    _, tokenizer = load(str(tiny_model))
    q = {"question": "How many anchor tokens per passage?",
         "passage": "VELLUM compresses each passage into 8 anchor tokens."}
    assert asked(q) == q["question"]
    prompt, ids = prompt_tokens(tokenizer, asked(q, open_book=True))
    assert q["passage"] in prompt and prompt.index(q["passage"]) < prompt.index(q["question"])
    assert tokenizer.decode(ids) == prompt


def _row(stage, kind, correct, qid, nll=1.5):
    return {"stage": stage, "kind": kind, "id": qid, "question": f"Question {qid}?", "answer": "an answer",
            "correct": correct, "facts_missing": "" if correct else "y", "answer_nll": nll,
            "generation_tps": 20.0, "generated_tokens": 3, "peak_memory_gb": 0.5}


def test_summary_table_markdown_and_chart_with_absent_kinds(tmp_path):
    """No heldout_fact questions at all, and the open-book run only on trained ones: "-" in the
    tables, no empty bars, the open_book row marked as the upper bound; each figure with its
    count and 90% interval."""
    rows = [_row("base", "trained", 0, "t1"), _row("base", "trained", 1, "t2"), _row("base", "paraphrase", 0, "p1"),
            _row("base", "control", 1, "c1", nll=None), _row(OPEN_BOOK, "trained", 1, "t1"),
            _row(OPEN_BOOK, "trained", 1, "t2")]
    summary = summarize(rows)
    assert summary[OPEN_BOOK] == {"trained": 1.0, "trained_n": 2, "trained_k": 2, "answer_nll": 1.5,
                                  "generation_tps": 20.0, "peak_memory_gb": 0.5}
    table = summary_table(summary)
    assert table[0].startswith("| stage | paper knowledge (pooled) | trained | paraphrase | control | bleed |")
    cells = [line.strip("|").count("|") for line in table[:4]]  # a delimiter row that does not match hides the table
    assert cells == [cells[0]] * 4, cells
    assert table[2].startswith("| base | 0.00 (0/1, 0.00-0.73) | 0.50 (1/2, 0.12-0.88) | 0.00 (0/1, 0.00-0.73) | "
                               "1.00 (1/1, 0.27-1.00) | - |")
    assert table[3].startswith("| open_book | - | 1.00 (2/2, 0.43-1.00) | - | - | - |") and table[-1] == OPEN_BOOK_NOTE
    write_markdown(rows, summary, {"stage": "base", "model": "models/m", "adapter": None, "notes": []},
                   tmp_path / "eval.md")
    md = (tmp_path / "eval.md").read_text()
    assert "**Use base** (`models/m` without an adapter)" in md
    assert "| trained | Question t1? | an answer **❌ wrong (missing: y)**" in md and OPEN_BOOK_NOTE in md
    assert "| control | Question c1? | an answer **✅ correct** (20 tok/s) |  |" in md
    write_chart(summary, tmp_path / "eval.png")
    assert (tmp_path / "eval.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_bleed_is_counted_against_the_first_stage():
    from omnilm.evaluation import add_bleed

    rows = [dict(_row("base", "control", 1, "c1", None), answer="A day has 24 hours."),
            dict(_row("sft", "control", 0, "c1", None), answer="A typical day in the field is 19.06 kilobytes."),
            dict(_row("base", "control", 1, "c2", None), answer="Paris."),
            dict(_row("sft", "control", 1, "c2", None), answer="Paris.")]
    summary = summarize(add_bleed(rows, {"19.06", "vellum"}))
    assert rows[1]["bleed_terms"] == "19.06" and rows[3]["bleed_terms"] == ""
    assert (summary["sft"]["bleed"], summary["sft"]["bleed_k"], summary["sft"]["bleed_n"]) == (0.5, 1, 2)
    assert summary["base"]["bleed"] == 0.0
    assert "bleed" not in summarize(add_bleed([dict(r) for r in rows], None))["sft"]  # no paper terms: no figure


def test_batched_answers_equal_one_by_one(demo_text_model):
    """Evaluation generates a stage's questions in one batch: greedy answers must not change."""
    from omnilm.chat import load_model

    model, tokenizer = load_model(demo_text_model)
    q = next(q for q in load_questions(REPO / "10_stage1_cpt" / "demo_paper.questions.jsonl") if q["id"] == "d1")
    messages = [asked(q), asked(q, open_book=True)]  # prompts of unequal length: padded in the batch
    batched, run = generate_answers(model, tokenizer, messages, max_tokens=12)
    assert batched == [generate_answer(model, tokenizer, m, 12)[0] for m in messages]
    assert run.generated_tokens > 0 and len(set(batched)) == len(batched)


def test_answers_of_every_kind_in_one_batch_equal_their_own_batches(demo_text_model):
    """A stage answers chat questions, first-sentence control answers and plain-text cloze
    completions in one batch, each with its own limit and stop: the same texts as apart."""
    from omnilm.chat import load_model
    from omnilm.evaluation import answer_plan

    model, tokenizer = load_model(demo_text_model)
    questions = [{"kind": "heldout_fact", "question": "What does the paper measure?"},
                 {"kind": "control", "question": "What is the largest ocean on Earth?"},
                 {"kind": "cloze", "question": "The capital of France is"},
                 {"kind": "control", "question": "Who wrote Hamlet?"}]
    plans = [answer_plan(q, 20) for q in questions]
    assert [p[0] for p in plans] == [20, 20, 16, 20] and [p[2] for p in plans] == [True, True, False, True]
    messages = [q["question"] for q in questions]
    mixed, _ = generate_answers(model, tokenizer, messages, [p[0] for p in plans], enough=[p[1] for p in plans],
                                chat=[p[2] for p in plans])
    apart = [generate_answers(model, tokenizer, [m], limit, enough=enough, chat=chat)[0][0]
             for m, (limit, enough, chat) in zip(messages, plans)]
    assert mixed == apart and all(mixed)


def test_the_open_book_shares_the_base_models_load(tmp_path):
    from omnilm.evaluation import model_loads

    base, adapter = tmp_path / "base", tmp_path / "sft"
    questions = [{"id": "q1", "kind": "heldout_fact", "passage": "p"}, {"id": "q2", "kind": "control"}]
    runs = plan_runs([("base", base, None), ("sft", base, adapter)], questions)
    loads = model_loads(runs)
    assert [(m, a) for m, a, _ in loads] == [(base, None), (base, adapter)]
    assert [(i, name, q["id"], book) for i, name, q, book in loads[0][2]] == [
        (0, "base", "q1", False), (0, "base", "q2", False), (2, "open_book", "q1", True)]


def test_script_refuses_missing_adapter(tiny_model, project_root):
    r = subprocess.run([sys.executable, str(REPO / "30_evaluation" / "compare_stages.py"),
                        "--stages", f"sft={tiny_model}+{project_root / 'adapters' / 'nope'}"],
                       capture_output=True, text=True)
    assert r.returncode == 2 and r.stderr.strip().startswith("error: stage sft: adapter")
    assert not list((project_root / "results").iterdir())


def test_seed_spread_report(tmp_path):
    import importlib.util

    spec = importlib.util.spec_from_file_location("seed_spread", REPO / "experiments" / "sft_seed_spread.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    summary = {"seed0": {"trained": 1.0, "trained_n": 16, "paraphrase": 0.4, "paraphrase_n": 10, "control": 0.8,
                         "control_n": 15},
               "seed3": {"trained": 0.9, "trained_n": 16, "paraphrase": 0.2, "paraphrase_n": 10, "control": 0.6,
                         "control_n": 15},
               "seed5": {"trained": 0.9, "trained_n": 16, "paraphrase": 0.3, "paraphrase_n": 10, "control": 0.9,
                         "control_n": 15}}
    table = module.spread(summary, [0, 3, 5])
    # the median, not the mean, is the figure: one odd seed does not move it
    assert table["control"] == {"per_seed": [0.8, 0.6, 0.9], "median": 0.8, "mean": 0.767, "min": 0.6, "max": 0.9}
    assert table["paraphrase"]["median"] == 0.3
    module.write_report(table, [0, 3, 5], "--learning-rate 5e-5", tmp_path)
    md = (tmp_path / "seed_spread.md").read_text()
    assert "| control | 0.80 | 0.60 | 0.90 | 0.80 | 0.60-0.90 |" in md and "--learning-rate 5e-5" in md
    assert "| heldout_fact | - | - | - | - | - |" in md and "heldout_fact" not in table  # no such questions
    assert md.index("| trained |") < md.index("| heldout_fact |") < md.index("| paraphrase |")
    assert json.loads((tmp_path / "seed_spread.json").read_text())["accuracy"]["trained"]["max"] == 1.0
    bad = subprocess.run([sys.executable, str(REPO / "experiments" / "sft_seed_spread.py"), "--seeds", "1", "1"],
                         capture_output=True, text=True)
    assert bad.returncode != 0 and "two different seeds" in bad.stderr


def test_seed_spread_reuses_the_pipelines_adapter_only_for_its_own_seed_and_defaults(project_root):
    import importlib.util

    spec = importlib.util.spec_from_file_location("seed_spread", REPO / "experiments" / "sft_seed_spread.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    data = project_root / "data" / "sft" / "paper"
    own = project_root / "adapters" / "paper-sft"
    own.mkdir(parents=True)

    def manifest(**args):
        (own / "manifest.json").write_text(json.dumps({"complete": True, "args": {
            "seed": 0, "data": "data/sft/paper", "config": None, **args}}))

    manifest()
    assert module.pipeline_adapter("paper", data, 0) == own
    assert module.pipeline_adapter("paper", data, 1) is None  # another seed is trained
    assert module.pipeline_adapter("paper", project_root / "data" / "sft" / "other", 0) is None
    manifest(config="configs/x.yaml")  # options from a file: not the defaults
    assert module.pipeline_adapter("paper", data, 0) is None
    (own / "manifest.json").write_text(json.dumps({"complete": False, "args": {"seed": 0, "data": "data/sft/paper"}}))
    assert module.pipeline_adapter("paper", data, 0) is None  # an unfinished run


def test_per_kind_keeps_the_first_questions_of_every_kind_in_order():
    from omnilm.errors import UserError
    from omnilm.evaluation import first_of_each_kind

    questions = [{"id": str(i), "kind": kind} for i, kind in enumerate("ttcpctpc")]
    assert [q["id"] for q in first_of_each_kind(questions, 1)] == ["0", "2", "3"]
    assert [q["id"] for q in first_of_each_kind(questions, 2)] == ["0", "1", "2", "3", "4", "6"]
    assert first_of_each_kind(questions, 0) == questions
    with pytest.raises(UserError):
        first_of_each_kind(questions, -1)
