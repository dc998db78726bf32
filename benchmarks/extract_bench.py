"""Extraction speed and memory on a synthetic omni checkpoint (default ~2.3 GB).

Examples:
  python benchmarks/extract_bench.py                     # -> results/extract_bench/
  python benchmarks/extract_bench.py --layers 4 --repeats 1 --workdir /tmp/xb

Each repeat, side by side on the same disk: a plain copy of the same
language-model bytes (cp of the source shards' tensor bytes), stage 00 keeping
float32 (kernel copy path), and stage 00 converting to bfloat16. Every extraction
runs in its own process so its peak RSS is its own. Medians with min-max. Writes
extract_bench.json, .md and manifest.json.
"""
import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from benchmarks.harness import machine_line, results_folder, write_results_manifest  # noqa: E402
from omnilm.atomic import write_text_atomic  # noqa: E402
from omnilm.benchmark import peak_rss_bytes  # noqa: E402
from omnilm.config import make_parser  # noqa: E402
from omnilm.errors import UserError, run_main  # noqa: E402
from omnilm.paths import display  # noqa: E402
from omnilm.safetensors_io import write_shard  # noqa: E402

LM = "model.language_model."


def make_checkpoint(folder, layers, hidden=2048, inter=5632, vocab=32000, heads=16, kv=4):
    """A vlm checkpoint whose llama text model has `layers` layers, in 3 shards."""
    folder.mkdir(parents=True)
    hd = hidden // heads
    text = {"model_type": "llama", "hidden_size": hidden, "intermediate_size": inter, "num_hidden_layers": layers,
            "num_attention_heads": heads, "num_key_value_heads": kv, "head_dim": hd, "vocab_size": vocab,
            "rope_theta": 500000.0, "rms_norm_eps": 1e-5, "tie_word_embeddings": False}
    shapes = {LM + "model.embed_tokens.weight": (vocab, hidden)}
    for i in range(layers):
        p = f"{LM}model.layers.{i}."
        shapes.update({p + "self_attn.q_proj.weight": (heads * hd, hidden), p + "self_attn.k_proj.weight": (kv * hd, hidden),
                       p + "self_attn.v_proj.weight": (kv * hd, hidden), p + "self_attn.o_proj.weight": (hidden, heads * hd),
                       p + "mlp.gate_proj.weight": (inter, hidden), p + "mlp.up_proj.weight": (inter, hidden),
                       p + "mlp.down_proj.weight": (hidden, inter), p + "input_layernorm.weight": (hidden,),
                       p + "post_attention_layernorm.weight": (hidden,)})
    shapes[LM + "model.norm.weight"] = (hidden,)
    shapes[LM + "lm_head.weight"] = (vocab, hidden)
    names = list(shapes)
    half = len(names) // 2
    plan = {"model-00001-of-00003.safetensors": {"model.vision_model.w": (4096, 1024)},
            "model-00002-of-00003.safetensors": {n: shapes[n] for n in names[:half]},
            "model-00003-of-00003.safetensors": {n: shapes[n] for n in names[half:]}}
    weight_map = {}
    for fname, tensors in plan.items():
        # values are cheap to make (a ramp) but not all zero, so no file is sparse
        entries = [(n, "F32", s, (np.arange(int(np.prod(s)), dtype=np.float32) % 977).reshape(s) * 1e-3)
                   for n, s in tensors.items()]
        write_shard(folder / fname, entries)
        weight_map.update({n: fname for n in tensors})
    (folder / "model.safetensors.index.json").write_text(json.dumps({"weight_map": weight_map}))
    (folder / "config.json").write_text(json.dumps({"model_type": "vlm", "text_config": text}))
    (folder / "tokenizer.json").write_text("{}")
    return sum(int(np.prod(s)) * 4 for s in shapes.values())


def child(src, out, dtype):
    """Run in a fresh process: time extract() itself and report this process's peak RSS."""
    from omnilm.extract import extract

    Path(out).mkdir()
    start = time.perf_counter()
    extract(Path(src), Path(out), dtype=dtype)
    seconds = time.perf_counter() - start
    print(json.dumps({"seconds": seconds, "peak_rss": peak_rss_bytes()}))


