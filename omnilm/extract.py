"""Stage 00: the language model out of an omni checkpoint, streamed shard by shard.

Only the index and the safetensors headers are parsed up front; tensor bytes go
from source to output shard in blocks (omnilm.safetensors_io), so memory stays
small whatever the model size."""
import json
import shutil
from pathlib import Path

from omnilm.errors import UserError
from omnilm.safetensors_io import DTYPE_NAMES, ITEMSIZE, nbytes, read_header, write_shard

RENAMES = (("model.language_model.model.", "model."), ("model.language_model.lm_head.", "lm_head."))
SUPPORTED_TEXT_TYPES = ("llama",)
SIZES = ("hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size", "vocab_size")
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "chat_template.jinja",
                   "chat_template.json", "tokenizer.model", "vocab.json", "merges.txt", "added_tokens.json",
                   "generation_config.json")
# keys of a nested text_config that describe generation or the training run, not the model
DROPPED_KEYS = {
    "max_length", "min_length", "id2label", "label2id", "num_beams", "num_beam_groups", "do_sample",
    "top_k", "top_p", "typical_p", "temperature", "repetition_penalty", "length_penalty", "no_repeat_ngram_size",
    "encoder_no_repeat_ngram_size", "bad_words_ids", "num_return_sequences", "output_scores",
    "return_dict_in_generate", "forced_bos_token_id", "forced_eos_token_id", "remove_invalid_values",
    "exponential_decay_length_penalty", "suppress_tokens", "begin_suppress_tokens", "diversity_penalty",
    "early_stopping", "chunk_size_feed_forward", "output_attentions", "output_hidden_states", "return_dict",
    "torchscript", "tf_legacy_loss", "use_bfloat16", "pruned_heads", "finetuning_task", "problem_type",
    "prefix", "task_specific_params", "cross_attention_hidden_size", "add_cross_attention", "is_decoder",
    "is_encoder_decoder", "tie_encoder_decoder", "decoder_start_token_id", "sep_token_id", "tokenizer_class",
    "rope_parameters", "dtype", "transformers_version", "_name_or_path",
}
LAYER_TENSORS = ("input_layernorm", "post_attention_layernorm", "self_attn.q_proj", "self_attn.k_proj",
                 "self_attn.v_proj", "self_attn.o_proj", "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj")


def is_omni(config):
    """An omni/VLM checkpoint's config (not loadable as a text model before extraction)."""
    return "text_config" in config or "vision_config" in config or config.get("model_type") == "vlm"


def load_config(source):
    path = Path(source) / "config.json"
    if not Path(source).is_dir():
        raise UserError(f"source {source} is not a folder")
    if not path.exists():
        raise UserError(f"{source} has no config.json; is it a Hugging Face checkpoint folder?")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise UserError(f"{path} is not valid JSON ({e.msg} at line {e.lineno})")


def text_config_of(config, source):
    text = config.get("text_config")
    if not isinstance(text, dict):
        kind = config.get("model_type", "unknown")
        raise UserError(f"{source} has no language model to extract: its config.json (model_type {kind!r}) "
                        f"has no text_config" + ("; it is already a text model" if kind in SUPPORTED_TEXT_TYPES else ""))
    kind = text.get("model_type")
    if kind not in SUPPORTED_TEXT_TYPES:
        raise UserError(f"{source}: text_config model_type {kind!r} is not supported "
                        f"(supported: {', '.join(SUPPORTED_TEXT_TYPES)})")
    missing = [k for k in SIZES if not isinstance(text.get(k), int) or isinstance(text.get(k), bool)]
    if missing:  # every tensor is checked against these sizes: none may be guessed
        raise UserError(f"{Path(source) / 'config.json'}: text_config lacks {', '.join(missing)} "
                        f"(or it is not a whole number); it needs {', '.join(SIZES)}")
    return text


def rope_theta_of(text):
    if "rope_theta" in text:
        return text["rope_theta"]
    params = text.get("rope_parameters") or {}
    if "rope_theta" in params:
        return params["rope_theta"]
    raise UserError("text_config has neither rope_theta nor rope_parameters.rope_theta; "
                    "refusing to guess (mlx-lm would silently use 10000)")


def plain_text_config(text, dtype):
    """The llama config.json mlx-lm and transformers read, every trap made explicit."""
    out = {k: v for k, v in text.items() if k not in DROPPED_KEYS and v is not None}
    out["architectures"] = ["LlamaForCausalLM"]
    out["model_type"] = "llama"
    out["tie_word_embeddings"] = bool(text.get("tie_word_embeddings", False))
    out["rope_theta"] = rope_theta_of(text)
    rope_type = (text.get("rope_parameters") or {}).get("rope_type", "default")
    if rope_type != "default" and not text.get("rope_scaling"):
        out["rope_scaling"] = {k: v for k, v in text["rope_parameters"].items() if k != "rope_theta"}
    out["torch_dtype"] = dtype
    return out


