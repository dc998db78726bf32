"""Where SFT's time goes: the replay teacher, forward, backward + update, validation,
and the padding in each batch, over one epoch of the real data and model.

Examples:
  python benchmarks/sft_step_profile.py               # demo: data/sft/demo_paper on adapters/demo_paper-cpt
  python benchmarks/sft_step_profile.py --data data/sft/paper --init-adapter adapters/paper-cpt --steps 20

Sets the model up as train_sft.py does (base, teacher for the replay rows before
LoRA, the CPT adapter's LoRA) and walks one epoch of its batches in the trainer's
order. Every batch is timed: the loss alone (forward) and a full optimizer step
(forward, backward, Adam update, compiled as mlx-lm's trainer compiles it, so a new
batch width pays its compile); backward + update is their difference. Each step
runs a second time on the same batch padded to --compare-pad-to tokens (mlx-lm pads
to 32, the project to omnilm.training.data.PAD_TO), order alternating, and the two
losses are checked equal: padding is masked out, so only the time may differ. A
validation pass (every row once, and once more per group as the callback does) is
timed as well, and the run's total is projected from the planned epochs and
validations. Writes sft_step_profile.csv (one line per batch) and .md (the
breakdown) to --output.
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


def profile(args):
    import mlx.core as mx
    import mlx.nn as nn
    import mlx.optimizers as optim
    from mlx_lm.tuner.trainer import default_loss, evaluate

    from omnilm.training import distill_loss, epoch_batches, every_row_batches, validation_groups, with_teacher
    from omnilm.training.frozen_init import freeze_first_ranks
    from omnilm.training.run import set_up_run

    # the options train_sft.py would resolve that the set-up reads
    options = Namespace(data=args.data, adapter_path=None, init_adapter=args.init_adapter, model=args.model,
                        num_layers=None, rank=None, scale=None, dropout=None, seed=0, mask_prompt=True,
                        replay_distill=args.replay_distill, freeze_init=args.freeze_init)
    run = set_up_run("sft", options)
    model, train, valid, teacher = run.model, run.train_set, run.valid_set, run.teacher
    data, init, teacher_s = run.data, run.init, run.teacher_seconds
    loss = distill_loss if teacher else default_loss
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

    extend = (lambda b, n: with_teacher(b, n, teacher, args.replay_distill)) if teacher else None
    # the same batches in the same order, padded the project's way and the way compared against
    ours = epoch_batches(0, extend=extend)(train, args.batch_size, args.max_seq_length, loop=True)
    theirs = epoch_batches(0, extend=extend, pad_to=args.compare_pad_to)(train, args.batch_size,
                                                                        args.max_seq_length, loop=True)
    steps = args.steps or len(train) // args.batch_size
    rows = []
    for n in range(steps):
        batch, other = next(ours), next(theirs)
        tokens, lengths = batch[0], batch[1]
        forward = {}
        forward_s = timed(lambda: forward.setdefault("loss", loss(model, *batch)[0]))
        # padding is masked out of the loss, so both widths must give the same loss
        loss_gap = abs(forward["loss"].item() - loss(model, *other)[0].item())
        times = {}
        for name, b in ((("ours", batch), ("theirs", other)) if n % 2 == 0 else (("theirs", other), ("ours", batch))):
            times[name] = timed(lambda b=b: (step(*b), state))  # alternate which goes first: load hits both
        rows.append({"step": n + 1, "rows": tokens.shape[0], "padded_length": tokens.shape[1],
                     "padded_tokens": tokens.size, "compared_padded_tokens": other[0].size,
                     "real_tokens": int(lengths[:, 1].sum().item()) + tokens.shape[0],
                     "loss_tokens": int((lengths[:, 1] - lengths[:, 0] + 1).sum().item()),
                     "forward_s": round(forward_s, 3), "step_s": round(times["ours"], 3),
                     "compared_step_s": round(times["theirs"], 3), "loss_gap": loss_gap})
        print(f"step {n + 1}/{steps}: {tuple(tokens.shape)} forward {forward_s:.2f}s, step {times['ours']:.2f}s; "
              f"padded to {args.compare_pad_to}: {tuple(other[0].shape)} step {times['theirs']:.2f}s", flush=True)
    valid_s = timed(lambda: evaluate(model, valid, args.batch_size, -1, args.max_seq_length,
                                     iterate_batches=every_row_batches))
    groups = validation_groups(valid)
    groups_s = sum(timed(lambda g=g: evaluate(model, g, args.batch_size, -1, args.max_seq_length,
                                              iterate_batches=every_row_batches)) for g in groups.values())
    return rows, {"teacher_s": teacher_s, "validation_s": valid_s, "validation_groups_s": groups_s,
                  "train_rows": len(train), "valid_rows": len(valid), "data": display(data),
                  "init_adapter": display(init) if init else None, "steps_per_epoch": len(train) // args.batch_size}


def report(rows, info, args, machine):
    total = {k: sum(r[k] for r in rows) for k in ("forward_s", "step_s", "compared_step_s", "padded_tokens",
                                                  "compared_padded_tokens", "real_tokens", "loss_tokens")}
    backward = total["step_s"] - total["forward_s"]
    epoch_scale = info["steps_per_epoch"] / len(rows)
    evaluations = int(args.epochs) + 1  # before the first step, then after every epoch
    train_run = total["step_s"] * epoch_scale * args.epochs
    validation_run = (info["validation_s"] + info["validation_groups_s"]) * evaluations
    run = info["teacher_s"] + train_run + validation_run
    share = lambda x: f"{x / run:.0%}"  # noqa: E731
    lines = [f"# Where SFT's time goes ({info['data']}, continuing {info['init_adapter']})", "",
             f"Machine: {machine}", "",
             f"{len(rows)} steps of batch {args.batch_size} timed ({info['train_rows']} train rows, "
             f"{info['valid_rows']} valid rows); a run of {args.epochs:g} epochs with {evaluations} validations "
             "projected from them.", "",
             "| part | seconds in a run | share |", "|---|---|---|",
             f"| replay teacher (once, before LoRA) | {info['teacher_s']:.1f} | {share(info['teacher_s'])} |",
             f"| forward of the training steps | {total['forward_s'] * epoch_scale * args.epochs:.1f} | "
             f"{share(total['forward_s'] * epoch_scale * args.epochs)} |",
             f"| backward + Adam update | {backward * epoch_scale * args.epochs:.1f} | "
             f"{share(backward * epoch_scale * args.epochs)} |",
             f"| validation: mlx-lm's pass | {info['validation_s'] * evaluations:.1f} | "
             f"{share(info['validation_s'] * evaluations)} |",
             f"| validation: the per-group passes (document, replay) | {info['validation_groups_s'] * evaluations:.1f}"
             f" | {share(info['validation_groups_s'] * evaluations)} |",
             f"| **total** | **{run:.1f}** | |", "",
             f"Tokens per step: {total['padded_tokens'] / len(rows):.0f} computed (padded), "
             f"{total['real_tokens'] / len(rows):.0f} real, {total['loss_tokens'] / len(rows):.0f} carry loss: "
             f"padding is {1 - total['real_tokens'] / total['padded_tokens']:.0%} of the compute, and "
             f"{total['loss_tokens'] / total['real_tokens']:.0%} of the real tokens carry loss.",
             f"Training speed: {total['padded_tokens'] / total['step_s']:.0f} computed tok/s "
             f"(forward alone {total['padded_tokens'] / total['forward_s']:.0f} tok/s); "
             f"median step {statistics.median(r['step_s'] for r in rows):.2f} s.", "",
             f"## Padding to {PAD_TO} tokens against {args.compare_pad_to} (mlx-lm's own)", "",
             "The same batches, each stepped at both widths (compiled, as the trainer does; the order "
             "alternates), so compiling each new width is counted.", "",
             "| padded to | tokens computed | padding share | seconds, all steps | median step |",
             "|---|---|---|---|---|",
             *(f"| {pad} | {total[t]:,} | {1 - total['real_tokens'] / total[t]:.0%} | {total[s]:.1f} | "
               f"{statistics.median(r[s] for r in rows):.2f} |"
               for pad, t, s in ((PAD_TO, "padded_tokens", "step_s"),
                                 (args.compare_pad_to, "compared_padded_tokens", "compared_step_s"))), "",
             f"Ratio of the step times ({PAD_TO} / {args.compare_pad_to}): all steps "
             f"{total['step_s'] / total['compared_step_s']:.2f}, median of the per-step ratios "
             f"{statistics.median(r['step_s'] / r['compared_step_s'] for r in rows):.2f}. "
             f"Largest loss difference between the two widths on a batch: {max(r['loss_gap'] for r in rows):.2g}."]
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
                   help="padding multiple to time each step against (default 32: mlx-lm's own)")
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
