"""LoRA training shared by stage 10 (CPT on {"text"}) and stage 20 (SFT on chat
{"messages"}, answers only), on mlx-lm's own trainer through its callback.

What mlx-lm's loop lacks is added from the callback: early stopping that keeps the
BEST validation weights, a checkpoint at every evaluation to resume from (weights,
optimizer state, iteration, best loss, loss history), losses to CSV/PNG, an ETA.
The callback ends mlx-lm's loop by raising StopTraining right after an evaluation,
before the next optimizer step, so the last weights are exactly the ones evaluated.
Data-parallel under `mlx.launch`: every process computes the same (all-reduced)
validation loss and so stops at the same step; only rank 0 writes and prints."""
import math
import time
from pathlib import Path

from omnilm import adapters as af
from omnilm import progress
from omnilm.errors import UserError
from omnilm.jsonl import read_jsonl
from omnilm.manifest import base_model_of, fingerprint, sha256_file, write_manifest
from omnilm.paths import adapters_dir, data_dir, display, resolve


class StopTraining(Exception):
    """Raised from the callback to end mlx-lm's training loop after an evaluation."""

    def __init__(self, reason):
        super().__init__(reason)
        self.reason = reason


# ---------------------------------------------------------------- data

def chat_tokens(tokenizer, messages, mask_prompt=True):
    """(token ids, loss start): a conversation in the model's own chat template, with
    everything before the last assistant answer counted as prompt.

    The prompt is the generation prompt with reasoning skipped: for a template that
    renders past answers as `<think>\\n\\n</think>\\n\\n` + answer, the empty think block
    is prompt too, so only the answer and its end token carry loss. Token boundaries
    come from the tokenizer's character offsets: the prompt tokenized alone may
    split differently ('\\n' + '\\n' vs '\\n\\n') than inside the full text."""
    text = tokenizer.apply_chat_template(messages, tokenize=False)
    hf = getattr(tokenizer, "_tokenizer", tokenizer)
    enc = hf(text, add_special_tokens=False, return_offsets_mapping=mask_prompt)
    tokens = list(enc["input_ids"])
    if not mask_prompt:
        return tokens, 0
    if messages[-1].get("role") != "assistant":
        raise UserError("a chat example must end with an assistant answer to train on")
    head = messages[:-1]
    for options in ({"skip_reasoning": True}, {}):
        prompt = tokenizer.apply_chat_template(head, add_generation_prompt=True, tokenize=False, **options)
        if text.startswith(prompt):
            break
    else:
        raise UserError("the chat template renders the prompt differently inside the conversation; "
                        "cannot mask it (train with --no-mask-prompt)")
    start = next((i for i, (_, end) in enumerate(enc["offset_mapping"]) if end > len(prompt)), len(tokens))
    return tokens, start


class ChatAnswers:
    """{"messages": [...]} rows for mlx-lm's trainer; loss on the last answer only.
    A {"text"} row among them (stage 20's fact statements) is plain text, loss on all."""

    def __init__(self, rows, tokenizer, mask_prompt=True):
        self._rows, self.tokenizer, self.mask_prompt = rows, tokenizer, mask_prompt

    def process(self, row):
        if "messages" not in row:  # mlx-lm's own rule for text rows (the end token appended)
            from mlx_lm.tuner.datasets import TextDataset

            return TextDataset([], self.tokenizer).process(row)
        return chat_tokens(self.tokenizer, row["messages"], self.mask_prompt)

    def __getitem__(self, i):
        return self._rows[i]

    def __len__(self):
        return len(self._rows)


class Rows:
    """Some rows of a processed dataset, in the given order (repeats allowed)."""

    def __init__(self, data, indices):
        self._data, self._indices = data, list(indices)

    def itemlen(self, i):
        return self._data.itemlen(self._indices[i])

    def __getitem__(self, i):
        return self._data[self._indices[i]]

    def __len__(self):
        return len(self._indices)


