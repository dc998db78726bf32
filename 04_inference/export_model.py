"""Export the taught model: an adapter fused into its base (mlx-lm's fuse), optionally
dequantized, optionally a GGUF file for llama.cpp / LM Studio / Ollama, optionally
uploaded to the Hugging Face Hub.

Examples:
  python 04_inference/export_model.py                  # adapters/demo_paper-sft fused into its base
  python 04_inference/export_model.py --gguf --force   # plus a float16 GGUF file inside the output
  python 04_inference/export_model.py --model models/demo-omni-Text-4bit --dequantize --gguf --output /tmp/sft-gguf
  python 04_inference/export_model.py --hf-repo me/demo-sft --dry-run   # model card + the file list, no upload

Default output: models/<base>-<adapter> (models/demo-omni-Text-demo_paper-sft).
The base model is the one the adapter's manifest names (--model overrides it); an
adapter trained for another base (its tensor names or shapes differ), a missing
folder or an existing output without --force is refused before anything is written.
On a quantized base the fused layers are quantized again, which loses much of what
the adapter learned: fuse into the float base and quantize the result with stage 01
(--dequantize writes float weights; GGUF needs them). The output is an mlx-lm model folder (mlx_lm.generate --model
takes it, the chat app lists it) with a README.md model card and a manifest.json.
"""
import omnilm  # noqa: F401  (fast BLAS before mlx)
from omnilm.config import make_parser, parse_options
from omnilm.errors import run_main
from omnilm.export import export_model
from omnilm.gguf_export import GGUF_DTYPES


def build_parser():
    """The options, also read by omnilm.config to check a --config file's every section."""
    p = make_parser(__doc__)
    p.add_argument("--adapter", help="adapter folder (default: adapters/demo_paper-sft)")
    p.add_argument("--model", help="base model folder (default: the one the adapter's manifest names)")
    p.add_argument("--output", help="fused model folder (default: models/<model>-<adapter>)")
    p.add_argument("--dequantize", default=False, action="store_true",
                   help="write float weights even when the base is quantized")
    p.add_argument("--gguf", default=False, action="store_true",
                   help="also write <output>-f16.gguf (llama-architecture models)")
    p.add_argument("--gguf-dtype", default="float16", choices=list(GGUF_DTYPES), help="the GGUF's weight dtype")
    p.add_argument("--hf-repo", help="Hugging Face repo (owner/name) to upload the fused model to")
    p.add_argument("--dry-run", default=False, action="store_true",
                   help="with --hf-repo: write the model card and list the files, upload nothing")
    return p


def main():
    export_model(parse_options(build_parser(), "export", force="replace an existing output folder"))


if __name__ == "__main__":
    run_main(main)
