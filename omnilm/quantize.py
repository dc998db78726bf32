"""Stage 01: 8/4-bit versions of a text model through mlx-lm's convert steps (with a
per-layer bar and the elapsed time), the scales' dtype chosen for the device, and the
size/bits-per-weight figures read from the safetensors headers (no weights loaded)."""
import json
import math
from pathlib import Path

from omnilm.errors import UserError
from omnilm.extract import is_omni
from omnilm.paths import display
from omnilm.safetensors_io import read_header

SUPPORTED_BITS = (2, 3, 4, 5, 6, 8)
SUPPORTED_GROUP_SIZES = (32, 64, 128)
SCALES_DTYPES = ("float32", "bfloat16", "float16")
HEADER_DTYPES = {"F32": "float32", "BF16": "bfloat16", "F16": "float16"}


def text_model_config(folder):
    """config.json of a folder mlx-lm can load as a text model, else one clear sentence."""
    folder = Path(folder)
    if not folder.exists():
        raise UserError(f"model {display(folder)} does not exist")
    path = folder / "config.json"
    if not path.is_file():
        raise UserError(f"{display(folder)} is not a model folder (no config.json)")
    try:
        config = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise UserError(f"{display(path)} is not valid JSON ({e.msg} at line {e.lineno})")
    if is_omni(config):
        raise UserError(f"{display(folder)} is an omni/VLM checkpoint, not a text model; extract its text model "
                        f"first (python 00_extract/extract_text_backbone.py --source {display(folder)})")
    if not any(folder.glob("*.safetensors")):
        raise UserError(f"{display(folder)} has no .safetensors weights")
    return config


def quantization_of(config):
    """mlx-lm's quantization block ({"bits", "group_size", ...}) or None for a float model."""
    q = config.get("quantization") or config.get("quantization_config")
    return q if isinstance(q, dict) and q else None


def describe_quantization(config):
    q = quantization_of(config)
    if not q:
        return "none"
    return f"{q.get('bits', '?')}-bit g{q.get('group_size', '?')}"


def refuse_quantized(folder, config):
    if quantization_of(config):
        raise UserError(f"{display(folder)} is already quantized ({describe_quantization(config)}); "
                        f"quantize its float source model instead")


def weight_dtype(folder, config):
    """The source's float dtype: config (torch_dtype/dtype) else the first float tensor's."""
    for key in ("torch_dtype", "dtype"):
        if config.get(key) in SCALES_DTYPES:
            return config[key]
    for shard in sorted(Path(folder).glob("*.safetensors")):
        for t in read_header(shard)[0].values():
            if t["dtype"] in HEADER_DTYPES:
                return HEADER_DTYPES[t["dtype"]]
    return "float32"


def choose_scales_dtype(requested, device, source_dtype):
    """(dtype, reason) for the quantized model's scales and remaining float tensors."""
    if requested != "auto":
        return requested, "asked for"
    if device == "cpu":
        return "float32", ("auto: mlx runs on CPU, where quantized matmuls with bfloat16/float16 scales "
                           "are 8-30x slower than with float32 scales")
    return source_dtype, (f"auto: mlx runs on a GPU (Metal/CUDA), where the source's {source_dtype} scales "
                          f"run at full speed")


def weights_summary(folder, config=None):
    """Size on disk and effective bits per weight, from the headers alone.

    Parameters count a quantized weight unpacked (as mlx-lm does), so bits/weight is
    every tensor byte (packed weights, scales, biases, norms) over that count."""
    folder = Path(folder)
    config = config if config is not None else json.loads((folder / "config.json").read_text())
    quant = quantization_of(config) or {}
    tensors = {}
    for shard in sorted(folder.glob("*.safetensors")):
        tensors.update(read_header(shard)[0])
    tensor_bytes, params, scales_dtype = 0, 0, None
    for name, t in tensors.items():
        start, end = t["data_offsets"]
        tensor_bytes += end - start
        module, kind = name.rsplit(".", 1) if "." in name else ("", name)
        if kind in ("scales", "biases") and f"{module}.scales" in tensors:
            scales_dtype = HEADER_DTYPES.get(t["dtype"], t["dtype"])
            continue  # quantization metadata, not parameters
        scales = tensors.get(f"{module}.scales") if name.endswith(".weight") else None
        if scales is not None:
            per_layer = quant.get(module) if isinstance(quant.get(module), dict) else {}
            group = per_layer.get("group_size", quant.get("group_size", 64))
            params += math.prod(t["shape"][:-1]) * scales["shape"][-1] * group
        else:
            params += math.prod(t["shape"])
    # a GGUF copy beside the weights (the export writes one) is not part of this model's size
    size = sum(f.stat().st_size for f in folder.rglob("*") if f.is_file() and f.suffix != ".gguf")
    return {"size_bytes": size, "size_mb": round(size / 1e6, 1), "tensor_bytes": tensor_bytes,
            "params": params, "bits_per_weight": round(tensor_bytes * 8 / params, 3) if params else None,
            "scales_dtype": scales_dtype}