def every_row_batches(dataset, batch_size, max_seq_length, comm_group=None):
    """Validation batches that hold every row once. mlx-lm's batching drops the last
    partial batch, so the rows left over make one smaller batch of their own (padded
    with repeats of themselves to a multiple of the process count, whose rows it
    splits). Before, the whole set was repeated to a whole number of batches: 4x the
    work on the demo's 25 rows, about a third of SFT's time."""
    from mlx_lm.tuner.trainer import iterate_batches

    n, processes = len(dataset), comm_group.size() if comm_group is not None else 1
    whole = n // batch_size * batch_size
    if whole:
        yield from iterate_batches(Rows(dataset, range(whole)), batch_size, max_seq_length, comm_group=comm_group)
    rest = n - whole
    if rest:
        size = -(-rest // processes) * processes
        yield from iterate_batches(Rows(dataset, [whole + i % rest for i in range(size)]), size, max_seq_length,
                                   comm_group=comm_group)


def load_split(path, tokenizer, mask_prompt):
    """One split as an mlx-lm dataset, by the format of its rows; `.sources` holds each
    row's "source" (stage 20 tags the model's own general answers "replay")."""
    from mlx_lm.tuner.datasets import CacheDataset, TextDataset

    rows = read_jsonl(path, "training data")
    if not rows:
        raise UserError(f"{display(path)} is empty")
    first, sources = rows[0], [r.get("source") for r in rows]
    if "messages" in first:
        if any("messages" not in r and "text" not in r for r in rows):
            raise UserError(f"{display(path)}: a row among chat rows has neither \"messages\" nor \"text\"")
        data = ChatAnswers(rows, tokenizer, mask_prompt)
    elif "prompt" in first and "completion" in first:
        rows = [{"messages": [{"role": "user", "content": r["prompt"]},
                              {"role": "assistant", "content": r["completion"]}]} for r in rows]
        data = ChatAnswers(rows, tokenizer, mask_prompt)
    elif "text" in first:
        data = TextDataset(rows, tokenizer)
    else:
        raise UserError(f"{display(path)}: rows need \"text\", \"messages\" or \"prompt\"+\"completion\"")
    dataset = CacheDataset(data)
    dataset.sources = sources
    return dataset


def replay_rows(dataset):
    """Indices of the rows of a load_split dataset tagged source=replay."""
    return [i for i, source in enumerate(getattr(dataset, "sources", ())) if source == "replay"]


def validation_groups(dataset):
    """{"document": rows, "replay": rows} of a validation split that holds both kinds, else {}.

    The two losses are reported apart because their sum hides forgetting. On the demo
    (seed 0, replay by plain cross-entropy) the document's loss fell 3.32 -> 0.03 over
    SFT, while the replay loss was lowest (0.18) at step 49 and rose to 0.24 after; in
    a run evaluated at every epoch, control accuracy stayed at its CPT level (0.80) up
    to that lowest point and fell to 0.53-0.67 after it."""
    replay = replay_rows(dataset)
    if not replay or len(replay) == len(dataset):
        return {}
    document = sorted(set(range(len(dataset))) - set(replay))
    return {"document": Rows(dataset, document), "replay": Rows(dataset, replay)}


def replay_teacher(model, dataset, k):
    """{token tuple: (first loss position, top-k ids [n, k], their probabilities [n, k])}
    for the replay rows of a load_split dataset, from the model as it is now (the base, before
    LoRA): the targets of replay by distillation.

    Why: cross-entropy on the base model's greedy answers, repeated for 6 epochs, makes
    those answers certain, and they bleed into nearby questions (after "the animal with
    black and white stripes is the African elephant", the base's own mistake, "the
    animal that says moo is the African elephant"). Matching the base's distribution
    keeps its uncertainty. Measured on the demo over SFT seeds 0-2: control 0.80 /
    0.73 / 0.80 vs 0.80 / 0.67 / 0.60, paraphrase 0.60 / 0.50 / 0.40 vs 0.40 / 0.20 /
    0.40, domain 1.00 in both."""
    import mlx.core as mx
    import numpy as np

    teacher = {}
    for i in replay_rows(dataset):
        tokens, start = dataset[i]
        logits = model(mx.array([tokens[:-1]]))[0, max(start - 1, 0):].astype(mx.float32)
        probs = mx.softmax(logits, axis=-1)
        ids = mx.argsort(-probs, axis=-1)[:, :k]
        top = mx.take_along_axis(probs, ids, axis=-1)
        top = top / top.sum(axis=-1, keepdims=True)
        teacher[tuple(tokens)] = (max(start - 1, 0), np.array(ids), np.array(top))
    return teacher


def with_teacher(batch, lengths, teacher, k):
    """The batch plus teacher arrays [B, L, k] (probabilities 0 where a row has none)."""
    import mlx.core as mx
    import numpy as np

    b, ln = np.array(batch), np.array(lengths)
    rows, width = b.shape[0], b.shape[1] - 1
    ids, probs = np.zeros((rows, width, k), np.int32), np.zeros((rows, width, k), np.float32)
    for r in range(rows):
        t = teacher.get(tuple(b[r, :ln[r, 1]].tolist()))
        if t:
            start, ti, tq = t
            n = min(len(ti), width - start)
            ids[r, start:start + n], probs[r, start:start + n] = ti[:n], tq[:n]
    return batch, lengths, mx.array(ids), mx.array(probs)


def distill_loss(model, batch, lengths, ids=None, probs=None):
    """mlx-lm's loss, except that positions with teacher probabilities take the cross
    entropy to the teacher's top-k distribution instead of to the token."""
    import mlx.core as mx
    import mlx.nn as nn

    inputs, targets = batch[:, :-1], batch[:, 1:]
    logits = model(inputs)
    steps = mx.arange(1, targets.shape[1] + 1)
    mask = mx.logical_and(steps >= lengths[:, 0:1], steps <= lengths[:, 1:])
    ce = nn.losses.cross_entropy(logits, targets)
    if ids is not None:  # log-probabilities of the k ids only: no second vocabulary-wide array
        logp = mx.take_along_axis(logits, ids, axis=-1) - mx.logsumexp(logits, axis=-1, keepdims=True)
        soft = -(logp.astype(mx.float32) * probs).sum(axis=-1)
        ce = mx.where(probs.sum(axis=-1) > 0, soft, ce)
    ce = ce * mask
    ntoks = mask.sum()
    return ce.astype(mx.float32).sum() / ntoks, ntoks


def epoch_batches(seed, skip=0, on_step=None, teacher=None, k=0):
    """mlx-lm's batching with a fixed order per epoch (seed + epoch), identical on
    every process, and the first `skip` batches dropped: a resumed run sees the
    batches the interrupted run would have seen next. `on_step` is called once a
    step is done (when the trainer asks for the next batch)."""
    from mlx_lm.tuner.trainer import iterate_batches

    def batches(dataset, batch_size, max_seq_length, loop=False, comm_group=None, **_):
        if not loop:  # validation: the order does not matter
            yield from every_row_batches(dataset, batch_size, max_seq_length, comm_group=comm_group)
            return
        to_skip, epoch = skip, 0
        while True:
            for batch in iterate_batches(dataset, batch_size, max_seq_length, seed=seed + epoch,
                                         comm_group=comm_group):
                if to_skip:
                    to_skip -= 1
                    continue
                yield with_teacher(*batch, teacher, k) if teacher else batch
                if on_step:
                    on_step()
            epoch += 1

    return batches


# ---------------------------------------------------------------- which base

def choose_base_model(model_flag, data, init_adapter):
    """(model folder, reason): the base to train on, and why (goes in the manifest)."""
    from omnilm.runtime import on_cpu

    if model_flag:
        return resolve(model_flag), "asked for (--model)"
    if init_adapter is not None and (base := base_model_of(init_adapter)):
        return base, f"the base {display(init_adapter)} was trained on"
    float_model = base_model_of(data)
    if float_model is None:
        raise UserError(f"{display(data)}/manifest.json names no model; pass --model")
    if on_cpu():
        return float_model, "CPU: LoRA on the float model (QLoRA on the 4-bit model trains about 30x slower here)"
    q4 = float_model.parent / f"{float_model.name}-4bit"
    if (q4 / "config.json").exists():
        return q4, "GPU: QLoRA on the 4-bit model (about a quarter of the memory, as the seed run)"
    return float_model, f"GPU, but no {display(q4)}: LoRA on the float model"


# ---------------------------------------------------------------- the callback

class EarlyStopping:
    """mlx-lm TrainingCallback: best weights, patience, checkpoints, progress with ETA.

    mlx-lm reports `iteration` = optimizer steps done in this process; `offset` adds
    the steps of the interrupted run this one resumes."""

    def __init__(self, model, optimizer, folder, state, total_iters, offset, patience, min_delta,
                 rank=0, bar=None, groups=None, batch_size=1, max_seq_length=2048):
        self.model, self.optimizer, self.folder, self.state = model, optimizer, Path(folder), state
        self.groups, self.batch_size, self.max_seq_length = groups or {}, batch_size, max_seq_length
        self.total, self.offset, self.patience, self.min_delta = total_iters, offset, patience, min_delta
        self.writer = rank == 0
        self.bar = bar  # the step bar (rate, ETA); report lines are written above it
        self.started = time.perf_counter()
        self.tokens_seen = 0  # mlx-lm's cumulative count in this process

    def _say(self, text):
        if self.writer:
            (self.bar.write if self.bar is not None else print)(f"  {text}")

    def on_train_loss_report(self, info):
        it = self.offset + info["iteration"]
        new_tokens = info["trained_tokens"] - self.tokens_seen
        self.tokens_seen = info["trained_tokens"]
        s = self.state
        s["train_tokens"] += new_tokens
        s["train_seconds"] += new_tokens / max(info["tokens_per_second"], 1e-9)
        s["peak_memory_gb"] = max(s["peak_memory_gb"], info["peak_memory"])
        s["history"].append({"iteration": it, "train_loss": info["train_loss"],
                             "tokens_per_second": info["tokens_per_second"],
                             "peak_memory_gb": info["peak_memory"]})
        self._say(f"iter {it}/{self.total} · train loss {info['train_loss']:.3f} · "
                  f"{info['tokens_per_second']:,.0f} tok/s · peak {info['peak_memory']:.2f} GB")

    def group_losses(self):
        """{"val_loss_<group>": loss} for each validation group, as mlx-lm measures the total."""
        from mlx_lm.tuner.trainer import evaluate

        losses = {f"val_loss_{name}": evaluate(self.model, data, self.batch_size, -1, self.max_seq_length,
                                               iterate_batches=every_row_batches)
                  for name, data in self.groups.items()}
        self.model.train()  # evaluate() left it in eval mode; mlx-lm switched back before calling us
        return losses

    def on_val_loss_report(self, info):
        from mlx.utils import tree_flatten

        it, loss = self.offset + info["iteration"], info["val_loss"]
        s = self.state
        if not math.isfinite(loss):
            raise StopTraining("diverged")
        already = any(h.get("iteration") == it and "val_loss" in h for h in s["history"])
        if not already:  # a resumed run re-evaluates its starting point: counted once
            groups = self.group_losses()
            s["history"].append({"iteration": it, "val_loss": loss, **groups})
            if s["val_loss_before"] is None:
                s["val_loss_before"] = loss
            weights = dict(tree_flatten(self.model.trainable_parameters()))
            note = ""
            if s["best_val_loss"] is None or loss < s["best_val_loss"] - self.min_delta:
                s["best_val_loss"], s["best_iteration"], s["evals_without_gain"] = loss, it, 0
                if self.writer:
                    af.save_weights(self.folder / af.BEST, weights)
                note = "new best, saved"
            else:
                s["evals_without_gain"] += 1
                note = (f"best {s['best_val_loss']:.3f} at iter {s['best_iteration']}, "
                        f"no gain {s['evals_without_gain']}/{self.patience}")
            s["iteration"] = it
            s["seconds"] = s.get("seconds_before", 0.0) + time.perf_counter() - self.started
            if self.writer:
                opt = dict(tree_flatten(self.optimizer.state))
                af.save_checkpoint(self.folder, weights, opt, s)
                write_losses_csv(self.folder / af.LOSSES_CSV, s["history"])
            parts = "".join(f" · {k.removeprefix('val_loss_')} {v:.3f}" for k, v in groups.items())
            self._say(f"iter {it}/{self.total} · val loss {loss:.3f}{parts} ({note})")
        if it >= self.total:
            raise StopTraining("finished")
        if s["evals_without_gain"] >= self.patience:
            raise StopTraining("early stop")


# ---------------------------------------------------------------- losses

def write_losses_csv(path, history):
    import csv
    import io

    cols = ["iteration", "train_loss", "val_loss", "val_loss_document", "val_loss_replay", "tokens_per_second",
            "peak_memory_gb"]
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=cols, extrasaction="ignore")
    w.writeheader()
    for h in sorted(history, key=lambda h: (h["iteration"], "val_loss" in h)):
        w.writerow({k: (round(v, 5) if isinstance(v, float) else v) for k, v in h.items()})
    af.write_text_atomic(path, buf.getvalue())


