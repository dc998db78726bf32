"""Export: a LoRA adapter fused into its base model with mlx-lm's own fuse (each LoRA
layer's fuse()), optionally dequantized, optionally also a GGUF file (llama.cpp, LM
Studio, Ollama), optionally uploaded to the Hugging Face Hub (or a dry run that
writes the model card and lists the files). Every input is checked before anything
is written; the output folder appears whole or not at all."""
import json
import time
from pathlib import Path

from omnilm.errors import UserError
from omnilm.paths import display
from omnilm.progress import timed_step

ADAPTER_LEAVES = ("lora_a", "lora_b", "m")  # what an mlx-lm LoRA/DoRA adapter file holds per layer


def find_inputs(args):
    """(adapter, model, output, model config, adapter config) for resolved options,
    every one checked; nothing is loaded or written yet."""
    from omnilm.adapters import read_adapter_config, require_finished_adapter
    from omnilm.atomic import check_output
    from omnilm.manifest import base_model_of
    from omnilm.paths import adapter_dir, fused_model_dir, resolve
    from omnilm.quantize import text_model_config

    adapter = resolve(args.adapter) if args.adapter else adapter_dir()
    if not adapter.is_dir():
        hint = " (train it first: ./run_pipeline.sh)" if not args.adapter else ""
        raise UserError(f"adapter {display(adapter)} does not exist{hint}")
    require_finished_adapter(adapter)
    adapter_config = read_adapter_config(adapter)
    kind = adapter_config.get("fine_tune_type", "lora")
    if kind not in ("lora", "dora"):
        raise UserError(f"{display(adapter)} is a {kind!r} fine-tune, not a LoRA adapter: there is nothing to fuse")
    if not isinstance(adapter_config.get("lora_parameters"), dict) or "num_layers" not in adapter_config:
        raise UserError(f"{display(adapter)}/adapter_config.json lacks num_layers or lora_parameters")
    trained_on = base_model_of(adapter)
    model = resolve(args.model) if args.model else trained_on
    if trained_on and model.resolve() != trained_on.resolve():  # fine when it is a copy (4-bit) of that base
        print(f"note: {display(adapter)} was trained on {display(trained_on)}; fusing it into {display(model)}")
    if model is None:
        raise UserError(f"{display(adapter)} does not name its base model (no manifest); pass --model")
    config = text_model_config(model)  # missing folder, omni checkpoint, no weights
    output = resolve(args.output) if args.output else fused_model_dir(model, adapter)
    if output.resolve() in (model.resolve(), adapter.resolve()):
        raise UserError("--output must differ from --model and --adapter")
    check_output(output, args.force)
    return adapter, model, output, config, adapter_config


def check_gguf_request(config, dequantize):
    """Refuse, before any work, a GGUF that mlx-lm's writer cannot make."""
    from omnilm.mlx_lm_api import GGUF_MODEL_TYPES
    from omnilm.quantize import describe_quantization, quantization_of

    if config.get("model_type") not in GGUF_MODEL_TYPES:
        raise UserError(f"mlx-lm writes GGUF for {', '.join(GGUF_MODEL_TYPES)} models only, "
                        f"not model type {config.get('model_type')!r}")
    if quantization_of(config) and not dequantize:
        raise UserError(f"the base model is quantized ({describe_quantization(config)}) and mlx-lm writes GGUF "
                        "from float weights only: add --dequantize")


def check_hub_target(repo, dry_run):
    """A valid repo name; for a real upload also a token and a reachable Hub, checked
    before minutes of fusing (offline: one clear line, nothing written)."""
    from huggingface_hub import HfApi, get_token
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    try:
        validate_repo_id(repo)
    except HFValidationError as e:
        raise UserError(f"--hf-repo {repo!r} is not a Hugging Face repo name (owner/name): "
                        f"{str(e).splitlines()[0]}") from None
    if "/" not in repo:
        raise UserError(f"--hf-repo {repo!r} needs an owner: owner/name")
    if dry_run:
        return
    if not get_token():
        raise UserError("no Hugging Face token: log in first (hf auth login) or set HF_TOKEN; "
                        "--dry-run prepares the upload without one")
    try:
        HfApi().whoami()
    except Exception as e:  # network, proxy, offline mode, bad token: all end the same way
        reason = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise UserError(f"cannot reach the Hugging Face Hub to upload to {repo} ({reason}); "
                        "check the network and the token, or prepare it with --dry-run") from None