def quantize(source, output, bits, group_size, dtype, label=None):
    """mlx-lm's convert, one step at a time (load lazily, cast to `dtype`, quantize,
    save) so that the real work, done when the weights are evaluated, runs layer by
    layer under a bar with a count and the elapsed time: on an 8B model that is
    minutes. `label` names the output in the messages (the caller writes into a
    temporary folder)."""
    import mlx.core as mx
    from mlx.utils import tree_map_with_path
    from mlx_lm import load

    from omnilm import mlx_lm_api
    from omnilm.progress import eval_by_layer, timed_step

    try:
        model, tokenizer, config = load(str(source), lazy=True, return_config=True)
        target = getattr(mx, dtype)
        castable = getattr(model, "cast_predicate", lambda _: True)  # as convert: some models keep a dtype
        model.update(tree_map_with_path(
            lambda k, v: v.astype(target) if castable(k) and mx.issubdtype(v.dtype, mx.floating) else v,
            model.parameters()))
        model, config = mlx_lm_api.quantize_weights(model, config, bits, group_size)
    except ValueError as e:  # unsupported architecture, shapes mlx-lm cannot quantize
        raise UserError(f"mlx-lm cannot quantize {display(source)}: {e}")
    eval_by_layer(model, f"{bits}-bit: quantizing")
    with timed_step(f"{bits}-bit: writing {label or display(output)}"):
        mlx_lm_api.save_model_folder(output, source, model, tokenizer, config, donate=True)


def float32_scales_on_cpu(model, device=None):
    """On CPU, cast a quantized model's 16-bit tensors (scales, biases, norms: all small)
    to float32 in place: same values, 8-30x faster quantized matmuls, so a model
    quantized on a GPU or downloaded from mlx-community runs at full CPU speed.
    Float models are left alone (float32 would double their memory). Returns how
    many tensors were cast."""
    import mlx.core as mx
    import mlx.nn as nn
    from mlx.utils import tree_flatten, tree_map

    from omnilm.runtime import device_name

    if (device or device_name()) != "cpu":
        return 0
    if not any(isinstance(m, (nn.QuantizedLinear, nn.QuantizedEmbedding)) for m in model.modules()):
        return 0
    half = (mx.bfloat16, mx.float16)
    params = model.parameters()
    count = sum(1 for _, v in tree_flatten(params) if v.dtype in half)
    if count:
        model.update(tree_map(lambda v: v.astype(mx.float32) if v.dtype in half else v, params))
    return count


def bits_list(value):
    """--bits from the command line (a list) or YAML (an int or a list), checked."""
    values = value if isinstance(value, (list, tuple)) else [value]
    try:
        values = [int(v) for v in values]
    except (TypeError, ValueError):
        raise UserError(f"bits must be numbers among {SUPPORTED_BITS}, got {value!r}")
    bad = [v for v in values if v not in SUPPORTED_BITS]
    if bad or not values:
        raise UserError(f"bits {bad or value} not supported (choose among {', '.join(map(str, SUPPORTED_BITS))})")
    return list(dict.fromkeys(values))


def quantize_models(args):
    """Stage 01 for resolved options (model, bits, group_size, output, dtype, force):
    every input checked before anything is written; returns {bits: output folder}."""
    import time

    from omnilm.atomic import check_output, staged_dir
    from omnilm.manifest import fingerprint, read_manifest, write_manifest
    from omnilm.paths import demo_text_model, quantized_dir, resolve
    from omnilm.runtime import device_name

    bits = bits_list(args.bits)
    if int(args.group_size) not in SUPPORTED_GROUP_SIZES:
        raise UserError(f"group size {args.group_size} not supported (choose among "
                        f"{', '.join(map(str, SUPPORTED_GROUP_SIZES))})")
    if args.dtype not in ("auto", *SCALES_DTYPES):
        raise UserError(f"dtype {args.dtype!r} not supported (auto, {', '.join(SCALES_DTYPES)})")

    model = resolve(args.model) if args.model else demo_text_model()
    if not model.exists() and not args.model:
        raise UserError(f"model {display(model)} does not exist (build the demo first: python "
                        f"00_extract/make_demo_omni.py && python 00_extract/extract_text_backbone.py)")
    config = text_model_config(model)
    args.model = display(model)  # the manifest names what was actually read
    refuse_quantized(model, config)
    if args.output and len(bits) > 1:
        raise UserError("--output names one folder; with several --bits leave it out (outputs: <model>-<bits>bit)")
    outputs = {b: resolve(args.output) if args.output else quantized_dir(model, b) for b in bits}
    for out in outputs.values():  # refuse before writing anything
        if out.resolve() == model.resolve():
            raise UserError("--output must differ from --model")
        check_output(out, args.force)

    dtype, why = choose_scales_dtype(args.dtype, device_name(), weight_dtype(model, config))
    source = weights_summary(model, config)
    print(f"source: {display(model)} ({source['size_mb']:.0f} MB, {source['bits_per_weight']:.1f} bits/weight)")
    print(f"scales dtype: {dtype} ({why})")
    inherited = read_manifest(model)
    for b, out in outputs.items():
        started = time.perf_counter()
        with staged_dir(out, force=args.force, what="output") as tmp:
            quantize(model, tmp, b, int(args.group_size), dtype, label=display(out))
            info = weights_summary(tmp)
            seconds = round(time.perf_counter() - started, 1)
            write_manifest(tmp, "quantize", args, inputs={"source": fingerprint(model)},
                           metrics={"bits": b, "group_size": int(args.group_size), "scales_dtype": dtype,
                                    **info, "seconds": seconds, "smaller_than_source": round(
                                        source["size_bytes"] / info["size_bytes"], 2)},
                           scales_dtype_reason=why, source=display(model), device=device_name(),
                           source_stage=inherited.get("stage"))
        print(f"{b}-bit: {display(out)} ({info['size_mb']:.0f} MB, {info['bits_per_weight']:.2f} bits/weight, "
              f"{source['size_bytes'] / info['size_bytes']:.1f}x smaller, {seconds:.0f}s)")
    return outputs
