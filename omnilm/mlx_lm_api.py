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
BATCH_GENERATOR_KEYWORDS = ("stop_tokens", "sampler", "completion_batch_size", "prefill_batch_size")


# ---- the trainer's pieces, passed through unchanged: the callers keep mlx-lm's behaviour,
# and an upgrade that moves one breaks here and in tests/test_mlx_lm_api.py only.

def training_args(**fields):
    """mlx-lm's TrainingArgs (the fields of TRAINING_ARGS_FIELDS)."""
    from mlx_lm.tuner.trainer import TrainingArgs

    return TrainingArgs(**fields)


def run_trainer(model, optimizer, train_dataset, val_dataset, **keywords):
    """mlx-lm's training loop, train(...) (the keywords of TRAIN_KEYWORDS)."""
    from mlx_lm.tuner.trainer import train

    return train(model, optimizer, train_dataset, val_dataset, **keywords)


def evaluate_loss(model, dataset, batch_size, num_batches, max_seq_length, **keywords):
    """mlx-lm's validation loss, evaluate(...) (the keywords of EVALUATE_KEYWORDS)."""
    from mlx_lm.tuner.trainer import evaluate

    return evaluate(model, dataset, batch_size, num_batches, max_seq_length, **keywords)


def trainer_batches(dataset, batch_size, max_seq_length, **keywords):
    """mlx-lm's iterate_batches: (batch, lengths) pairs, padded to multiples of 32."""
    from mlx_lm.tuner.trainer import iterate_batches

    return iterate_batches(dataset, batch_size, max_seq_length, **keywords)


def text_dataset(rows, tokenizer):
    """mlx-lm's TextDataset: {"text"} rows, each tokenized with the end token appended."""
    from mlx_lm.tuner.datasets import TextDataset

    return TextDataset(rows, tokenizer)


def cache_dataset(data):
    """mlx-lm's CacheDataset: `data`'s rows processed once, on first use."""
    from mlx_lm.tuner.datasets import CacheDataset

    return CacheDataset(data)


def load_adapter_layers(model, adapter_path):
    """mlx-lm's load_adapters: the adapter's LoRA layers and weights onto `model`, in
    place; a config or weights that do not fit raise ValueError, KeyError or TypeError."""
    from mlx_lm.tuner.utils import load_adapters

    return load_adapters(model, adapter_path)


# ---- generation below mlx-lm's public generate functions

def batch_generator(model, **keywords):
    """mlx-lm's BatchGenerator, continuous batching (the keywords of BATCH_GENERATOR_KEYWORDS)."""
    from mlx_lm.generate import BatchGenerator

    return BatchGenerator(model, **keywords)


def generate_steps(prompt, model, **keywords):
    """mlx-lm's generate_step: one (token, log-probabilities) per step, with no stop at
    the end token."""
    from mlx_lm.generate import generate_step

    return generate_step(prompt, model, **keywords)


# ---- mlx-lm's convert and fuse, step by step: stage 01 and the export run its own pieces
# one at a time so a bar can show the work between them. Each prints nothing.

def _quietly(call, *args, **kw):
    import contextlib
    import io

    with contextlib.redirect_stdout(io.StringIO()):  # mlx-lm's [INFO] lines: the caller reports
        return call(*args, **kw)


def quantize_weights(model, config, bits, group_size):
    """(model, config) with mlx-lm's quantization applied (lazily) and recorded in config."""
    from mlx_lm.utils import quantize_model

    return _quietly(quantize_model, model, config, group_size, bits)


def dequantize_weights(model):
    from mlx_lm.utils import dequantize_model

    return dequantize_model(model)


def add_lora_layers(model, adapter_config):
    """The LoRA (or DoRA) layers an adapter config describes, in place, as mlx-lm's load does."""
    from mlx_lm.tuner.utils import linear_to_lora_layers

    linear_to_lora_layers(model, adapter_config["num_layers"], adapter_config["lora_parameters"],
                          use_dora=adapter_config.get("fine_tune_type") == "dora")


def save_model_folder(folder, source, model, tokenizer, config, donate=False):
    """mlx-lm's save: sharded safetensors + index, config.json, tokenizer files and the
    source's generation_config.json into `folder` (which may exist)."""
    from mlx_lm.utils import save

    _quietly(save, folder, source, model, tokenizer, config, donate_model=donate)


GGUF_MODEL_TYPES = ("llama", "mistral", "mixtral")  # the architectures mlx-lm's GGUF writer knows


def write_gguf(folder, weights, config, path, adjust_metadata=None):
    """mlx-lm's GGUF writer: the tokenizer is read from `folder`; tensors keep their
    dtype (bfloat16 becomes float16, norms float32). adjust_metadata(metadata, hf
    tokenizer) -> metadata amends the key/values it writes: convert_to_gguf has no
    parameter for that, so its module's prepare_metadata is wrapped for the call."""
    import mlx_lm.gguf as gguf

    original = gguf.prepare_metadata

    def prepare(config, vocab):
        metadata = original(config, vocab)
        return adjust_metadata(metadata, vocab.tokenizer) if adjust_metadata else metadata

    gguf.prepare_metadata = prepare
    try:
        _quietly(gguf.convert_to_gguf, folder, weights, config, str(path))
    finally:
        gguf.prepare_metadata = original