def plot_losses(path, history, best_iteration, title):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    train = [(h["iteration"], h["train_loss"]) for h in history if "train_loss" in h]
    val = [(h["iteration"], h["val_loss"]) for h in history if "val_loss" in h]
    fig, ax = plt.subplots(figsize=(6, 3.6), dpi=100)
    if train:
        ax.plot(*zip(*train), label="train", color="tab:blue", alpha=0.8)
    if val:
        ax.plot(*zip(*val), "o-", label="validation", color="tab:orange")
        best = [v for i, v in val if i == best_iteration]
        if best:
            ax.plot([best_iteration], best, "*", ms=14, color="tab:red", label=f"best (iter {best_iteration})")
    for name, color in (("document", "tab:green"), ("replay", "tab:purple")):
        part = [(h["iteration"], h[f"val_loss_{name}"]) for h in history if f"val_loss_{name}" in h]
        if part:
            ax.plot(*zip(*part), ".--", label=f"validation: {name}", color=color)
    ax.set_xlabel("iteration")
    ax.set_ylabel("loss")
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


# ---------------------------------------------------------------- the run

def add_training_arguments(p, kind):
    """The flags both training scripts share (all default to None: flag > YAML > DEFAULTS)."""
    what = "data/cpt/demo_paper" if kind == "cpt" else "data/sft/demo_paper"
    p.add_argument("--model", help="base model folder (default: see the description)")
    p.add_argument("--data", help=f"folder with train.jsonl and valid.jsonl (default {what})")
    p.add_argument("--adapter-path", help=f"output adapter folder (default adapters/<data folder name>-{kind})")
    p.add_argument("--num-layers", type=int, help="LoRA on this many last layers")
    p.add_argument("--rank", type=int, help="LoRA rank")
    p.add_argument("--scale", type=float, help="LoRA scale")
    p.add_argument("--dropout", type=float, help="LoRA dropout")
    p.add_argument("--learning-rate", type=float, help="Adam learning rate")
    p.add_argument("--batch-size", type=int, help="examples per step and per process")
    p.add_argument("--epochs", type=float, help="passes over the training set (sets --iters)")
    p.add_argument("--iters", type=int, help="optimizer steps (overrides --epochs)")
    p.add_argument("--eval-every", type=int, help="steps between validations (default: one epoch)")
    p.add_argument("--report-every", type=int, help="steps between training-loss lines")
    p.add_argument("--patience", type=int, help="stop after this many validations without improvement")
    p.add_argument("--min-delta", type=float, help="an improvement must lower the validation loss by more than this")
    p.add_argument("--max-seq-length", type=int, help="longer examples are truncated")
    p.add_argument("--seed", type=int, help="LoRA init and data order")
    p.add_argument("--grad-checkpoint", action="store_const", const=True, help="trade compute for memory")
    p.add_argument("--resume", action="store_true",
                   help="continue an interrupted run in --adapter-path (a finished one trains again)")
    p.add_argument("--force", action="store_true", help="start over, replacing what --adapter-path holds")
    p.add_argument("--config", help=f"YAML file with these options (section: {kind})")


