"""Quantize a text model to 8 and/or 4 bits with mlx-lm (the app and training load the result).

Examples:
  python 01_quantize/quantize.py                           # models/demo-omni-Text -> -8bit and -4bit
  python 01_quantize/quantize.py --model models/demo-omni-Text --bits 4 --force
  python 01_quantize/quantize.py --model models/MyModel-Text --bits 8 --group-size 32 --output models/My-8bit
  python 01_quantize/quantize.py --bits 4 --dtype bfloat16 --output /tmp/q4-bf16   # force the scales' dtype

Default output: the model's folder name + "-8bit" / "-4bit", next to it. Each output
keeps mlx-lm's config.json (with its "quantization" block) and gets a manifest.json
with bits, group size, scales dtype and why, size on disk, bits per weight and the
source's fingerprint. --dtype auto (default) picks the scales' dtype for the device:
float32 on CPU (bfloat16/float16 scales are 8-30x slower there), the source's dtype
on Metal/CUDA. An omni/VLM checkpoint, an already quantized model or a missing
folder is refused before anything is written.
"""
import time

import omnilm  # noqa: F401  (fast BLAS before mlx)
from omnilm.atomic import staged_dir
from omnilm.config import make_parser, resolve_options
from omnilm.errors import UserError, run_main
from omnilm.manifest import fingerprint, read_manifest, write_manifest
from omnilm.paths import demo_text_model, display, resolve
from omnilm.quantize import (SCALES_DTYPES, SUPPORTED_BITS, SUPPORTED_GROUP_SIZES, choose_scales_dtype, output_for,
                             quantize, refuse_quantized, text_model_config, weight_dtype, weights_summary)
from omnilm.runtime import device_name

DEFAULTS = {"model": None, "bits": [8, 4], "group_size": 64, "output": None, "dtype": "auto"}


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


def main():
    p = make_parser(__doc__)
    p.add_argument("--model", help="float text model folder (default: models/demo-omni-Text)")
    p.add_argument("--bits", nargs="+", type=int, metavar="N", help="bit width(s), e.g. 8 4 (default: 8 4)")
    p.add_argument("--group-size", type=int, help="weights sharing one scale and bias (default 64)")
    p.add_argument("--output", help="output folder (one --bits only; default: <model>-<bits>bit)")
    p.add_argument("--dtype", choices=["auto", *SCALES_DTYPES],
                   help="dtype of the scales and unquantized tensors (default auto: float32 on CPU)")
    p.add_argument("--force", action="store_true", help="replace existing output folders")
    p.add_argument("--config", help="YAML file with these options (section: quantize)")
    args = resolve_options(p.parse_args(), DEFAULTS, section="quantize")
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
    outputs = {b: resolve(args.output) if args.output else output_for(model, b) for b in bits}
    for out in outputs.values():  # refuse before writing anything
        if out.resolve() == model.resolve():
            raise UserError("--output must differ from --model")
        if out.exists() and not args.force:
            raise UserError(f"output {display(out)} already exists; pass --force to replace it")

    dtype, why = choose_scales_dtype(args.dtype, device_name(), weight_dtype(model, config))
    source = weights_summary(model, config)
    print(f"source: {display(model)} ({source['size_mb']:.0f} MB, {source['bits_per_weight']:.1f} bits/weight)")
    print(f"scales dtype: {dtype} ({why})")
    inherited = read_manifest(model)
    for b, out in outputs.items():
        started = time.perf_counter()
        with staged_dir(out, force=args.force, what="output") as tmp:
            tmp.rmdir()  # mlx-lm's convert insists on creating the folder itself
            quantize(model, tmp, b, int(args.group_size), dtype)
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


if __name__ == "__main__":
    run_main(main)
