"""The callback mlx-lm's loop calls: best-weights early stopping, a resumable
checkpoint at every validation, per-group validation losses, progress lines."""
import math
import time
from pathlib import Path

from omnilm import adapters as af
from omnilm.training.data import epoch_batches, every_row_batches, loss_positions
from omnilm.training.report import write_losses_csv


def loss_tokens(dataset, batch_size, max_seq_length):
    """How many tokens carry loss in a validation pass over every row (every process's
    share summed, as mlx-lm's evaluate sums them): the weight of a group's loss."""
    import mlx.core as mx

    count = 0
    for batch, lengths in every_row_batches(dataset, batch_size, max_seq_length, comm_group=mx.distributed.init()):
        count += int((loss_positions(lengths, batch.shape[1] - 1) >= 0).sum().item())  # the loss's own positions
    return int(mx.distributed.all_sum(mx.array(count), stream=mx.cpu).item())


class StopTraining(Exception):
    """Raised from the callback to end mlx-lm's training loop after an evaluation."""

    def __init__(self, reason):
        super().__init__(reason)
        self.reason = reason


class EarlyStopping:
    """mlx-lm TrainingCallback: best weights, patience, checkpoints, progress with ETA.

    mlx-lm reports `iteration` = optimizer steps done in this process; `offset` adds
    the steps of the interrupted run this one resumes. `groups` ({name: rows}, one or
    more) are the validation rows the callback measures."""

    def __init__(self, model, optimizer, folder, state, total_iters, offset, patience, min_delta, *,
                 groups, loss, rank=0, bar=None, batch_size=1, max_seq_length=2048):
        self.model, self.optimizer, self.folder, self.state = model, optimizer, Path(folder), state
        self.groups, self.batch_size, self.max_seq_length = groups, batch_size, max_seq_length
        self.loss = loss  # the training loss, so validation measures the same thing
        self.group_tokens = {}  # group -> its tokens that carry loss
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
        """({"val_loss_<group>": loss} for each validation group, the whole set's loss):
        the whole is the groups' losses weighted by their tokens that carry loss, what
        mlx-lm's own pass over every row gives, so that pass is not run as well (the
        trainer hands mlx-lm one row; docs/experiments/2026-12-01-padding-to-8.md).
        One group is the whole set: its loss, and no column of its own."""
        from omnilm.mlx_lm_api import evaluate_loss

        losses, weighted, tokens = {}, 0.0, 0
        for name, data in self.groups.items():
            loss = evaluate_loss(self.model, data, self.batch_size, -1, self.max_seq_length,
                                 loss=self.loss, iterate_batches=epoch_batches(0))
            losses[f"val_loss_{name}"] = loss
            if name not in self.group_tokens:  # the rows never change: counted once
                self.group_tokens[name] = loss_tokens(data, self.batch_size, self.max_seq_length)
            n = self.group_tokens[name]
            weighted, tokens = weighted + loss * n, tokens + n
        self.model.train()  # evaluate() left it in eval mode; mlx-lm switched back before calling us
        return (losses if len(losses) > 1 else {}), weighted / tokens

    def on_val_loss_report(self, info):
        from mlx.utils import tree_flatten

        it = self.offset + info["iteration"]
        if 0 < it == self.total - 1:
            # mlx-lm validates before stepping, at it % steps_per_eval == 0: when the cadence
            # divides the run, it lands one step before the validation that ends it, a whole
            # validation pass for one step's difference
            return
        s = self.state
        already = any(h.get("iteration") == it and "val_loss" in h for h in s["history"])
        groups, loss = {}, info["val_loss"]
        if not already:  # mlx-lm measured one row: the whole set's loss comes from the groups
            groups, loss = self.group_losses()
        if not math.isfinite(loss):
            raise StopTraining("diverged")
        if not already:  # a resumed run re-evaluates its starting point: counted once
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
