"""The shared LoRA trainer: answer-only chat masking, early stopping that keeps the
best weights, resume after a kill, SFT continuing a CPT adapter (tiny model)."""
import argparse
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
CPT_SCRIPT = REPO / "10_stage1_cpt" / "train_cpt.py"
SFT_SCRIPT = REPO / "20_stage2_sft" / "train_sft.py"

# A validation text that shares the start of the training text: at this learning
# rate the tiny model's validation loss falls for 3 steps, then jumps up.
TRAIN_TEXT = "the cat sat on the mat and the dog sat on the log " * 4
VALID_TEXT = "the cat sat on the mat and the dog ran in the park x"


def script_defaults(path):
    """{option: default} of a training script, as its --print-config prints them."""
    printed = subprocess.run([sys.executable, str(path), "--print-config"], capture_output=True, text=True, check=True)
    (_, options), = yaml.safe_load(printed.stdout).items()
    return options


def run_args(script, **options):
    """The options a script would resolve with no config file, plus `options`."""
    return argparse.Namespace(**{**script_defaults(script), "resume": False, "force": False, "config": None,
                                 **options})


def write_jsonl(path, rows):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def text_data(folder, model):
    write_jsonl(folder / "train.jsonl", [{"text": TRAIN_TEXT}] * 2)
    write_jsonl(folder / "valid.jsonl", [{"text": VALID_TEXT}])
    (folder / "manifest.json").write_text(json.dumps({"stage": "prepare", "args": {"model": str(model)}}))
    return folder


def qa(i):
    return {"messages": [{"role": "user", "content": f"How many widgets does protocol {i} use?"},
                         {"role": "assistant", "content": f"Protocol {i} uses {7 * i} quantum widgets."}]}


def val_loss(model_dir, adapter, data_file):
    """The validation loss of base + adapter measured from scratch, as the trainer does."""
    from mlx_lm.tuner.trainer import evaluate

    from omnilm.chat import load_model
    from omnilm.training import load_split

    model, tokenizer = load_model(model_dir, adapter)
    return evaluate(model, load_split(data_file, tokenizer, True), batch_size=1, num_batches=-1)


def read_manifest(folder):
    return json.loads((folder / "manifest.json").read_text())


def test_chat_examples_carry_loss_on_the_answer_only(demo_text_model):
    import mlx.core as mx
    from mlx_lm.tuner.trainer import default_loss
    from mlx_lm.utils import load_tokenizer

    from omnilm.training import chat_tokens

    tokenizer = load_tokenizer(demo_text_model)
    messages = [{"role": "user", "content": "What is FOO?"}, {"role": "assistant", "content": "FOO is a bar."},
                {"role": "user", "content": "And BAZ?"}, {"role": "assistant", "content": "BAZ is 42 quxes."}]
    tokens, start = chat_tokens(tokenizer, messages)
    assert tokens == tokenizer.apply_chat_template(messages, return_dict=False)  # the template's own tokens
    # the template wraps past answers in an empty think block: that is prompt, not answer
    assert tokenizer.decode(tokens[:start]).endswith("<|im_start|>assistant\n<think>\n\n</think>\n\n")
    assert tokenizer.decode(tokens[start:]) == "BAZ is 42 quxes.<|im_end|>\n"
    # mlx-lm's loss counts exactly those tokens (a first answer in the history counts nothing)
    seq = mx.array([tokens])

    def zero_logits(x):
        return mx.zeros((*x.shape, len(tokenizer.vocab)))

    _, ntoks = default_loss(zero_logits, seq, mx.array([[start, len(tokens)]]))
    assert ntoks.item() == len(tokens) - start
    _, unmasked = chat_tokens(tokenizer, messages, mask_prompt=False)
    assert unmasked == 0