def _setup_key(args, model_dir, data, init_adapter, lora):
    """What an interrupted run must share with this one to be continued."""
    return {
        "model": str(model_dir), "lora": lora, "learning_rate": args.learning_rate,
        "batch_size": args.batch_size, "seed": args.seed, "max_seq_length": args.max_seq_length,
        "mask_prompt": getattr(args, "mask_prompt", None), "replay_distill": getattr(args, "replay_distill", None),
        "train": sha256_file(data / "train.jsonl"), "valid": sha256_file(data / "valid.jsonl"),
        "init_adapter": sha256_file(init_adapter / af.BEST) if init_adapter else None,
    }


def _lora_shape(args, init_adapter, n_layers):
    """(num_layers, lora_parameters): from the flags, or inherited from the init adapter."""
    if init_adapter is None:
        missing = [f"--{k.replace('_', '-')}" for k in ("num_layers", "rank", "scale", "dropout")
                   if getattr(args, k) is None]
        if missing:
            raise UserError(f"without an init adapter the LoRA shape must be given: {', '.join(missing)}")
        num_layers = n_layers if args.num_layers == -1 else min(args.num_layers, n_layers)
        return num_layers, {"rank": args.rank, "scale": args.scale, "dropout": args.dropout}
    config = af.read_adapter_config(init_adapter)
    num_layers, params = config.get("num_layers"), dict(config.get("lora_parameters") or {})
    if config.get("fine_tune_type", "lora") != "lora" or not num_layers or "rank" not in params:
        raise UserError(f"{display(init_adapter)} is not a LoRA adapter this trainer can continue")
    for flag, value in (("num_layers", num_layers), ("rank", params["rank"]), ("scale", params.get("scale"))):
        if getattr(args, flag) is not None and getattr(args, flag) != value:
            raise UserError(f"--{flag.replace('_', '-')} {getattr(args, flag)} differs from the init adapter's "
                            f"{value}; drop the flag (the LoRA shape comes from the adapter) or --init-adapter none")
    if args.dropout is not None:
        params["dropout"] = args.dropout
    return num_layers, params


