"""Extract the text-only language model from an omni (vision+audio+text) checkpoint.

Examples:
  python 00_extract/extract_text_backbone.py                 # models/demo-omni -> models/demo-omni-Text
  python 00_extract/extract_text_backbone.py --source models/HyperCLOVAX-SEED-Omni-8B --dtype bfloat16
  python 00_extract/extract_text_backbone.py --hf-repo naver-hyperclovax/HyperCLOVAX-SEED-Omni-8B

Tensors stream shard by shard (memory stays small whatever the model size);
model.language_model.model.* -> model.*, model.language_model.lm_head.* -> lm_head.*,
every tensor is checked against text_config, and the output is a plain llama
folder (config.json with tie_word_embeddings and rope_theta explicit, sharded
safetensors + index, tokenizer and chat template, manifest.json) that mlx-lm loads.
--dtype auto (default): float32 on CPU (16-bit matmuls are slow there), bfloat16 on a GPU.
"""
import omnilm  # noqa: F401  (fast BLAS before mlx)
from omnilm.config import make_parser, parse_options
from omnilm.errors import run_main
from omnilm.extract import extract_stage


def build_parser():
    """The options, also read by omnilm.config to check a --config file's every section."""
    p = make_parser(__doc__)
    p.add_argument("--source", help="omni checkpoint folder (default: models/demo-omni)")
    p.add_argument("--output", help="text model folder (default: <source>-Text next to the source)")
    p.add_argument("--dtype", default="auto", choices=["auto", "float32", "bfloat16", "float16"], help="output dtype")
    p.add_argument("--max-shard-gb", default=5.0, type=float, help="largest output shard in GB")
    p.add_argument("--hf-repo", help="download from the Hugging Face Hub first (only the language-model shards)")
    return p


def main():
    extract_stage(parse_options(build_parser(), "extract", force="replace an existing output folder"))


if __name__ == "__main__":
    run_main(main)
