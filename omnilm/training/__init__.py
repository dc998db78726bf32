"""LoRA training shared by stage 10 (CPT on {"text"}) and stage 20 (SFT on chat
{"messages"}, answers only), on mlx-lm's own trainer through its callback.

What mlx-lm's loop lacks is added from the callback: early stopping that keeps the
BEST validation weights, a checkpoint at every evaluation to resume from (weights,
optimizer state, iteration, best loss, loss history), losses to CSV/PNG, an ETA.
The callback ends mlx-lm's loop by raising StopTraining right after an evaluation,
before the next optimizer step, so the last weights are exactly the ones evaluated.
Data-parallel under `mlx.launch`: every process computes the same (all-reduced)
validation loss and so stops at the same step; only rank 0 writes and prints.

Modules: data (rows, batches and their loss positions), loss (computed at the loss positions only),
distillation (replay targets), callback (early stopping, checkpoints), report
(losses CSV/PNG, summary), run (the run itself)."""
from omnilm.training.callback import EarlyStopping, StopTraining
from omnilm.training.data import (ChatAnswers, Rows, chat_tokens, epoch_batches, every_row_batches, load_split,
                                  loss_positions, replay_rows, validation_groups, with_positions)
from omnilm.training.distillation import replay_teacher, with_teacher
from omnilm.training.loss import head_split, make_loss
from omnilm.training.report import plot_losses, replay_trend, summary_line, write_losses_csv
from omnilm.training.run import add_training_arguments, choose_base_model, train_adapter

__all__ = ["ChatAnswers", "EarlyStopping", "Rows", "StopTraining", "add_training_arguments", "chat_tokens",
           "choose_base_model", "epoch_batches", "every_row_batches", "head_split", "load_split", "loss_positions",
           "make_loss", "plot_losses",
           "replay_rows", "replay_teacher", "replay_trend", "summary_line", "train_adapter", "validation_groups",
           "with_positions", "with_teacher", "write_losses_csv"]