def default_paths(kind, args):
    """(data, adapter folder, init adapter or None) from the flags and the demo defaults."""
    data = resolve(args.data) if args.data else data_dir() / kind / "demo_paper"
    if not (data / "train.jsonl").exists():
        raise UserError(f"{display(data)} has no train.jsonl"
                        + (" (run 10_stage1_cpt/prepare_data.py first)" if kind == "cpt"
                           else " (run 20_stage2_sft/generate_qa.py first)"))
    if not (data / "valid.jsonl").exists():
        raise UserError(f"{display(data)} has no valid.jsonl: early stopping needs a validation set")
    folder = resolve(args.adapter_path) if args.adapter_path else adapters_dir() / f"{data.name}-{kind}"
    init = getattr(args, "init_adapter", None)
    if kind == "sft" and init is None:
        init = str(adapters_dir() / f"{data.name}-cpt")
    if init is None or str(init).lower() == "none":
        return data, folder, None
    init = resolve(init)
    af.require_finished_adapter(init, "--init-adapter")
    if init.resolve() == folder.resolve():
        raise UserError("--init-adapter and --adapter-path must be different folders")
    return data, folder, init


def load_init_adapter(model, init, model_dir):
    """The init adapter's weights into the LoRA layers, every name and shape checked."""
    import mlx.core as mx
    from mlx.utils import tree_flatten

    expected = dict(tree_flatten(model.trainable_parameters()))
    weights = mx.load(str(init / af.BEST))
    wrong = [k for k, w in weights.items() if k not in expected or w.shape != expected[k].shape]
    if wrong or set(weights) != set(expected):
        raise UserError(f"--init-adapter {display(init)} does not fit {display(model_dir)} "
                        f"({len(wrong)} tensors of another shape or name, e.g. {(wrong or ['missing ones'])[0]}): "
                        "it was trained for another base")
    model.load_weights(list(weights.items()), strict=False)


