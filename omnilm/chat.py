"""Loading a text model (+ adapter) and asking it questions through its chat template."""
from pathlib import Path

from omnilm.errors import UserError


def load_model(model_dir, adapter=None):
    """mlx-lm load with clear errors for the usual mistakes (missing folder, omni checkpoint)."""
    import json

    from mlx_lm import load

    model_dir = Path(model_dir)
    if not (model_dir / "config.json").exists():
        raise UserError(f"{model_dir} is not a model folder (no config.json)")
    config = json.loads((model_dir / "config.json").read_text())
    if "text_config" in config or config.get("model_type") == "vlm":
        raise UserError(f"{model_dir} is an omni/VLM checkpoint; extract its text model first "
                        f"(python 00_extract/extract_text_backbone.py --source {model_dir})")
    if adapter is not None and not (Path(adapter) / "adapters.safetensors").exists():
        raise UserError(f"{adapter} is not an adapter folder (no adapters.safetensors)")
    return load(str(model_dir), adapter_path=str(adapter) if adapter else None)


def chat_prompt(tokenizer, messages):
    """The generation prompt in the model's own template, reasoning skipped."""
    return tokenizer.apply_chat_template(messages, add_generation_prompt=True, skip_reasoning=True, tokenize=False)


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