def expected_shapes(text):
    """{name: shape} that a llama text_config implies for the extracted model."""
    h, layers = text["hidden_size"], text["num_hidden_layers"]
    heads, kv = text["num_attention_heads"], text.get("num_key_value_heads", text["num_attention_heads"])
    hd = text.get("head_dim") or h // heads
    inter, vocab = text["intermediate_size"], text["vocab_size"]
    shapes = {"model.embed_tokens.weight": (vocab, h), "model.norm.weight": (h,)}
    if not text.get("tie_word_embeddings", False):
        shapes["lm_head.weight"] = (vocab, h)
    per_layer = {
        "input_layernorm": (h,), "post_attention_layernorm": (h,),
        "self_attn.q_proj": (heads * hd, h), "self_attn.k_proj": (kv * hd, h), "self_attn.v_proj": (kv * hd, h),
        "self_attn.o_proj": (h, heads * hd), "mlp.gate_proj": (inter, h), "mlp.up_proj": (inter, h),
        "mlp.down_proj": (h, inter),
    }
    for i in range(layers):
        for name, shape in per_layer.items():
            shapes[f"model.layers.{i}.{name}.weight"] = shape
    return shapes


def rename(name):
    for old, new in RENAMES:
        if name.startswith(old):
            return new + name[len(old):]
    return None


def weight_map_of(source):
    index = Path(source) / "model.safetensors.index.json"
    if index.exists():
        try:
            return json.loads(index.read_text())["weight_map"]
        except (json.JSONDecodeError, KeyError):
            raise UserError(f"{index} is not a valid safetensors index (no weight_map)")
    single = Path(source) / "model.safetensors"
    if single.exists():
        return {name: "model.safetensors" for name in read_header(single)[0]}
    raise UserError(f"{source} has neither model.safetensors.index.json nor model.safetensors")


def language_shards(weight_map):
    """The shard files holding at least one language-model tensor (what --hf-repo fetches)."""
    return sorted({f for name, f in weight_map.items() if rename(name)})


def plan_extraction(source, text):
    """[(new_name, src_file, src_dtype, shape, absolute_offset)] in model order, after
    checking every shard and every tensor against text_config."""
    source = Path(source)
    weight_map = weight_map_of(source)
    wanted = {name: f for name, f in weight_map.items() if rename(name)}
    if not wanted:
        raise UserError(f"{source} holds no language-model tensors (no names under model.language_model.)")
    headers = {}
    for fname in sorted(set(wanted.values())):
        path = source / fname
        if not path.exists():
            raise UserError(f"shard {path} is missing (the index lists language-model tensors in it)")
        headers[fname] = read_header(path)
    found = {}
    for name, fname in wanted.items():
        header, _, data_start = headers[fname]
        if name not in header:
            raise UserError(f"{source / fname} does not contain {name}, which the index places there")
        t = header[name]
        if t["dtype"] not in ITEMSIZE:
            raise UserError(f"{name} has unsupported dtype {t['dtype']}")
        found[rename(name)] = (source / fname, t["dtype"], tuple(t["shape"]), data_start + t["data_offsets"][0])
    check_tensors({k: v[2] for k, v in found.items()}, expected_shapes(text), source)
    order = list(expected_shapes(text))
    order.sort(key=_model_order)
    return [(name, *found[name]) for name in order]


def _model_order(name):
    if name.startswith("model.embed_tokens"):
        return (0, 0, name)
    if name.startswith("model.layers."):
        return (1, int(name.split(".")[2]), name)
    return (2, 0, name)


def check_tensors(found, expected, source):
    missing = sorted(set(expected) - set(found), key=_model_order)
    extra = sorted(set(found) - set(expected))
    wrong = [f"{n} {list(found[n])} (expected {list(expected[n])})"
             for n in sorted(set(found) & set(expected), key=_model_order) if tuple(found[n]) != tuple(expected[n])]
    problems = []
    for label, items in (("missing", missing), ("unexpected", extra), ("misshapen", wrong)):
        if items:
            shown = ", ".join(items[:5]) + (f" and {len(items) - 5} more" if len(items) > 5 else "")
            problems.append(f"{len(items)} {label}: {shown}")
    if problems:
        raise UserError(f"{source}: the language-model tensors do not match text_config: " + "; ".join(problems))


def plan_shards(plan, dtype, max_shard_bytes):
    shards, current, size = [], [], 0
    for item in plan:
        b = nbytes(dtype, item[3])
        if current and size + b > max_shard_bytes:
            shards.append(current)
            current, size = [], 0
        current.append(item)
        size += b
    if current:
        shards.append(current)
    return shards