def decide_start(folder, setup, args, world):
    """Rank 0 decides fresh start or resume (and may clear the folder); every other
    process follows. A failure on rank 0 is passed on so no process waits forever."""
    import mlx.core as mx

    code, error = -1, None
    if world.rank() == 0:
        try:
            saved = af.start_or_resume(folder, setup, resume=args.resume, force=args.force)
            code = saved["iteration"] if saved else -1
        except UserError as e:
            code, error = -2, e
    if world.size() > 1:
        code = int(mx.distributed.all_sum(mx.array(code if world.rank() == 0 else 0), stream=mx.cpu).item())
    if error is not None:
        raise error
    if code == -2:
        raise UserError("rank 0 refused to start (see its message)")
    return af.read_checkpoint_state(folder) if code >= 0 else None


def quiet_mlx_lm_console():
    from mlx_lm.cli_ui import make_console

    make_console().quiet = True


def train_adapter(kind, args):
    """Train (or resume) one adapter; returns the manifest metrics."""
    import mlx.core as mx
    import mlx.optimizers as optim
    from mlx.utils import tree_flatten, tree_map_with_path
    from mlx_lm.tuner.trainer import TrainingArgs, train
    from mlx_lm.tuner.utils import linear_to_lora_layers

    from omnilm.chat import load_model
    from omnilm.runtime import machine_summary

    wall = time.perf_counter()
    world = mx.distributed.init()
    rank, size = world.rank(), world.size()
    say = print if rank == 0 else (lambda *a, **k: None)
    data, folder, init = default_paths(kind, args)
    model_dir, model_reason = choose_base_model(args.model, data, init)

    model, tokenizer = load_model(model_dir)
    mx.random.seed(args.seed)
    model.freeze()
    num_layers, lora = _lora_shape(args, init, len(model.layers))
    mask = getattr(args, "mask_prompt", False)
    train_set = load_split(data / "train.jsonl", tokenizer, mask)
    valid_set = load_split(data / "valid.jsonl", tokenizer, mask)
    k = getattr(args, "replay_distill", 0) or 0
    # before LoRA: the teacher is the base model that wrote the replay answers
    teacher = replay_teacher(model, train_set, k) if k else None
    linear_to_lora_layers(model, num_layers, lora)  # frozen base, trainable LoRA matrices
    if init is not None:
        load_init_adapter(model, init, model_dir)

    batch = args.batch_size * size  # mlx-lm's batch is global; ours is per process
    if len(train_set) < batch:
        raise UserError(f"{display(data)}/train.jsonl has {len(train_set)} examples, fewer than one batch "
                        f"({args.batch_size} x {size} processes); lower --batch-size")
    groups = validation_groups(valid_set)
    steps_per_epoch = len(train_set) // batch
    total = args.iters or max(1, round(args.epochs * steps_per_epoch))
    eval_every = args.eval_every or steps_per_epoch

    setup = _setup_key(args, model_dir, data, init, {"num_layers": num_layers, **lora})
    saved = decide_start(folder, setup, args, world)
    optimizer = optim.Adam(learning_rate=args.learning_rate)
    optimizer.init(model.trainable_parameters())
    if saved:
        weights, opt_state = af.load_checkpoint_arrays(folder)
        model.load_weights(list(weights.items()), strict=False)
        if set(opt_state) == {k for k, _ in tree_flatten(optimizer.state)}:
            optimizer.state = tree_map_with_path(lambda path, x: opt_state[path], optimizer.state)
        else:
            say("the optimizer state could not be restored: it restarts from zero")
        state = saved
        state["seconds_before"] = saved.get("seconds", 0.0)
        state["history"] = [h for h in state["history"] if h["iteration"] <= saved["iteration"]]
        say(f"resuming {display(folder)} at iteration {saved['iteration']}/{total} "
            f"(best validation loss {saved['best_val_loss']:.3f} at {saved['best_iteration']})")
    else:
        state = {"setup": setup, "iteration": 0, "best_val_loss": None, "best_iteration": None,
                 "evals_without_gain": 0, "val_loss_before": None, "history": [],
                 "train_tokens": 0, "train_seconds": 0.0, "peak_memory_gb": 0.0}
    offset = state["iteration"]
    if rank == 0:
        folder.mkdir(parents=True, exist_ok=True)
        af.write_adapter_config(folder, num_layers, lora, model=display(model_dir))

    say(f"[{kind}] LoRA on {display(model_dir)} ({model_reason}); {num_layers} layers, rank {lora['rank']}, "
        f"lr {args.learning_rate:g}; {len(train_set)} train / {len(valid_set)} valid examples; "
        f"{total} steps of {batch} ({total / steps_per_epoch:.1f} epochs), validation every {eval_every}"
        + (f"; {size} processes" if size > 1 else "")
        + (f"; {len(teacher)} replay rows learn the base model's top-{k} next tokens" if teacher else ""))
    quiet_mlx_lm_console()  # its lines and bar have no ETA; ours replace them
    bar = progress.bar(desc=kind, total=total, unit="step") if rank == 0 else None
    if bar is not None:
        bar.update(offset)
    callback = EarlyStopping(model, optimizer, folder, state, total, offset, args.patience, args.min_delta,
                             rank=rank, bar=bar, groups=groups, batch_size=batch, max_seq_length=args.max_seq_length)
    training = TrainingArgs(batch_size=batch, iters=total - offset + 1, val_batches=-1,
                            steps_per_report=args.report_every or min(eval_every, 5), steps_per_eval=eval_every,
                            steps_per_save=10**9, max_seq_length=args.max_seq_length,
                            adapter_file=str(folder / af.LAST), grad_checkpoint=bool(args.grad_checkpoint))
    # iters is one more than the steps left: mlx-lm evaluates at its last iteration
    # *before* stepping, so the evaluation that ends the run sees the final weights.
    try:
        train(model, optimizer, train_set, valid_set, args=training, training_callback=callback,
              **({"loss": distill_loss} if teacher else {}),
              iterate_batches=epoch_batches(args.seed, skip=offset, on_step=bar.update if bar else None,
                                            teacher=teacher, k=k))
        stop = "finished"
    except StopTraining as e:
        stop = e.reason
    finally:
        if bar is not None:
            bar.close()
    if stop == "diverged":
        raise UserError(f"training diverged (validation loss is not finite); lower --learning-rate "
                        f"(now {args.learning_rate:g})")
    metrics = {
        "val_loss_before": state["val_loss_before"], "best_val_loss": state["best_val_loss"],
        "best_iteration": state["best_iteration"],
        "last_val_loss": next(h["val_loss"] for h in reversed(state["history"]) if "val_loss" in h),
        "iterations": state["iteration"], "planned_iterations": total, "stop": stop,
        "epochs": round(state["iteration"] / steps_per_epoch, 2),
        "train_tokens": state["train_tokens"],  # tokens that carry loss (SFT: answers only)
        "tokens_per_second": round(state["train_tokens"] / state["train_seconds"], 1) if state["train_seconds"] else None,
        "peak_memory_gb": round(state["peak_memory_gb"], 3), "processes": size,
        "train_examples": len(train_set), "valid_examples": len(valid_set),
        "seconds": round(state.get("seconds_before", 0.0) + time.perf_counter() - wall, 1),
    }
    trend = replay_trend(state["history"], state["best_iteration"]) if groups else None
    if trend:
        metrics["replay_val_loss"] = trend
    if rank == 0:
        af.save_weights(folder / af.LAST, dict(tree_flatten(model.trainable_parameters())))
        write_losses_csv(folder / af.LOSSES_CSV, state["history"])
        plot_losses(folder / af.LOSSES_PNG, state["history"], state["best_iteration"],
                    f"{kind.upper()} LoRA: {display(folder)}")
        inputs = {"model": fingerprint(model_dir), "data": fingerprint(data)}
        extra = {"continued_from": display(init)} if init else {}
        if init:
            inputs["init_adapter"] = fingerprint(init)
        used = {**vars(args), "model": display(model_dir), "data": display(data), "adapter_path": display(folder),
                "init_adapter": display(init) if init else None, "num_layers": num_layers, **lora}
        write_manifest(folder, kind, used, inputs=inputs,
                       metrics=metrics, base_model=display(model_dir), base_model_reason=model_reason,
                       machine=machine_summary(), complete=True, **extra)
        af.drop_checkpoint(folder)  # after the manifest: a kill in between still leaves a finished adapter
        print(summary_line(kind, metrics, folder))
    return metrics, folder


