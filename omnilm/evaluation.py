"""Stage 30: base vs CPT vs SFT on the same questions, scored automatically.

Each stage is loaded once; every question goes through the chat template
(reasoning skipped, greedy). Verdict = key facts found (omnilm.scoring); the
reference answer's mean negative log-likelihood given the question is a
continuous score that moves even when the words do not."""
import csv
import json
import time
from pathlib import Path

from omnilm.errors import UserError
from omnilm.scoring import score_answer

KINDS = ("domain", "paraphrase", "control")
CSV_COLUMNS = ("stage", "kind", "id", "question", "answer", "correct", "facts_missing", "answer_nll",
               "generation_tps", "generated_tokens", "peak_memory_gb")


def load_questions(path):
    path = Path(path)
    if not path.is_file():
        raise UserError(f"questions file {path} does not exist")
    questions = []
    for n, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            q = json.loads(line)
        except json.JSONDecodeError:
            raise UserError(f"{path} line {n} is not valid JSON")
        missing = [k for k in ("question", "reference", "key_facts", "kind") if k not in q]
        if missing or q["kind"] not in KINDS or not all(isinstance(f, list) and f for f in q["key_facts"]):
            raise UserError(f"{path} line {n} needs question, reference, kind ({'/'.join(KINDS)}) "
                            f"and key_facts as a list of lists of accepted variants")
        q.setdefault("id", f"q{n}")
        questions.append(q)
    if not questions:
        raise UserError(f"{path} holds no questions")
    return questions


def parse_stage(spec):
    """'name=MODEL' or 'name=MODEL+ADAPTER' -> (name, model, adapter or None)."""
    if "=" not in spec:
        raise UserError(f"stage {spec!r} must look like name=MODEL_DIR or name=MODEL_DIR+ADAPTER_DIR")
    name, rest = spec.split("=", 1)
    model, _, adapter = rest.partition("+")
    return name, model, adapter or None


def prompt_tokens(tokenizer, question):
    """(prompt text, prompt ids as inside a training example) for one question."""
    from omnilm.chat import chat_prompt, prompt_ids

    messages = [{"role": "user", "content": question}]
    return chat_prompt(tokenizer, messages), prompt_ids(tokenizer, messages)


def answer_nll(model, tokenizer, question, reference):
    """Mean negative log-likelihood per token of `reference` (and the end of turn) as
    the answer to `question`, tokenized as in a training example."""
    import mlx.core as mx
    import mlx.nn as nn

    prompt, prompt_ids = prompt_tokens(tokenizer, question)
    ids = tokenizer.encode(prompt + reference, add_special_tokens=False)
    if ids[:len(prompt_ids)] != prompt_ids:  # the answer merged into the prompt's last token
        ids = prompt_ids + tokenizer.encode(reference, add_special_tokens=False)
    ids = mx.array([ids + [tokenizer.eos_token_id]])
    logits = model(ids[:, :-1]).astype(mx.float32)
    losses = nn.losses.cross_entropy(logits, ids[:, 1:], reduction="none")[0, len(prompt_ids) - 1:]
    return float(losses.mean())


def generate_answer(model, tokenizer, question, max_tokens):
    """Greedy answer (reasoning removed) and the last stream_generate response."""
    from mlx_lm import stream_generate

    from omnilm.think import split_reasoning

    text, last = "", None
    for last in stream_generate(model, tokenizer, prompt_tokens(tokenizer, question)[1], max_tokens=max_tokens):
        text += last.text
    return split_reasoning(text)[0].strip(), last


def fuse_lora(model):
    """Fold LoRA weights into float base weights: the same function, decoded faster.
    Quantized bases keep their adapter unfused (fusing would requantize them)."""
    import mlx.nn as nn
    from mlx.utils import tree_unflatten

    fused = [(name, m.fuse()) for name, m in model.named_modules()
             if hasattr(m, "fuse") and not isinstance(getattr(m, "linear", None), nn.QuantizedLinear)]
    if fused:
        model.update_modules(tree_unflatten(fused))
    return len(fused)


def evaluate_stage(name, model_dir, adapter, questions, max_tokens=48, on_question=None):
    import mlx.core as mx

    from omnilm.chat import load_model

    model, tokenizer = load_model(model_dir, adapter)
    fuse_lora(model)
    rows = []
    for q in questions:
        mx.reset_peak_memory()
        answer, last = generate_answer(model, tokenizer, q["question"], max_tokens)
        correct, _, missing = score_answer(answer, q["key_facts"])
        rows.append({
            "stage": name, "kind": q["kind"], "id": q["id"], "question": q["question"], "answer": answer,
            "correct": int(correct), "facts_missing": "; ".join(missing),
            "answer_nll": round(answer_nll(model, tokenizer, q["question"], q["reference"]), 4),
            "generation_tps": round(last.generation_tps, 2) if last else 0.0,
            "generated_tokens": last.generation_tokens if last else 0,
            "peak_memory_gb": round(mx.get_peak_memory() / 1e9, 3),
        })
        if on_question:
            on_question()
    del model
    return rows