def extract(source, output, dtype=None, max_shard_gb=5.0, bar=None):
    """Write the text model into the (empty) folder `output`. dtype None keeps the
    source dtype; `bar` (tqdm) gets the bytes read. Returns a summary for the manifest."""
    source, output = Path(source), Path(output)
    config = load_config(source)
    text = text_config_of(config, source)
    plan = plan_extraction(source, text)
    src_dtypes = sorted({item[2] for item in plan})
    dst = DTYPE_NAMES[dtype] if dtype else None
    if dst is None and len(src_dtypes) != 1:
        raise UserError(f"{source} mixes dtypes {src_dtypes}; pass --dtype")
    dst = dst or src_dtypes[0]
    dst_name = {v: k for k, v in DTYPE_NAMES.items()}.get(dst, dst.lower())
    shards = plan_shards(plan, dst, int(max_shard_gb * 1e9))
    if bar is not None:
        bar.reset(total=sum(nbytes(item[2], item[3]) for item in plan))
    weight_map, total = {}, 0
    for i, shard in enumerate(shards, 1):
        fname = "model.safetensors" if len(shards) == 1 else f"model-{i:05d}-of-{len(shards):05d}.safetensors"
        entries = [(name, dst, shape, (path, sdt, off)) for name, path, sdt, shape, off in shard]
        write_shard(output / fname, entries, on_bytes=bar.update if bar is not None else None)
        for name, *_, shape, _ in shard:
            weight_map[name] = fname
            total += nbytes(dst, shape)
    index = {"metadata": {"total_size": total}, "weight_map": weight_map}
    (output / "model.safetensors.index.json").write_text(json.dumps(index, indent=2) + "\n")
    (output / "config.json").write_text(json.dumps(plain_text_config(text, dst_name), indent=2) + "\n")
    copied = [f for f in TOKENIZER_FILES if (source / f).exists()]
    for f in copied:
        shutil.copyfile(source / f, output / f)
    if not any(f in copied for f in ("tokenizer.json", "tokenizer.model", "vocab.json")):
        raise UserError(f"{source} has no tokenizer files (tokenizer.json, tokenizer.model or vocab.json)")
    return {"tensors": len(plan), "shards": len(shards), "bytes": total, "dtype": dst_name,
            "source_dtype": src_dtypes, "tokenizer_files": copied,
            "source_shards_read": sorted({p.name for _, p, *_ in plan})}


def fetch_from_hub(repo_id, dest):
    """Download only what extraction reads: config, index, tokenizer files and the
    shards holding language-model tensors (the real 8B's vision/audio shards 1-2 are skipped)."""
    try:
        from huggingface_hub import hf_hub_download
        from huggingface_hub.errors import EntryNotFoundError, HfHubHTTPError
    except ImportError:
        raise UserError("--hf-repo needs huggingface_hub (pip install huggingface_hub)")
    dest = Path(dest)

    def get(name, required=True):
        try:
            return hf_hub_download(repo_id, name, local_dir=dest)
        except EntryNotFoundError:
            if required:
                raise UserError(f"{repo_id} has no {name}")
        except (HfHubHTTPError, OSError) as e:
            raise UserError(f"could not download {name} from {repo_id}: {str(e).splitlines()[0]}")

    get("config.json")
    index = get("model.safetensors.index.json", required=False)
    shards = language_shards(json.loads(Path(index).read_text())["weight_map"]) if index else ["model.safetensors"]
    for name in TOKENIZER_FILES:
        get(name, required=False)
    for name in shards:
        get(name)
    return shards


# ---------------------------------------------------------------- the stage

def choose_dtype(requested):
    if requested != "auto":
        return requested, "asked for"
    from omnilm.runtime import on_cpu

    if on_cpu():
        return "float32", "auto: mlx runs on CPU, where float32 uses BLAS and 16-bit matmuls are slow"
    return "bfloat16", "auto: mlx runs on a GPU, where bfloat16 halves memory at full speed"


def extract_stage(args):
    """Stage 00 for resolved options (source, output, dtype, max_shard_gb, hf_repo,
    force): the source checked before any output exists; returns the output folder."""
    from omnilm.atomic import staged_dir
    from omnilm.manifest import fingerprint, write_manifest
    from omnilm.paths import demo_omni_dir, display, models_dir, resolve, text_model_dir
    from omnilm.progress import byte_bar

    if args.hf_repo:
        source = resolve(args.source) if args.source else models_dir() / args.hf_repo.split("/")[-1]
        print(f"fetching the language-model shards of {args.hf_repo} into {display(source)}")
        fetch_from_hub(args.hf_repo, source)
    else:
        source = resolve(args.source) if args.source else demo_omni_dir()
    if not source.exists():
        demo = source.name == demo_omni_dir().name
        hint = " (build the demo first: python 00_extract/make_demo_omni.py)" if demo else ""
        raise UserError(f"source {display(source)} does not exist{hint}")
    text_config_of(load_config(source), source)  # refuse a non-omni source before any output exists
    output = resolve(args.output) if args.output else text_model_dir(source)
    if output.resolve() == source.resolve():
        raise UserError("--output must differ from --source")
    dtype, why = choose_dtype(args.dtype)

    with staged_dir(output, force=args.force, what="output") as tmp, byte_bar("extracting") as bar:
        info = extract(source, tmp, dtype=dtype, max_shard_gb=args.max_shard_gb, bar=bar)
        write_manifest(tmp, "extract", args, inputs={"source": fingerprint(source / "config.json")},
                       metrics=info, dtype_reason=why, source=display(source))
    print(f"text model: {display(output)} ({info['tensors']} tensors, {info['shards']} shard(s), "
          f"{info['bytes'] / 1e6:.0f} MB, {info['dtype']}: {why})")
    return output
