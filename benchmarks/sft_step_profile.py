"""Where SFT's time goes: the replay teacher, forward, backward + update, validation,
and the padding in each batch, over one epoch of the real data and model; each step
side by side with mlx-lm's own way of computing it.

Examples:
  python benchmarks/sft_step_profile.py               # demo: data/sft/demo_paper on adapters/demo_paper-cpt
  python benchmarks/sft_step_profile.py --data data/sft/paper --init-adapter adapters/paper-cpt --steps 20
  python benchmarks/sft_step_profile.py --compare-pad-to 8 --steps 30   # the loss alone, same padding

Sets the model up as train_sft.py does (base, teacher for the replay rows before
LoRA, the CPT adapter's LoRA) and walks one epoch of its batches in the trainer's
order. Every batch is timed: the loss alone (forward) and a full optimizer step
(forward, backward, Adam update, compiled as mlx-lm's trainer compiles it, so a new
batch shape pays its compile); backward + update is their difference. Each step
runs a second time the way mlx-lm computes it, order alternating: the batch padded to
--compare-pad-to tokens (mlx-lm pads to 32, the project to
omnilm.training.data.PAD_TO) and the loss from logits at every position (the project
computes the head and the log-sum-exp at the loss positions only,
omnilm.training.loss). The two losses are checked equal: only the time may differ.
A validation pass (once per group, as the callback does) is timed as well, and the
run's total is projected from the planned epochs and validations. Writes
sft_step_profile.csv (one line per batch) and .md (the breakdown) to --output.
"""
import omnilm  # noqa: F401  (fast BLAS before mlx)

import argparse
import statistics
import time
from argparse import Namespace
from functools import partial

from omnilm.atomic import write_csv_atomic, write_text_atomic
from omnilm.benchmark_report import machine_line
from omnilm.config import make_parser
from omnilm.errors import run_main
from omnilm.paths import display, resolve, results_dir
from omnilm.runtime import machine_summary
from omnilm.training.data import PAD_TO


def timed(fn):
    import mlx.core as mx

    start = time.perf_counter()
    out = fn()
    mx.eval(out)
    return time.perf_counter() - start


def full_logits_loss(model, batch, lengths, positions, ids=None, probs=None):
    """The loss as mlx-lm computes it, which the project ran before omnilm.training.loss:
    logits and the vocabulary-wide log-sum-exp at every position of the batch, masked
    afterwards; distillation (ids/probs [rows, width, k]) took a second log-sum-exp."""
    import mlx.core as mx
    import mlx.nn as nn

    inputs, targets = batch[:, :-1], batch[:, 1:]
    logits = model(inputs)
    steps = mx.arange(1, targets.shape[1] + 1)
    mask = mx.logical_and(steps >= lengths[:, 0:1], steps <= lengths[:, 1:])
    ce = nn.losses.cross_entropy(logits, targets)
    if ids is not None:
        logp = mx.take_along_axis(logits, ids, axis=-1) - mx.logsumexp(logits, axis=-1, keepdims=True)
        soft = -(logp.astype(mx.float32) * probs).sum(axis=-1)
        ce = mx.where(probs.sum(axis=-1) > 0, soft, ce)
    ntoks = mask.sum()
    return (ce * mask).astype(mx.float32).sum() / ntoks, ntoks


def spread_teacher(batch, lengths, positions, ids, probs):
    """Teacher arrays lined up with the loss positions -> [rows, width, k], as
    full_logits_loss reads them."""
    import mlx.core as mx
    import numpy as np

    rows, width = batch.shape[0], batch.shape[1] - 1
    flat = np.array(positions)
    kept = flat >= 0
    full_ids = np.zeros((rows * width, ids.shape[1]), np.int32)
    full_probs = np.zeros((rows * width, ids.shape[1]), np.float32)
    full_ids[flat[kept]], full_probs[flat[kept]] = np.array(ids)[kept], np.array(probs)[kept]
    return (batch, lengths, positions, mx.array(full_ids.reshape(rows, width, -1)),
            mx.array(full_probs.reshape(rows, width, -1)))


