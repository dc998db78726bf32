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
folder is refused before anything is written. A bar counts the layers as they are
quantized, with the elapsed time (minutes on an 8B model).
"""
import omnilm  # noqa: F401  (fast BLAS before mlx)
from omnilm.config import make_parser, parse_options
from omnilm.errors import run_main
from omnilm.quantize import SCALES_DTYPES, quantize_models


def build_parser():
    """The options, also read by omnilm.config to check a --config file's every section."""
    p = make_parser(__doc__)
    p.add_argument("--model", help="float text model folder (default: models/demo-omni-Text)")
    p.add_argument("--bits", default=[8, 4], nargs="+", type=int, metavar="N", help="bit width(s), e.g. 8 4")
    p.add_argument("--group-size", default=64, type=int, help="weights sharing one scale and bias")
    p.add_argument("--output", help="output folder (one --bits only; default: <model>-<bits>bit)")
    p.add_argument("--dtype", default="auto", choices=["auto", *SCALES_DTYPES],
                   help="dtype of the scales and unquantized tensors (default auto: float32 on CPU)")
    return p


def main():
    quantize_models(parse_options(build_parser(), "quantize", force="replace existing output folders"))


if __name__ == "__main__":
    run_main(main)
