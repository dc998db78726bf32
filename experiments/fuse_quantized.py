"""Does fusing an adapter into a quantized base keep what it learned? Four ways to a model, one set of questions.

Examples:
  python experiments/fuse_quantized.py                   # demo: SFT adapter, float base and its 4-bit copy
  python experiments/fuse_quantized.py --kinds trained paraphrase --max-tokens 64

Asks the evaluation questions of the chosen kinds (greedy, scored as stage 30 does) of:
the float base + adapter, the quantized base + adapter, the adapter fused into the
quantized base (mlx-lm's fuse quantizes the fused layers again) and the adapter
fused into the float base then quantized by stage 01 with the quantized base's bits.
The two fused models are built in a temporary folder and removed. On the demo (16
trained questions, 40 tokens): 12, 8, 2 and 7 right. Writes fuse_quantized.md,
.csv (one row per model and question) and manifest.json in results/fuse_quantized/.
"""
import omnilm  # noqa: F401  (fast BLAS before mlx)

import json
import shutil
import sys
import tempfile
from argparse import Namespace
from pathlib import Path

from omnilm.atomic import write_csv_atomic, write_text_atomic
from omnilm.config import make_parser
from omnilm.errors import UserError, run_main
from omnilm.jsonl import read_jsonl
from omnilm.paths import DEMO_QUESTIONS, adapter_dir, demo_text_model, display, quantized_dir, resolve, results_dir

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository, for benchmarks.harness
from benchmarks.harness import results_folder, write_results_manifest  # noqa: E402


def build_variants(model, quantized, adapter, work):
    """{name: (model folder, adapter or None)}: the four ways, the fused ones built in `work`."""
    from omnilm.export import export_model
    from omnilm.quantize import quantization_of, quantize_models

    bits = quantization_of(json.loads((quantized / "config.json").read_text()) or {})
    if not bits:
        raise UserError(f"{display(quantized)} is not a quantized model")
    fused_q, fused_f = work / "fused-into-quantized", work / "fused-into-float"

    def export(base, output):
        export_model(Namespace(adapter=str(adapter), model=str(base), output=str(output), dequantize=False,
                               gguf=False, gguf_dtype="float16", hf_repo=None, dry_run=False, force=False))

    export(quantized, fused_q)
    export(model, fused_f)
    then_q = work / "fused-then-quantized"
    quantize_models(Namespace(model=str(fused_f), bits=[bits["bits"]], group_size=bits["group_size"],
                              output=str(then_q), dtype="auto", force=False))
    return {"float base + adapter": (model, adapter), "quantized base + adapter": (quantized, adapter),
            "fused into the quantized base": (fused_q, None),
            "fused into the float base, then quantized": (then_q, None)}


def ask_all(variants, questions, max_tokens):
    from omnilm.chat import ask, load_model
    from omnilm.scoring import score_answer

    rows = []
    for name, (model, adapter) in variants.items():
        loaded = load_model(model, adapter)
        for q in questions:
            answer = ask(None, q["question"], max_tokens=max_tokens, model_and_tokenizer=loaded)["text"]
            rows.append({"model": name, "id": q["id"], "question": q["question"], "answer": answer.strip(),
                         "correct": score_answer(answer, q["key_facts"])[0]})
        print(f"{name}: {sum(r['correct'] for r in rows if r['model'] == name)}/{len(questions)}", flush=True)
    return rows


def main():
    p = make_parser(__doc__)
    p.add_argument("--model", help="float base (default: models/demo-omni-Text)")
    p.add_argument("--quantized", help="its quantized copy (default: <model>-4bit)")
    p.add_argument("--adapter", help="adapter (default: adapters/demo_paper-sft)")
    p.add_argument("--questions", default=str(DEMO_QUESTIONS), help="evaluation questions (JSON lines)")
    p.add_argument("--kinds", nargs="+", default=["trained"], help="question kinds to ask")
    p.add_argument("--max-tokens", type=int, default=40)
    p.add_argument("--output", help="results folder (default results/fuse_quantized)")
    args = p.parse_args()
    out = results_folder("fuse_quantized", args.output)
    model = resolve(args.model) if args.model else demo_text_model()
    quantized = resolve(args.quantized) if args.quantized else quantized_dir(model, 4)
    adapter = resolve(args.adapter) if args.adapter else adapter_dir()
    questions = [q for q in read_jsonl(resolve(args.questions)) if q.get("kind") in args.kinds]
    work = Path(tempfile.mkdtemp(prefix=".fuse_quantized-", dir=results_dir().parent))
    try:
        rows = ask_all(build_variants(model, quantized, adapter, work), questions, args.max_tokens)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    write_csv_atomic(out / "fuse_quantized.csv", rows, ["model", "id", "question", "answer", "correct"])
    lines = [f"# Fusing into a quantized base ({display(adapter)} on {display(quantized)})", "",
             f"{len(questions)} questions ({', '.join(args.kinds)}), greedy, {args.max_tokens} tokens.", "",
             "| model | right |", "|---|---|"]
    right = {name: sum(r["correct"] for r in rows if r["model"] == name)
             for name in dict.fromkeys(r["model"] for r in rows)}
    lines += [f"| {name} | {n} / {len(questions)} |" for name, n in right.items()]
    write_text_atomic(out / "fuse_quantized.md", "\n".join(lines) + "\n")
    write_results_manifest(out, "fuse_quantized", args, metrics={"right": right, "questions": len(questions)})
    print(f"results: {display(out / 'fuse_quantized.md')}")


if __name__ == "__main__":
    run_main(main)
