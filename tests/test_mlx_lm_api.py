"""The mlx-lm internals the project uses (omnilm.mlx_lm_api) still exist with the shapes
we call them with. An mlx-lm upgrade that moves one fails here, by name, instead of
deep inside a training run."""
import inspect

import pytest

from omnilm import mlx_lm_api


def test_model_class_lookup_accepts_llama_and_refuses_an_unknown_type():
    model_class, args_class = mlx_lm_api.model_classes({"model_type": "llama"})
    assert model_class.__name__ == "Model" and args_class.__name__ == "ModelArgs"
    with pytest.raises(ValueError):
        mlx_lm_api.model_classes({"model_type": "no_such_architecture"})


def test_the_trainer_console_can_be_silenced():
    from mlx_lm.cli_ui import make_console

    mlx_lm_api.quiet_trainer_console()
    assert make_console().quiet is True


@pytest.mark.parametrize("name, keywords", [("train", mlx_lm_api.TRAIN_KEYWORDS),
                                            ("iterate_batches", mlx_lm_api.ITERATE_BATCHES_KEYWORDS),
                                            ("evaluate", mlx_lm_api.EVALUATE_KEYWORDS)])
def test_trainer_functions_take_the_keywords_we_pass(name, keywords):
    from mlx_lm.tuner import trainer

    params = inspect.signature(getattr(trainer, name)).parameters
    assert [k for k in keywords if k not in params] == [], f"mlx_lm.tuner.trainer.{name} changed its parameters"


def test_training_args_callback_and_datasets_have_what_we_use():
    from mlx_lm.tuner.callbacks import TrainingCallback
    from mlx_lm.tuner.datasets import CacheDataset, TextDataset
    from mlx_lm.tuner.trainer import TrainingArgs

    fields = inspect.signature(TrainingArgs).parameters
    assert [f for f in mlx_lm_api.TRAINING_ARGS_FIELDS if f not in fields] == []
    assert all(hasattr(TrainingCallback, hook) for hook in ("on_train_loss_report", "on_val_loss_report"))
    assert hasattr(CacheDataset, "itemlen") and hasattr(TextDataset, "process")


def test_the_convert_and_fuse_pieces_stage_01_and_the_export_call_are_there():
    from mlx_lm import gguf, utils
    from mlx_lm.tuner import lora, utils as tuner_utils

    wanted = {utils.quantize_model: ("model", "config", "group_size", "bits"),
              utils.save: ("dst_path", "src_path_or_repo", "model", "tokenizer", "config", "donate_model"),
              utils.dequantize_model: ("model",), gguf.convert_to_gguf: ("model_path", "weights", "config",
                                                                         "output_file_path"),
              tuner_utils.linear_to_lora_layers: ("model", "num_layers", "config", "use_dora")}
    for function, keywords in wanted.items():
        params = inspect.signature(function).parameters
        assert [k for k in keywords if k not in params] == [], f"mlx-lm's {function.__name__} changed its parameters"
    assert "dequantize" in inspect.signature(lora.LoRALinear.fuse).parameters
    assert {"llama", "mistral"} <= set(mlx_lm_api.GGUF_MODEL_TYPES)


def test_the_generation_and_adapter_pieces_we_wrap_are_there():
    from mlx_lm.generate import BatchGenerator, generate_step
    from mlx_lm.tuner.utils import load_adapters

    keywords = inspect.signature(BatchGenerator).parameters
    assert [k for k in mlx_lm_api.BATCH_GENERATOR_KEYWORDS if k not in keywords] == []
    assert all(hasattr(BatchGenerator, method) for method in ("insert", "remove", "next_generated", "stats"))
    assert "max_tokens" in inspect.signature(generate_step).parameters
    assert list(inspect.signature(load_adapters).parameters)[:2] == ["model", "adapter_path"]