def run_child(src, out, dtype):
    cmd = [sys.executable, __file__, "--child", str(src), str(out), dtype]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"extraction failed:\n{done.stderr}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    return result["seconds"], result["peak_rss"]


def main():
    p = make_parser(__doc__)
    p.add_argument("--layers", type=int, default=10, help="text layers of the synthetic model (10 = ~2.3 GB)")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--workdir", help="a new or empty folder to build the checkpoint in, deleted at the end "
                   "(default: a temp folder)")
    p.add_argument("--output", help="results folder (default results/extract_bench)")
    p.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        return child(*args.child)
    out_dir = results_folder("extract_bench", args.output)
    work = Path(args.workdir or tempfile.mkdtemp(prefix="extract-bench-"))
    if args.workdir and work.exists() and (not work.is_dir() or any(work.iterdir())):
        # the benchmark deletes its work folder when done: never one that holds someone's files
        raise UserError(f"--workdir {display(work)} must be a new or empty folder: it is deleted when the run ends")
    work.mkdir(parents=True, exist_ok=True)
    src = work / "omni"
    lm_bytes = make_checkpoint(src, args.layers)
    runs = {"plain copy": [], "extract float32": [], "extract bfloat16": []}
    peaks = {"extract float32": [], "extract bfloat16": []}
    largest_shard = {}
    for r in range(args.repeats):
        for label in runs:
            out = work / "out"
            shutil.rmtree(out, ignore_errors=True)
            if label == "plain copy":
                out.mkdir()
                start = time.perf_counter()
                for shard in ("model-00002-of-00003.safetensors", "model-00003-of-00003.safetensors"):
                    shutil.copyfile(src / shard, out / shard)
                runs[label].append(time.perf_counter() - start)
                continue
            dtype = label.split()[1]
            seconds, peak = run_child(src, out, dtype)
            runs[label].append(seconds)
            peaks[label].append(peak)
            largest_shard[label] = max(f.stat().st_size for f in out.glob("*.safetensors"))
        print(f"repeat {r + 1}/{args.repeats}: " + ", ".join(f"{k} {v[-1]:.2f}s" for k, v in runs.items()), file=sys.stderr)
    copy_s = statistics.median(runs["plain copy"])
    rows = []
    for label, times in runs.items():
        med = statistics.median(times)
        row = {"run": label, "seconds_median": round(med, 3), "seconds_min": round(min(times), 3),
               "seconds_max": round(max(times), 3), "gb_per_s": round(lm_bytes / med / 1e9, 3),
               "ratio_to_copy": round(copy_s / med, 3)}
        if label in peaks:
            row["peak_rss_gb"] = round(statistics.median(peaks[label]) / 1e9, 3)
            row["largest_output_shard_gb"] = round(largest_shard[label] / 1e9, 3)
        rows.append(row)
    result = {"language_model_gb": round(lm_bytes / 1e9, 3), "repeats": args.repeats, "rows": rows,
              "note": "extraction timed in-process around extract(); each in a fresh process for its own peak RSS"}
    write_text_atomic(out_dir / "extract_bench.json", json.dumps(result, indent=2) + "\n")
    lines = [f"# Extraction benchmark ({result['language_model_gb']} GB of language-model tensors, "
             f"{args.repeats} repeats, medians)", "", f"Machine: {machine_line()}", "",
             "| run | seconds (min-max) | GB/s | ratio to plain copy | peak RSS GB | largest output shard GB |",
             "|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['run']} | {r['seconds_median']} ({r['seconds_min']}-{r['seconds_max']}) | {r['gb_per_s']} | "
                     f"{r['ratio_to_copy']} | {r.get('peak_rss_gb', '')} | {r.get('largest_output_shard_gb', '')} |")
    write_text_atomic(out_dir / "extract_bench.md", "\n".join(lines) + "\n")
    write_results_manifest(out_dir, "extract_bench", args, metrics={"rows": rows})
    print("\n".join(lines) + f"\n-> {display(out_dir)}/extract_bench.md, .json")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    run_main(main)