def profile(args):
    import mlx.core as mx
    import mlx.nn as nn
    import mlx.optimizers as optim
    from mlx_lm.tuner.trainer import evaluate

    from omnilm.training import epoch_batches, validation_groups, with_teacher
    from omnilm.training.frozen_init import freeze_first_ranks
    from omnilm.training.run import set_up_run

    # the options train_sft.py would resolve that the set-up reads
    options = Namespace(data=args.data, adapter_path=None, init_adapter=args.init_adapter, model=args.model,
                        num_layers=None, rank=None, scale=None, dropout=None, seed=0, mask_prompt=True,
                        replay_distill=args.replay_distill, freeze_init=args.freeze_init)
    run = set_up_run("sft", options)
    model, train, valid, teacher = run.model, run.train_set, run.valid_set, run.teacher
    data, init, teacher_s = run.data, run.init, run.teacher_seconds

    def make_step(loss):
        optimizer = optim.Adam(learning_rate=1e-4)
        if run.frozen:
            freeze_first_ranks(optimizer, model, run.frozen)
        value_and_grad = nn.value_and_grad(model, loss)
        state = [model.state, optimizer.state, mx.random.state]

        @partial(mx.compile, inputs=state, outputs=state)  # as mlx-lm's trainer: one compile per batch shape
        def step(*batch):
            (value, _), grads = value_and_grad(model, *batch)
            optimizer.update(model, grads)
            return value

        return lambda *batch: (step(*batch), state)

    # both start from the same weights and each updates them; the order alternates
    steps_by = {"ours": make_step(run.loss), "theirs": make_step(full_logits_loss)}
    extend = (lambda *b: with_teacher(*b, teacher, args.replay_distill)) if teacher else None
    spread = (lambda *b: spread_teacher(*with_teacher(*b, teacher, args.replay_distill))) if teacher else None
    # the same batches in the same order, the project's way and mlx-lm's
    ours = epoch_batches(0, extend=extend)(train, args.batch_size, args.max_seq_length, loop=True)
    theirs = epoch_batches(0, extend=spread, pad_to=args.compare_pad_to)(train, args.batch_size,
                                                                        args.max_seq_length, loop=True)
    steps = args.steps or len(train) // args.batch_size
    rows = []
    for n in range(steps):
        batch, other = next(ours), next(theirs)
        tokens, lengths = batch[0], batch[1]
        forward = {}
        forward_s = timed(lambda: forward.setdefault("loss", run.loss(model, *batch)[0]))
        compared_forward_s = timed(lambda: forward.setdefault("theirs", full_logits_loss(model, *other)[0]))
        # padding is masked out and the loss positions are the mask's: both must give the same loss
        loss_gap = abs(forward["loss"].item() - forward["theirs"].item())
        times = {}
        for name, b in ((("ours", batch), ("theirs", other)) if n % 2 == 0 else (("theirs", other), ("ours", batch))):
            times[name] = timed(lambda name=name, b=b: steps_by[name](*b))  # alternate which goes first
        rows.append({"step": n + 1, "rows": tokens.shape[0], "padded_length": tokens.shape[1],
                     "padded_tokens": tokens.size, "compared_padded_tokens": other[0].size,
                     "real_tokens": int(lengths[:, 1].sum().item()) + tokens.shape[0],
                     "loss_tokens": int((lengths[:, 1] - lengths[:, 0] + 1).sum().item()),
                     "forward_s": round(forward_s, 3), "compared_forward_s": round(compared_forward_s, 3),
                     "step_s": round(times["ours"], 3), "compared_step_s": round(times["theirs"], 3),
                     "loss_gap": loss_gap})
        print(f"step {n + 1}/{steps}: {tuple(tokens.shape)} forward {forward_s:.2f}s, step {times['ours']:.2f}s; "
              f"mlx-lm's way {tuple(other[0].shape)}: forward {compared_forward_s:.2f}s, "
              f"step {times['theirs']:.2f}s", flush=True)
    groups = validation_groups(valid) or {"all": valid}
    valid_s = {name: sum(timed(lambda g=g: evaluate(model, g, args.batch_size, -1, args.max_seq_length,
                                                     loss=loss, iterate_batches=epoch_batches(0, pad_to=pad)))
                         for g in groups.values())
               for name, loss, pad in (("ours", run.loss, PAD_TO), ("theirs", full_logits_loss, args.compare_pad_to))}
    return rows, {"teacher_s": teacher_s, "validation_s": valid_s["ours"], "compared_validation_s": valid_s["theirs"],
                  "train_rows": len(train), "valid_rows": len(valid), "data": display(data),
                  "init_adapter": display(init) if init else None, "steps_per_epoch": len(train) // args.batch_size}


def report(rows, info, args, machine):
    total = {k: sum(r[k] for r in rows) for k in ("forward_s", "compared_forward_s", "step_s", "compared_step_s",
                                                  "padded_tokens", "compared_padded_tokens", "real_tokens",
                                                  "loss_tokens")}
    backward = total["step_s"] - total["forward_s"]
    epoch_scale = info["steps_per_epoch"] / len(rows)
    evaluations = int(args.epochs) + 1  # before the first step, then after every epoch
    in_run = lambda x: x * epoch_scale * args.epochs  # noqa: E731  (seconds of the timed steps -> a run)
    runs = {way: info["teacher_s"] + in_run(total[step]) + info[valid] * evaluations
            for way, step, valid in (("ours", "step_s", "validation_s"),
                                     ("theirs", "compared_step_s", "compared_validation_s"))}
    share = lambda x: f"{x / runs['ours']:.0%}"  # noqa: E731
    median = lambda key: statistics.median(r[key] for r in rows)  # noqa: E731
    theirs = f"mlx-lm's way (padded to {args.compare_pad_to}, logits at every position)"
    lines = [f"# Where SFT's time goes ({info['data']}, continuing {info['init_adapter']})", "",
             f"Machine: {machine}", "",
             f"{len(rows)} steps of batch {args.batch_size} timed ({info['train_rows']} train rows, "
             f"{info['valid_rows']} valid rows); a run of {args.epochs:g} epochs with {evaluations} validations "
             "projected from them.", "",
             "| part | seconds in a run | share |", "|---|---|---|",
             f"| replay teacher (once, before LoRA) | {info['teacher_s']:.1f} | {share(info['teacher_s'])} |",
             f"| forward of the training steps | {in_run(total['forward_s']):.1f} | "
             f"{share(in_run(total['forward_s']))} |",
             f"| backward + Adam update | {in_run(backward):.1f} | {share(in_run(backward))} |",
             f"| validation (each group once) | {info['validation_s'] * evaluations:.1f} | "
             f"{share(info['validation_s'] * evaluations)} |",
             f"| **total** | **{runs['ours']:.1f}** | |", "",
             f"Tokens per step: {total['padded_tokens'] / len(rows):.0f} computed (padded), "
             f"{total['real_tokens'] / len(rows):.0f} real, {total['loss_tokens'] / len(rows):.0f} carry loss: "
             f"padding is {1 - total['real_tokens'] / total['padded_tokens']:.0%} of the compute, and "
             f"{total['loss_tokens'] / total['real_tokens']:.0%} of the real tokens carry loss.",
             f"Training speed: {total['padded_tokens'] / total['step_s']:.0f} computed tok/s "
             f"(forward alone {total['padded_tokens'] / total['forward_s']:.0f} tok/s); "
             f"median step {median('step_s'):.2f} s.", "",
             f"## The project's step against {theirs}", "",
             "The same batches, each stepped both ways (compiled, as the trainer does; the order "
             "alternates), so compiling each new shape is counted.", "",
             "| way | tokens computed | padding share | forward, all steps (s) | steps, all (s) | median step (s) "
             "| projected run (s) |",
             "|---|---|---|---|---|---|---|",
             *(f"| {name} | {total[t]:,} | {1 - total['real_tokens'] / total[t]:.0%} | {total[f]:.1f} | "
               f"{total[s]:.1f} | {median(s):.2f} | {runs[way]:.1f} |"
               for name, way, t, f, s in (
                   (f"the project (padded to {PAD_TO}, head and log-sum-exp at the loss positions)", "ours",
                    "padded_tokens", "forward_s", "step_s"),
                   (theirs, "theirs", "compared_padded_tokens", "compared_forward_s", "compared_step_s"))), "",
             f"Ratio of the step times (project / mlx-lm's way): all steps "
             f"{total['step_s'] / total['compared_step_s']:.2f}, median of the per-step ratios "
             f"{statistics.median(r['step_s'] / r['compared_step_s'] for r in rows):.2f}; validation "
             f"{info['validation_s']:.1f} s against {info['compared_validation_s']:.1f} s. "
             f"Largest loss difference between the two ways on a batch: {max(r['loss_gap'] for r in rows):.2g}."]
    return "\n".join(lines) + "\n"


def main():
    p = make_parser(__doc__)
    p.add_argument("--data", help="SFT data folder (default data/sft/demo_paper)")
    p.add_argument("--init-adapter", help="the CPT adapter SFT continues (default adapters/<data name>-cpt)")
    p.add_argument("--model", help="base model (default: the one the init adapter was trained on)")
    p.add_argument("--batch-size", type=int, default=4, help="as train_sft.py (default 4)")
    p.add_argument("--epochs", type=float, default=3, help="epochs of the projected run (default 3, as train_sft.py)")
    p.add_argument("--replay-distill", type=int, default=32, help="as train_sft.py (default 32)")
    p.add_argument("--freeze-init", action=argparse.BooleanOptionalAction, default=True,
                   help="as train_sft.py: the init adapter's ranks frozen under new ones (default true)")
    p.add_argument("--max-seq-length", type=int, default=1024, help="as train_sft.py (default 1024)")
    p.add_argument("--steps", type=int, help="steps to time (default: one epoch)")
    p.add_argument("--compare-pad-to", type=int, default=32,
                   help="padding multiple of the mlx-lm way each step is timed against (default 32: "
                        "mlx-lm's own; 8, the project's, leaves the loss the only difference)")
    p.add_argument("--output", help="results folder (default results/sft_step_profile)")
    args = p.parse_args()
    if args.compare_pad_to < 1 or (args.steps is not None and args.steps < 1):
        p.error("--compare-pad-to and --steps must be at least 1")
    rows, info = profile(args)
    out = resolve(args.output) if args.output else results_dir() / "sft_step_profile"
    write_csv_atomic(out / "sft_step_profile.csv", rows, list(rows[0]))
    text = report(rows, info, args, machine_line(machine_summary()))
    write_text_atomic(out / "sft_step_profile.md", text)
    print("\n" + text + f"-> {display(out)}/sft_step_profile.md, .csv")


if __name__ == "__main__":
    run_main(main)