def test_statement_text_rows_among_chat_rows_carry_loss_on_every_token(demo_text_model, tmp_path):
    from mlx_lm.utils import load_tokenizer

    from omnilm.errors import UserError
    from omnilm.training import chat_tokens, load_split

    tokenizer = load_tokenizer(demo_text_model)
    chat = {"messages": [{"role": "user", "content": "What is FOO?"}, {"role": "assistant", "content": "FOO is a bar."}]}
    statement = {"text": "FOO has 6 layers.\n\nThe FOO paper states that BAZ uses 48 probes.", "source": "statement"}
    path = tmp_path / "train.jsonl"
    path.write_text(json.dumps(chat) + "\n" + json.dumps(statement) + "\n")
    data = load_split(path, tokenizer, True)
    assert data.sources == [None, "statement"]
    assert data[0] == chat_tokens(tokenizer, chat["messages"]) and data[0][1] > 0  # the question is masked
    tokens, start = data[1]
    assert start == 0 and tokens[-1] == tokenizer.eos_token_id  # plain text: loss on all of it, then the end
    assert tokenizer.decode(tokens[:-1]) == statement["text"]
    path.write_text(json.dumps(chat) + "\n" + json.dumps({"prompt": "x"}) + "\n")
    with pytest.raises(UserError, match="neither"):
        load_split(path, tokenizer, True)


def test_rising_validation_loss_stops_early_and_keeps_the_best_weights(tiny_model, project_root):
    from omnilm.training import train_adapter

    data = text_data(project_root / "data" / "cpt" / "rise", tiny_model)
    args = run_args(CPT_SCRIPT, data=str(data), num_layers=2, rank=8, learning_rate=3e-3, iters=30,
                    eval_every=1, patience=2, min_delta=0.01)
    metrics, folder = train_adapter("cpt", args)

    assert folder == project_root / "adapters" / "rise-cpt"
    assert metrics["stop"] == "early stop"
    assert metrics["iterations"] == metrics["best_iteration"] + 2 < 30  # two evaluations without gain
    val = {int(r["iteration"]): float(r["val_loss"]) for r in read_csv(folder / "losses.csv") if r["val_loss"]}
    assert metrics["best_iteration"] > 0 and val[metrics["iterations"]] > metrics["best_val_loss"]
    assert metrics["best_val_loss"] < metrics["val_loss_before"]
    # adapters.safetensors really holds the best weights, last_adapters the last ones
    best = val_loss(tiny_model, folder, data / "valid.jsonl")
    assert best == pytest.approx(metrics["best_val_loss"], rel=1e-4)
    last_folder = project_root / "last"
    last_folder.mkdir()
    (last_folder / "adapter_config.json").write_text((folder / "adapter_config.json").read_text())
    os.link(folder / "last_adapters.safetensors", last_folder / "adapters.safetensors")
    assert val_loss(tiny_model, last_folder, data / "valid.jsonl") == pytest.approx(metrics["last_val_loss"], rel=1e-4)
    manifest = read_manifest(folder)
    assert manifest["complete"] is True and manifest["base_model"] == str(tiny_model)
    assert (folder / "losses.png").stat().st_size > 1000 and not (folder / "resume").exists()


def read_csv(path):
    import csv

    with open(path) as f:
        return list(csv.DictReader(f))


def cpt_command(model, data, adapter, *extra):
    return [sys.executable, str(CPT_SCRIPT), "--model", str(model), "--data", str(data), "--adapter-path",
            str(adapter), "--num-layers", "2", "--rank", "4", "--learning-rate", "1e-3", "--iters", "16",
            "--eval-every", "2", "--patience", "100", *extra]