def replay_trend(history, best_iteration):
    """The general answers' validation loss: first, at the kept weights, lowest and where."""
    seen = [(h["iteration"], h["val_loss_replay"]) for h in history if "val_loss_replay" in h]
    if best_iteration not in dict(seen):  # resumed from a checkpoint written before groups existed
        return None
    lowest = min(seen, key=lambda p: p[1])
    return {"first": round(seen[0][1], 4), "at_best": round(dict(seen)[best_iteration], 4),
            "lowest": round(lowest[1], 4), "lowest_iteration": lowest[0]}


def summary_line(kind, metrics, folder):
    m = metrics
    r = m.get("replay_val_loss")
    replay = (f"; general answers (replay) {r['first']:.3f} -> {r['at_best']:.3f}, lowest {r['lowest']:.3f} "
              f"at iteration {r['lowest_iteration']}" if r else "")
    return (f"{kind} adapter: {display(folder)} (best weights of iteration {m['best_iteration']}: validation loss "
            f"{m['val_loss_before']:.3f} -> {m['best_val_loss']:.3f}; {m['stop']} at {m['iterations']}/"
            f"{m['planned_iterations']}{replay}) · {m['tokens_per_second'] or 0:,.0f} trained tok/s · peak {m['peak_memory_gb']:.2f} GB"
            f" · {m['seconds']:.0f}s; losses: {display(Path(folder) / af.LOSSES_PNG)}")
