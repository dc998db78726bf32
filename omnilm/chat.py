"""Loading a text model (+ adapter) and asking it questions through its chat template."""
from pathlib import Path

from omnilm.errors import UserError


def load_model(model_dir, adapter=None, on_progress=None):
    """mlx-lm load with clear errors for the usual mistakes (missing folder, omni
    checkpoint, no weights, missing adapter); local folders only, never remote code.
    on_progress(fraction, message): the weights are then evaluated layer by layer so
    a bar can move. On CPU a quantized model's 16-bit scales become float32 (same
    values, 8-30x faster there)."""
    import mlx.core as mx
    from mlx.utils import tree_flatten
    from mlx_lm import load

    from omnilm.quantize import float32_scales_on_cpu, text_model_config

    text_model_config(model_dir)  # a missing path would otherwise be taken for a Hub name
    if adapter is not None:
        from omnilm.catalog import require_fitting_adapter

        if not (Path(adapter) / "adapters.safetensors").exists():
            raise UserError(f"{adapter} is not an adapter folder (no adapters.safetensors)")
        require_fitting_adapter(adapter, model_dir)
    report = on_progress or (lambda fraction, message: None)
    report(0.0, "reading config and tokenizer")
    model, tokenizer = load(str(model_dir), adapter_path=str(adapter) if adapter else None, lazy=True,
                            trust_remote_code=False)
    layers = list(getattr(model, "layers", []))
    for i, layer in enumerate(layers):
        mx.eval(layer.parameters())
        report((i + 1) / (len(layers) + 1), f"loading weights: layer {i + 1}/{len(layers)}")
    mx.eval([v for k, v in tree_flatten(model.parameters()) if ".layers." not in f".{k}"])
    model.eval()
    float32_scales_on_cpu(model)
    report(1.0, "ready")
    return model, tokenizer


def chat_prompt(tokenizer, messages):
    """The generation prompt in the model's own template, reasoning skipped."""
    return tokenizer.apply_chat_template(messages, add_generation_prompt=True, skip_reasoning=True, tokenize=False)


PROBE = "A"


def prompt_ids(tokenizer, messages):
    """The generation prompt's token ids exactly as they appear inside a training example.

    Encoded alone, the prompt's trailing "\n\n" becomes one token, but in a training
    example (prompt + answer encoded together) it splits before the answer's first
    word; a model fine-tuned on the latter has never seen the former. So encode the
    prompt followed by a probe character and drop the probe."""
    prompt = chat_prompt(tokenizer, messages)
    ids = tokenizer.encode(prompt + PROBE, add_special_tokens=False)
    if tokenizer.decode(ids[-1:]) == PROBE and tokenizer.decode(ids[:-1]) == prompt:
        return ids[:-1]
    return tokenizer.encode(prompt, add_special_tokens=False)


def ask(model_dir, question, adapter=None, max_tokens=128, on_text=None, model_and_tokenizer=None):
    """Greedy answer to one question; returns text and speed figures."""
    from mlx_lm import stream_generate

    model, tokenizer = model_and_tokenizer or load_model(model_dir, adapter)
    prompt = chat_prompt(tokenizer, [{"role": "user", "content": question}])
    text, last = "", None
    for last in stream_generate(model, tokenizer, prompt, max_tokens=max_tokens):
        text += last.text
        if on_text:
            on_text(last.text)
    return {"text": text, "tokens": last.generation_tokens if last else 0,
            "generation_tps": last.generation_tps if last else 0.0,
            "prompt_tps": last.prompt_tps if last else 0.0,
            "peak_memory_gb": last.peak_memory if last else 0.0}
