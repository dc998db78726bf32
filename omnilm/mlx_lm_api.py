"""The parts of mlx-lm this project leans on beyond load/generate: private helpers and
the trainer's hooks. They may move in any mlx-lm release, so each is reached from here
only, and tests/test_mlx_lm_api.py fails by name when an upgrade changes one."""


def model_classes(config):
    """(Model, ModelArgs) for a config dict: the lookup mlx-lm's own load does.
    Raises ValueError for a model type mlx-lm does not support."""
    from mlx_lm.utils import _get_classes

    return _get_classes(config)


def quiet_trainer_console():
    """Silence the lines and progress bar mlx-lm's trainer prints (ours replace them)."""
    from mlx_lm.cli_ui import make_console

    make_console().quiet = True


# What the trainer code passes to mlx-lm: train(...)'s keywords and iterate_batches's.
TRAIN_KEYWORDS = ("model", "optimizer", "train_dataset", "val_dataset", "args", "loss", "iterate_batches",
                  "training_callback")
ITERATE_BATCHES_KEYWORDS = ("dataset", "batch_size", "max_seq_length", "loop", "seed", "comm_group")
EVALUATE_KEYWORDS = ("model", "dataset", "batch_size", "num_batches", "max_seq_length", "iterate_batches")
TRAINING_ARGS_FIELDS = ("batch_size", "iters", "val_batches", "steps_per_report", "steps_per_eval", "steps_per_save",
                        "max_seq_length", "adapter_file", "grad_checkpoint")