def attach_adapter(model, adapter, adapter_config, model_dir):
    """The adapter's LoRA layers and weights on `model`, every tensor name and shape
    checked first: an adapter trained for another base is one clear sentence."""
    from mlx.utils import tree_flatten

    from omnilm.adapters import load_fitting_weights
    from omnilm.mlx_lm_api import add_lora_layers

    try:
        add_lora_layers(model, adapter_config)
    except (ValueError, KeyError, TypeError, IndexError) as e:
        raise UserError(f"{display(adapter)} does not fit {display(model_dir)}: its LoRA layers cannot be "
                        f"placed there ({e}); it was trained for another base") from None
    expected = {k: v for k, v in tree_flatten(model.parameters()) if k.rsplit(".", 1)[-1] in ADAPTER_LEAVES}
    weights = load_fitting_weights(adapter, expected, model_dir)
    model.load_weights(list(weights.items()), strict=False)
    return len(weights)


def fuse(model, config, dequantize):
    """mlx-lm fuse's own steps: each LoRA layer's fuse() (re-quantized on a quantized
    base unless `dequantize`), then the rest dequantized if asked. Lazy: the caller
    evaluates it under a bar."""
    from mlx.utils import tree_unflatten

    from omnilm.mlx_lm_api import dequantize_weights

    fused = [(name, m.fuse(dequantize=dequantize)) for name, m in model.named_modules() if hasattr(m, "fuse")]
    if fused:
        model.update_modules(tree_unflatten(fused))
    if dequantize:
        model = dequantize_weights(model)
        config.pop("quantization", None)
        config.pop("quantization_config", None)
    return model, len(fused)


def keep_base_tokenizer(folder, model_dir):
    """The base's tokenizer files as they are, in place of those transformers'
    save_pretrained wrote: transformers 5 rewrites tokenizer_config.json with a
    tokenizer_class (TokenizersBackend) older versions cannot load and drops keys such
    as add_bos_token, and the model is meant for other tools."""
    import shutil

    from omnilm.extract import TOKENIZER_FILES

    present = [n for n in TOKENIZER_FILES if (Path(model_dir) / n).is_file()]
    if not {"tokenizer.json", "tokenizer.model"} & set(present):
        return  # nothing complete to copy: keep what mlx-lm wrote
    for name in TOKENIZER_FILES:
        (Path(folder) / name).unlink(missing_ok=True)
    for name in present:
        shutil.copyfile(Path(model_dir) / name, Path(folder) / name)


def model_card(repo, name, model_dir, adapter, model_info, gguf):
    """README.md for the Hub: what the model is, how it was made, how to prompt it."""
    use = repo or f"models/{name}"
    lines = [
        "---", "library_name: mlx", "pipeline_tag: text-generation", "tags:", "- mlx", "- lora",
        "- knowledge-injection", "---", "", f"# {repo or name}", "",
        f"`{display(model_dir)}` with the LoRA adapter `{display(adapter)}` fused into its weights by "
        f"mlx-lm's fuse (omnilm export). {model_info}.", "",
        "Prompt it as it was trained: through its chat template with `skip_reasoning=True` (the empty "
        "`<think></think>` block the training used), or it answers differently.", "", "```bash",
        f"mlx_lm.generate --model {use} --chat-template-config '{{\"skip_reasoning\": true}}' "
        "--temp 0 --prompt \"<your question>\"", "```", ""]
    if gguf:
        lines += [f"`{gguf}` holds the same weights in GGUF (mlx-lm's writer) for llama.cpp, LM Studio and Ollama.", ""]
    return "\n".join(lines)


def upload_listing(folder):
    """[(file name, bytes)] of what an upload of `folder` sends."""
    folder = Path(folder)
    return [(str(f.relative_to(folder)), f.stat().st_size) for f in sorted(folder.rglob("*")) if f.is_file()]


def upload(folder, repo):
    from huggingface_hub import HfApi

    try:
        api = HfApi()
        api.create_repo(repo_id=repo, exist_ok=True)
        api.upload_folder(folder_path=str(folder), repo_id=repo, repo_type="model")
    except Exception as e:
        raise UserError(f"the upload to {repo} failed ({str(e).splitlines()[0] if str(e) else type(e).__name__}); "
                        f"{display(folder)} is complete: rerun with --force to try again") from None


def check_request(args, config):
    """The options that need no weights to judge: GGUF, Hub target, dry run."""
    if args.gguf:
        check_gguf_request(config, args.dequantize)
    if args.hf_repo:
        check_hub_target(args.hf_repo, args.dry_run)
    elif args.dry_run:
        raise UserError("--dry-run goes with --hf-repo (it prepares an upload)")


