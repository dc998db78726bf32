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
from omnilm.atomic import staged_dir
from omnilm.config import make_parser, resolve_options
from omnilm.errors import UserError, run_main
from omnilm.extract import extract, fetch_from_hub, load_config, text_config_of
from omnilm.manifest import fingerprint, write_manifest
from omnilm.paths import display, models_dir, resolve
from omnilm.progress import byte_bar
from omnilm.runtime import on_cpu

DEFAULTS = {"source": None, "output": None, "dtype": "auto", "max_shard_gb": 5.0, "hf_repo": None}


def choose_dtype(requested):
    if requested != "auto":
        return requested, "asked for"
    if on_cpu():
        return "float32", "auto: mlx runs on CPU, where float32 uses BLAS and 16-bit matmuls are slow"
    return "bfloat16", "auto: mlx runs on a GPU, where bfloat16 halves memory at full speed"


def main():
    p = make_parser(__doc__)
    p.add_argument("--source", help="omni checkpoint folder (default: models/demo-omni)")
    p.add_argument("--output", help="text model folder (default: <source>-Text next to the source)")
    p.add_argument("--dtype", choices=["auto", "float32", "bfloat16", "float16"], help="output dtype (default auto)")
    p.add_argument("--max-shard-gb", type=float, help="largest output shard in GB (default 5)")
    p.add_argument("--hf-repo", help="download from the Hugging Face Hub first (only the language-model shards)")
    p.add_argument("--force", action="store_true", help="replace an existing output folder")
    p.add_argument("--config", help="YAML file with these options (section: extract)")
    args = resolve_options(p.parse_args(), DEFAULTS, section="extract")

    if args.hf_repo:
        source = resolve(args.source) if args.source else models_dir() / args.hf_repo.split("/")[-1]
        print(f"fetching the language-model shards of {args.hf_repo} into {display(source)}")
        fetch_from_hub(args.hf_repo, source)
    else:
        source = resolve(args.source) if args.source else models_dir() / "demo-omni"
    if not source.exists():
        hint = " (build the demo first: python 00_extract/make_demo_omni.py)" if source.name == "demo-omni" else ""
        raise UserError(f"source {display(source)} does not exist{hint}")
    text_config_of(load_config(source), source)  # refuse a non-omni source before any output exists
    output = resolve(args.output) if args.output else source.parent / f"{source.name}-Text"
    if output.resolve() == source.resolve():
        raise UserError("--output must differ from --source")
    dtype, why = choose_dtype(args.dtype)

    with staged_dir(output, force=args.force, what="output") as tmp, byte_bar("extracting") as bar:
        info = extract(source, tmp, dtype=dtype, max_shard_gb=args.max_shard_gb, bar=bar)
        write_manifest(tmp, "extract", args, inputs={"source": fingerprint(source / "config.json")},
                       metrics=info, dtype_reason=why, source=display(source))
    print(f"text model: {display(output)} ({info['tensors']} tensors, {info['shards']} shard(s), "
          f"{info['bytes'] / 1e6:.0f} MB, {info['dtype']}: {why})")


if __name__ == "__main__":
    run_main(main)