@pytest.mark.slow
def test_a_killed_run_resumes_where_it_stopped_and_ends_as_if_never_stopped(tiny_model, project_root):
    import mlx.core as mx

    from omnilm.training import train_adapter

    data = text_data(project_root / "data" / "cpt" / "paper", tiny_model)
    write_jsonl(data / "train.jsonl", [{"text": f"{TRAIN_TEXT} number {i}"} for i in range(5)])
    env = {**os.environ, "OMNILM_ROOT": str(project_root)}
    killed = project_root / "adapters" / "killed"
    proc = subprocess.Popen(cpt_command(tiny_model, data, killed, "--resume"), env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    state = killed / "resume" / "state.json"
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        if state.exists() and json.loads(state.read_text())["iteration"] >= 5:
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    stopped_at = json.loads(state.read_text())["iteration"]
    assert 5 <= stopped_at < 16 and read_manifest(killed)["complete"] is False  # written first, the project's folder

    out = subprocess.run(cpt_command(tiny_model, data, killed, "--resume"), env=env, capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert f"resuming adapters/killed at iteration {stopped_at}/16" in out.stdout
    manifest = read_manifest(killed)
    assert manifest["complete"] and manifest["metrics"]["iterations"] == 16
    val_iterations = [int(r["iteration"]) for r in read_csv(killed / "losses.csv") if r["val_loss"]]
    assert val_iterations == sorted(set(val_iterations))  # the re-evaluated resume point counted once
    assert val_iterations[0] == 0 and stopped_at in val_iterations and val_iterations[-1] == 16

    # the same run uninterrupted: same data order, same optimizer state, same weights
    straight = project_root / "adapters" / "straight"
    args = run_args(CPT_SCRIPT, model=str(tiny_model), data=str(data), adapter_path=str(straight), num_layers=2,
                    rank=4, learning_rate=1e-3, iters=16, eval_every=2, patience=100, resume=True)
    train_adapter("cpt", args)
    val_iterations = [int(r["iteration"]) for r in read_csv(straight / "losses.csv") if r["val_loss"]]
    # mlx-lm's cadence validates after 1, 3 ... 15 steps; the one a step before the last is skipped
    assert val_iterations == [0, 1, 3, 5, 7, 9, 11, 13, 16]
    a, b = mx.load(str(killed / "last_adapters.safetensors")), mx.load(str(straight / "last_adapters.safetensors"))
    assert a.keys() == b.keys()
    assert all(mx.allclose(a[k], b[k], atol=1e-5).item() for k in a)

    # a finished run given --resume trains again from the start (the pipeline decides what to rerun)
    out = subprocess.run(cpt_command(tiny_model, data, killed, "--resume", "--iters", "2"), env=env,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0 and "holds a finished run: training again from the start" in out.stdout
    assert read_manifest(killed)["metrics"]["iterations"] == 2


def test_an_existing_adapter_is_not_replaced_without_resume_or_force(tiny_model, project_root):
    from omnilm.errors import UserError
    from omnilm.training import train_adapter

    data = text_data(project_root / "data" / "cpt" / "paper", tiny_model)
    args = run_args(CPT_SCRIPT, data=str(data), num_layers=1, rank=2, iters=1, eval_every=1)
    train_adapter("cpt", args)
    with pytest.raises(UserError, match="already holds a finished adapter; pass --force"):
        train_adapter("cpt", args)
    # the project's own folder is trained again with --force (its resume/ is the project's too)
    folder = project_root / "adapters" / "paper-cpt"
    (folder / "resume").mkdir()
    (folder / "resume" / "state.json").write_text("{}")
    args.force = True
    train_adapter("cpt", args)
    assert read_manifest(folder)["complete"] is True and not (folder / "resume").exists()
    out = subprocess.run([sys.executable, str(CPT_SCRIPT), "--data", str(project_root / "data" / "nothing")],
                         env={**os.environ, "OMNILM_ROOT": str(project_root)}, capture_output=True, text=True)
    assert out.returncode == 2 and out.stderr.count("\n") == 1 and "has no train.jsonl" in out.stderr


def cpt_and_sft_data(project_root, tiny_model, cpt_iters):
    """A CPT adapter (adapters/paper-cpt) and SFT data (data/sft/paper) on the tiny model."""
    from omnilm.training import train_adapter

    cpt_data = text_data(project_root / "data" / "cpt" / "paper", tiny_model)
    train_adapter("cpt", run_args(CPT_SCRIPT, data=str(cpt_data), num_layers=2, rank=4, iters=cpt_iters,
                                  eval_every=2, learning_rate=1e-3))
    sft_data = project_root / "data" / "sft" / "paper"
    write_jsonl(sft_data / "train.jsonl", [qa(i) for i in range(8)])
    write_jsonl(sft_data / "valid.jsonl", [qa(i) for i in range(8, 10)])
    return project_root / "adapters" / "paper-cpt", sft_data


def test_sft_starts_from_the_cpt_adapter_and_names_it(tiny_model, project_root):
    from mlx.utils import tree_flatten
    from mlx_lm import convert

    from omnilm.chat import load_model
    from omnilm.errors import UserError
    from omnilm.training import train_adapter

    cpt, sft_data = cpt_and_sft_data(project_root, tiny_model, cpt_iters=4)

    metrics, folder = train_adapter("sft", run_args(SFT_SCRIPT, data=str(sft_data), iters=4, eval_every=8,
                                                    batch_size=2, learning_rate=1e-3))
    # shorter than the report cadence (5 steps), it still reports its speed and memory
    assert metrics["tokens_per_second"] > 0 and metrics["peak_memory_gb"] > 0
    assert folder == project_root / "adapters" / "paper-sft"  # defaults: data name, init adapter, base model
    manifest = read_manifest(folder)
    assert manifest["continued_from"] == "adapters/paper-cpt" and manifest["base_model"] == str(tiny_model)
    config, cpt_config = (json.loads((f / "adapter_config.json").read_text()) for f in (folder, cpt))
    assert config["num_layers"] == cpt_config["num_layers"] == 2
    # by default the CPT ranks stay frozen under as many new ones: one LoRA of twice the rank
    assert config["lora_parameters"]["rank"] == 2 * cpt_config["lora_parameters"]["rank"] == 8
    # its first validation is the CPT adapter's own loss on the SFT validation set
    assert metrics["val_loss_before"] == pytest.approx(val_loss(tiny_model, cpt, sft_data / "valid.jsonl"), rel=1e-4)
    assert metrics["val_loss_before"] != pytest.approx(val_loss(tiny_model, None, sft_data / "valid.jsonl"), rel=1e-3)

    # the adapter loads on a 4-bit version of the base too
    q4 = project_root / "models" / "tiny-4bit"
    convert(str(tiny_model), str(q4), quantize=True, q_bits=4, q_group_size=32)
    model, _ = load_model(q4, folder)
    assert any(k.endswith("lora_a") for k, _ in tree_flatten(model.parameters()))

    # an adapter for another base is refused in one sentence
    other = make_other_model(tiny_model, project_root / "models" / "other")
    with pytest.raises(UserError, match="does not fit"):
        train_adapter("sft", run_args(SFT_SCRIPT, model=str(other), data=str(sft_data),
                                      adapter_path=str(project_root / "adapters" / "x")))


def test_sft_with_a_frozen_init_keeps_the_cpt_ranks_exactly_and_saves_one_lora(tiny_model, project_root):
    import mlx.core as mx

    from omnilm.training import train_adapter

    cpt, sft_data = cpt_and_sft_data(project_root, tiny_model, cpt_iters=2)
    metrics, folder = train_adapter("sft", run_args(SFT_SCRIPT, data=str(sft_data), iters=4, eval_every=2,
                                                    batch_size=2, learning_rate=1e-2, freeze_init=True, rank=2))
    # its first validation is the CPT adapter's own loss: the new ranks start at B = 0
    assert metrics["val_loss_before"] == pytest.approx(val_loss(tiny_model, cpt, sft_data / "valid.jsonl"), rel=1e-4)
    assert json.loads((folder / "adapter_config.json").read_text())["lora_parameters"]["rank"] == 6
    assert read_manifest(folder)["args"]["frozen_rank"] == 4
    before, after = mx.load(str(cpt / "adapters.safetensors")), mx.load(str(folder / "adapters.safetensors"))
    assert set(before) == set(after)
    moved = 0
    for name, w in before.items():
        new = after[name]
        head, tail = (new[:, :4], new[:, 4:]) if name.endswith("lora_a") else (new[:4], new[4:])
        assert mx.array_equal(head, w), name  # the CPT ranks, bit for bit
        moved += name.endswith("lora_b") and bool(mx.any(tail != 0))  # the new ranks learned
    assert moved > 0


class Processes:
    """The two calls mlx-lm's batching makes on a distributed group."""

    def __init__(self, rank, size):
        self.rank, self.size = (lambda: rank), (lambda: size)


@pytest.mark.parametrize("rows,batch,processes", [(7, 3, 1), (8, 4, 1), (2, 4, 1), (7, 4, 2), (5, 4, 4)])
def test_validation_batches_hold_every_row_once(rows, batch, processes):
    """mlx-lm's batching drops a partial last batch; validation must not, nor repeat the
    whole set (the leftover rows repeat only to fill a batch the processes can share)."""
    from omnilm.training import every_row_batches

    data = [([row + 1] * (row + 2), 0) for row in range(rows)]  # (tokens, answer start); first token = row + 1
    seen = []
    for rank in range(processes):
        for tokens, _ in every_row_batches(data, batch, 64, comm_group=Processes(rank, processes)):
            seen += [int(t) - 1 for t in tokens[:, 0].tolist()]
    assert sorted(set(seen)) == list(range(rows))
    extra = len(seen) - rows  # repeats: only to round the leftover up to the process count
    assert 0 <= extra < processes


def test_replay_distillation_targets_line_up_with_the_answer_tokens(tiny_model, tmp_path):
    """The teacher covers each replay answer's tokens (and only replay rows); with a
    one-hot teacher on the true tokens the loss is mlx-lm's own, token for token."""
    import numpy as np
    from mlx_lm.tuner.trainer import default_loss, iterate_batches

    from omnilm.chat import load_model
    from omnilm.training import (chat_tokens, head_split, load_split, make_loss, replay_teacher, with_positions,
                                 with_teacher)

    model, tokenizer = load_model(tiny_model)
    rows = [qa(1), dict(qa(2), source="replay"), dict(qa(3), source="replay"), qa(4)]
    write_jsonl(tmp_path / "train.jsonl", rows)
    data = load_split(tmp_path / "train.jsonl", tokenizer, True)
    teacher = replay_teacher(model, data, 5)
    replay_tokens = [chat_tokens(tokenizer, r["messages"]) for r in rows[1:3]]
    assert set(teacher) == {tuple(t) for t, _ in replay_tokens}
    for tokens, start in replay_tokens:
        first, ids, probs = teacher[tuple(tokens)]
        assert first == start - 1 and ids.shape == probs.shape == (len(tokens) - start, 5)
        assert np.allclose(probs.sum(axis=1), 1, atol=1e-4)

    one_hot = {tuple(t): (start - 1, np.array(t[start:])[:, None], np.ones((len(t) - start, 1), np.float32))
               for t, start in replay_tokens}
    loss = make_loss(head_split(model))
    batch, lengths = next(iterate_batches(data, 4, 1024))
    plain, _ = default_loss(model, batch, lengths)
    batch = with_positions(batch, lengths)
    same, _ = loss(model, *with_teacher(*batch, one_hot, 1))
    assert float(same) == pytest.approx(float(plain), rel=1e-5)
    soft, _ = loss(model, *with_teacher(*batch, teacher, 5))
    assert abs(float(soft) - float(plain)) > 1e-3  # the real teacher's targets are not the tokens
    assert float(loss(model, *batch)[0]) == pytest.approx(float(plain), rel=1e-6)


def test_the_loss_at_the_loss_positions_is_mlx_lms_loss(tiny_model, tmp_path):
    """The head and the log-sum-exp run only where the loss counts (answers, not prompts
    or padding), and give mlx-lm's loss and token count; a model whose logits are not
    head(trunk(x)) (here a logit scale after the head) keeps its full logits, same loss."""
    import mlx.core as mx
    from mlx_lm.tuner.trainer import default_loss

    from omnilm.chat import load_model
    from omnilm.training import epoch_batches, head_split, load_split, loss_positions, make_loss

    model, tokenizer = load_model(tiny_model)
    long = {"messages": [qa(1)["messages"][0], {"role": "assistant", "content": "Many widgets. " * 9}]}
    write_jsonl(tmp_path / "train.jsonl", [qa(i) for i in range(7)] + [long, {"text": "Widgets are blue."}])
    data = load_split(tmp_path / "train.jsonl", tokenizer, True)
    split = head_split(model)
    assert split is not None and split[0] is model.model
    scaled = lambda x: model(x) / 2  # noqa: E731
    scaled.model, scaled.lm_head = model.model, model.lm_head
    assert head_split(scaled) is None
    loss, full = make_loss(split), make_loss(None)
    batches = epoch_batches(0)(data, 4, 1024, loop=True)
    for _ in range(3):
        batch, lengths, positions = next(batches)
        counted = int((positions >= 0).sum())
        assert positions.size % 8 == 0 and counted < batch[:, 1:].size  # prompts and padding left out
        value, ntoks = loss(model, batch, lengths, positions)
        plain, plain_ntoks = default_loss(model, batch, lengths)
        assert int(ntoks) == int(plain_ntoks) == counted
        assert float(value) == pytest.approx(float(plain), rel=1e-5)
        assert float(full(scaled, batch, lengths, positions)[0]) == pytest.approx(
            float(default_loss(scaled, batch, lengths)[0]), rel=1e-5)
    # rows (start, end) = (2, 3) and (1, 4) of a width-5 batch: steps 2-3 of row 0, 1-4 of row 1
    assert loss_positions(mx.array([[2, 3], [1, 4]]), 5).tolist() == [1, 2, 5, 6, 7, 8, -1, -1]


def test_the_demo_model_and_a_tied_model_split_at_their_head(demo_text_model):
    """The split must hold for the demo model and for a model whose head is its embedding
    matrix (tied), or their training silently falls back to full logits."""
    import mlx.core as mx
    from mlx_lm.models import llama

    from omnilm.chat import load_model
    from omnilm.training import head_split

    model, _ = load_model(demo_text_model)
    trunk, head = head_split(model)
    assert trunk is model.model and head is model.lm_head
    tied = llama.Model(llama.ModelArgs.from_dict({
        "model_type": "llama", "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1,
        "num_attention_heads": 2, "num_key_value_heads": 1, "vocab_size": 100, "rms_norm_eps": 1e-5,
        "tie_word_embeddings": True}))
    mx.eval(tied.parameters())
    trunk, head = head_split(tied)
    assert trunk is tied.model and "lm_head" not in tied and head.__self__ is tied.model.embed_tokens


def test_batches_end_at_the_longest_row_rounded_to_pad_to_with_the_same_loss(tiny_model, tmp_path):
    """Training and validation batches are cut to the longest row rounded up to PAD_TO
    tokens instead of mlx-lm's 32; the cut columns were padding, so the batch is
    mlx-lm's own up to there and the loss does not change."""
    import mlx.core as mx
    from mlx_lm.tuner.trainer import default_loss, iterate_batches

    from omnilm.chat import load_model
    from omnilm.training import epoch_batches, load_split
    from omnilm.training.data import PAD_TO

    model, tokenizer = load_model(tiny_model)
    long = {"messages": [qa(1)["messages"][0], {"role": "assistant", "content": "Many widgets. " * 9}]}
    write_jsonl(tmp_path / "train.jsonl", [qa(i) for i in range(7)] + [long])
    data = load_split(tmp_path / "train.jsonl", tokenizer, True)
    ours, theirs = epoch_batches(0)(data, 4, 1024, loop=True), iterate_batches(data, 4, 1024, seed=0)
    for _ in range(2):
        (batch, lengths, _), (full, full_lengths) = next(ours), next(theirs)
        longest = int(lengths[:, 1].max())
        assert (batch.shape[1] - 1) % PAD_TO == 0 and longest <= batch.shape[1] - 1 < longest + PAD_TO
        assert batch.shape[1] <= full.shape[1] and mx.array_equal(batch, full[:, :batch.shape[1]])
        assert mx.array_equal(lengths, full_lengths)
        assert float(default_loss(model, batch, lengths)[0]) == pytest.approx(
            float(default_loss(model, full, full_lengths)[0]), rel=1e-5)
    for batch, lengths, _ in epoch_batches(0)(data, 3, 1024):  # validation: every row once, padded alike
        assert (batch.shape[1] - 1) % PAD_TO == 0 and batch.shape[1] - 1 < int(lengths[:, 1].max()) + PAD_TO


def test_sft_reports_the_replay_loss_apart_from_the_document_loss(tiny_model, project_root):
    """Validation rows tagged source=replay get their own loss at every evaluation:
    in losses.csv, in the manifest and in the summary line."""
    import csv

    from omnilm.training import summary_line, train_adapter

    data = project_root / "data" / "sft" / "mixed"
    general = [{"messages": [{"role": "user", "content": f"What colour is thing {i}?"},
                             {"role": "assistant", "content": f"Thing {i} is a calm shade of blue."}],
                "source": "replay"} for i in range(3)]
    write_jsonl(data / "train.jsonl", [qa(i) for i in range(6)] + general[:2])
    write_jsonl(data / "valid.jsonl", [dict(qa(i), source="golden") for i in range(6, 9)] + general[2:])
    metrics, folder = train_adapter("sft", run_args(SFT_SCRIPT, model=str(tiny_model), data=str(data),
                                                    init_adapter="none", num_layers=2, rank=4, scale=20.0,
                                                    iters=4, eval_every=2, batch_size=2, learning_rate=1e-3,
                                                    patience=10))
    with open(folder / "losses.csv") as f:
        evals = [r for r in csv.DictReader(f) if r["val_loss"]]
    assert len(evals) >= 3 and int(evals[0]["iteration"]) == 0
    for r in evals:  # the total is the token-weighted mean of the two groups, so it lies between them
        total, document, replay = float(r["val_loss"]), float(r["val_loss_document"]), float(r["val_loss_replay"])
        assert min(document, replay) - 1e-4 <= total <= max(document, replay) + 1e-4
        assert document != pytest.approx(replay, rel=1e-3)
    replay_column = {int(r["iteration"]): float(r["val_loss_replay"]) for r in evals}
    trend = metrics["replay_val_loss"]
    assert trend["first"] == pytest.approx(replay_column[0], abs=1e-4)
    assert trend["at_best"] == pytest.approx(replay_column[metrics["best_iteration"]], abs=1e-4)
    assert trend["lowest"] == pytest.approx(min(replay_column.values()), abs=1e-4)
    assert replay_column[trend["lowest_iteration"]] == pytest.approx(trend["lowest"], abs=1e-4)
    assert read_manifest(folder)["metrics"]["replay_val_loss"] == trend
    # the total the callback weighs together from the groups is mlx-lm's loss over every row
    assert val_loss(tiny_model, folder, data / "valid.jsonl") == pytest.approx(metrics["best_val_loss"], rel=1e-4)
    assert "general answers (replay)" in summary_line("sft", metrics, folder)
    assert read_manifest(folder)["args"]["replay_distill"] == 32  # the default: replay learns the base's distribution


def make_other_model(tiny_model, folder):
    """The tiny model at half the width: the CPT adapter's matrices no longer fit."""
    import shutil

    import mlx.core as mx
    from mlx.utils import tree_flatten
    from mlx_lm.models import llama

    config = json.loads((tiny_model / "config.json").read_text())
    config["hidden_size"], config["intermediate_size"] = 32, 64
    folder.mkdir(parents=True)
    model = llama.Model(llama.ModelArgs.from_dict(config))
    mx.save_safetensors(str(folder / "model.safetensors"), dict(tree_flatten(model.parameters())))
    (folder / "config.json").write_text(json.dumps(config))
    for f in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copyfile(tiny_model / f, folder / f)
    return folder


@pytest.mark.parametrize("text", ["{", "[1, 2]", "\udcff"])
def test_an_init_adapter_with_a_broken_config_is_refused_in_one_line(tmp_path, text):
    from argparse import Namespace

    from omnilm.errors import UserError
    from omnilm.training.run import lora_shape

    (tmp_path / "adapter_config.json").write_text(text, errors="surrogateescape")
    shape = Namespace(num_layers=None, rank=None, scale=None, dropout=None)
    with pytest.raises(UserError) as refused:
        lora_shape(shape, tmp_path, 30)
    assert "adapter_config.json" in str(refused.value) and "\n" not in str(refused.value)