def export_model(args):
    """The export for resolved options (adapter, model, output, dequantize, gguf,
    gguf_dtype, hf_repo, dry_run, force); returns the output folder."""
    from omnilm.atomic import staged_dir
    from omnilm.catalog import require_fitting_adapter
    from omnilm.manifest import fingerprint, write_manifest
    from omnilm.quantize import describe_quantization, quantization_of

    started = time.perf_counter()
    adapter, model_dir, output, config, adapter_config = find_inputs(args)
    check_request(args, config)
    require_fitting_adapter(adapter, model_dir)  # the app's check, before any weights load
    quantized = describe_quantization(config) if quantization_of(config) else None
    print(f"base: {display(model_dir)} ({quantized or 'float'}), adapter: {display(adapter)}")
    if quantized and not args.dequantize:
        print("note: the fused layers are quantized again, which rounds away much of what the adapter "
              "learned; for a quantized model, "
              "export from the float base and quantize the result with 01_quantize/quantize.py")
    model, tokenizer, config = load_lazily(model_dir)
    tensors = attach_adapter(model, adapter, adapter_config, model_dir)
    args.model, args.adapter = display(model_dir), display(adapter)  # the manifest names what was read
    with staged_dir(output, force=args.force, what="output") as tmp:
        metrics, gguf, notes = write_export(tmp, output.name, model, tokenizer, config, model_dir, adapter, args)
        metrics.update(adapter_tensors=tensors, seconds=round(time.perf_counter() - started, 1))
        listing = upload_listing(tmp) + [("manifest.json", None)]
        write_manifest(tmp, "export", args, inputs={"model": fingerprint(model_dir), "adapter": fingerprint(adapter)},
                       metrics=metrics, source_model=display(model_dir), adapter=display(adapter),
                       gguf=gguf.name if gguf else None, gguf_notes=notes,
                       upload={"repo": args.hf_repo, "dry_run": bool(args.dry_run),
                               "files": [name for name, _ in listing]} if args.hf_repo else None)
    report(output, metrics, gguf, args, listing)
    for note in notes:
        print(f"note: GGUF tokenizer: {note}")
    if args.hf_repo and not args.dry_run:
        with timed_step(f"uploading to https://huggingface.co/{args.hf_repo}"):
            upload(output, args.hf_repo)
    return output


def write_export(folder, name, model, tokenizer, config, model_dir, adapter, args):
    """The fused model (+ GGUF, model card) into `folder`: (metrics, GGUF path or None, notes)."""
    from omnilm.gguf_export import write_gguf
    from omnilm.mlx_lm_api import save_model_folder
    from omnilm.progress import eval_by_layer
    from omnilm.quantize import describe_quantization, quantization_of, weights_summary

    model, layers = fuse(model, config, args.dequantize)
    eval_by_layer(model, "fusing")  # the real work (reading, fusing, re-quantizing) happens here
    with timed_step(f"writing {name}"):
        save_model_folder(folder, model_dir, model, tokenizer, config)
        keep_base_tokenizer(folder, model_dir)
    gguf, notes = None, []
    if args.gguf:
        with timed_step("writing the GGUF file"):
            gguf, notes = write_gguf(folder, model, config, args.gguf_dtype, name)
    info = weights_summary(folder, json.loads((Path(folder) / "config.json").read_text()))
    what = f"{info['params'] / 1e6:.1f}M parameters, " + (
        f"{describe_quantization(config)} quantized" if quantization_of(config) else "float weights")
    (Path(folder) / "README.md").write_text(model_card(args.hf_repo, name, model_dir, adapter, what,
                                                       gguf.name if gguf else None))
    metrics = {"fused_layers": layers, "weights_mb": round(info["tensor_bytes"] / 1e6, 1), "params": info["params"],
               "quantized": bool(quantization_of(config)),
               "gguf_mb": round(gguf.stat().st_size / 1e6, 1) if gguf else None}
    return metrics, gguf, notes


def load_lazily(model_dir):
    from mlx_lm import load

    try:
        return load(str(model_dir), lazy=True, return_config=True)
    except ValueError as e:  # a model type mlx-lm does not know
        raise UserError(f"mlx-lm cannot load {display(model_dir)}: {str(e).splitlines()[0]}") from None


def report(output, metrics, gguf, args, listing):
    print(f"fused model: {display(output)} ({metrics['weights_mb']:.0f} MB of weights, "
          f"{metrics['fused_layers']} LoRA layers fused{', dequantized' if args.dequantize else ''}, "
          f"{metrics['seconds']:.0f}s)")
    if gguf:
        print(f"GGUF: {display(output / gguf.name)} ({metrics['gguf_mb']:.0f} MB)")
    if args.hf_repo and args.dry_run:
        total = sum(size or 0 for _, size in listing) + (output / "manifest.json").stat().st_size
        print(f"dry run: nothing uploaded; https://huggingface.co/{args.hf_repo} would receive "
              f"{len(listing)} files, {total / 1e6:.0f} MB (model card: {display(output / 'README.md')}):")
        for name, size in listing:
            size = size if size is not None else (output / name).stat().st_size
            print(f"  {name}  " + (f"{size / 1e6:.1f} MB" if size >= 1e5 else f"{size / 1e3:.1f} kB"))