def summarize(rows):
    """{stage: {kind: accuracy, ..., 'nll': mean, 'tps': median}} in stage order."""
    import statistics

    out = {}
    for stage in dict.fromkeys(r["stage"] for r in rows):
        mine = [r for r in rows if r["stage"] == stage]
        s = {}
        for kind in KINDS:
            of_kind = [r["correct"] for r in mine if r["kind"] == kind]
            if of_kind:
                s[kind] = sum(of_kind) / len(of_kind)
                s[f"{kind}_n"] = len(of_kind)
        s["answer_nll"] = statistics.mean(r["answer_nll"] for r in mine)
        s["generation_tps"] = statistics.median(r["generation_tps"] for r in mine)
        s["peak_memory_gb"] = max(r["peak_memory_gb"] for r in mine)
        out[stage] = s
    return out


def write_csv(rows, path):
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=CSV_COLUMNS)
        w.writeheader()
        w.writerows(rows)


def _cell(text, width=70):
    text = " ".join(str(text).split()).replace("|", "\\|")
    return text if len(text) <= width else text[:width - 1] + "…"


def _verdict(r):
    if r["correct"]:
        return "✅ correct"
    return "❌ wrong" + (f" (missing: {r['facts_missing']})" if r.get("facts_missing") else "")


def write_markdown(rows, summary, path):
    """The seed's table made automatic: per question and stage, the start of the answer
    and its verdict; then accuracy per stage and question kind."""
    stages = list(summary)
    lines = ["# Evaluation: base vs CPT vs SFT", "",
             "Verdict: correct when the answer holds every key fact (an accepted variant, not negated), "
             "scored automatically. NLL: the reference answer's mean negative log-likelihood per token given "
             "the question (lower is better). Greedy decoding through the chat template, reasoning skipped.", "",
             "## Answers", "", "| kind | question | " + " | ".join(stages) + " |", "|---" * (len(stages) + 2) + "|"]
    by_q = {}
    for r in rows:
        by_q.setdefault((r["kind"], r["question"]), {})[r["stage"]] = r
    for (kind, question), per_stage in by_q.items():
        cells = []
        for st in stages:
            r = per_stage.get(st)
            cells.append("" if r is None else f"{_cell(r['answer'], 60)} **{_verdict(r)}** "
                                              f"(NLL {r['answer_nll']:.2f}, {r['generation_tps']:.0f} tok/s)")
        lines.append(f"| {kind} | {_cell(question, 50)} | " + " | ".join(cells) + " |")
    lines += ["", "## Accuracy per stage and kind", ""] + summary_table(summary)
    Path(path).write_text("\n".join(lines) + "\n")


def summary_table(summary):
    """Accuracy per stage and kind as Markdown lines (eval.md and the pipeline report)."""
    lines = ["| stage | " + " | ".join(f"{k} accuracy" for k in KINDS) + " | mean answer NLL | gen tok/s | peak GB |",
             "|---" * (len(KINDS) + 4) + "|"]
    for st, s in summary.items():
        accs = [f"{s[k]:.2f} ({round(s[k] * s[k + '_n'])}/{s[k + '_n']})" if k in s else "-" for k in KINDS]
        lines.append(f"| {st} | " + " | ".join(accs) + f" | {s['answer_nll']:.3f} | {s['generation_tps']:.1f} | "
                     f"{s['peak_memory_gb']:.2f} |")
    return lines


def write_chart(summary, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    stages = list(summary)
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4))
    width = 0.8 / len(KINDS)
    for i, kind in enumerate(KINDS):
        vals = [summary[s].get(kind, 0) for s in stages]
        ax1.bar([x + i * width for x in range(len(stages))], vals, width, label=kind)
    ax1.set_xticks([x + width for x in range(len(stages))], stages)
    ax1.set_ylim(0, 1.05)
    ax1.set_ylabel("accuracy")
    ax1.set_title("Accuracy by question kind")
    ax1.legend()
    ax2.bar(stages, [summary[s]["answer_nll"] for s in stages], color="gray")
    ax2.set_ylabel("mean NLL of the reference answer")
    ax2.set_title("Reference-answer NLL (lower is better)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def run_comparison(stages, questions, output_dir, max_tokens=48, on_question=None):
    rows = []
    started = time.perf_counter()
    for name, model_dir, adapter in stages:
        rows += evaluate_stage(name, model_dir, adapter, questions, max_tokens, on_question)
    summary = summarize(rows)
    output_dir = Path(output_dir)
    write_csv(rows, output_dir / "eval.csv")
    write_markdown(rows, summary, output_dir / "eval.md")
    write_chart(summary, output_dir / "eval.png")
    return rows, summary, time.perf_counter() - started
