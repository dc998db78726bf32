"""Stage 30: base vs CPT vs SFT on the same questions, scored automatically.

Each stage is loaded once; all its questions go through the chat template
(reasoning skipped, greedy) in one batched generation. Verdict = key facts found
(omnilm.scoring); the reference answer's mean negative log-likelihood given the
question is a continuous score that moves even when the words do not.

Question kinds: `trained` (the golden questions, trained verbatim), `heldout_fact`
(facts of the paper no training row asks about), `paraphrase` (trained facts
reworded) and `control` (general knowledge, to see forgetting). The `open_book`
run asks the first stage's model, without adapter, each question that carries
its source `passage` with the passage in the prompt: the upper bound, telling a
missing fact from a model too small to answer."""
import json
import time
from pathlib import Path

from omnilm.atomic import write_csv_atomic
from omnilm.errors import UserError
from omnilm.paths import display, resolve, results_dir
from omnilm.scoring import score_answer

KINDS = ("trained", "heldout_fact", "paraphrase", "control")
OPEN_BOOK = "open_book"
OPEN_BOOK_PROMPT = "Read this passage and answer the question.\n\nPassage: {passage}\n\nQuestion: {question}"
OPEN_BOOK_NOTE = (f"{OPEN_BOOK} is the upper bound, not a trained stage: the first stage's model (no adapter) "
                  "with each question's source passage in the prompt (NLL given it too), on the questions that "
                  "carry one. A miss there is a model too small to answer, not missing knowledge.")
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
        if not missing and q["kind"] == "domain":  # the old name of `trained`: older files keep working
            q["kind"] = "trained"
        if missing or q["kind"] not in KINDS or not all(isinstance(f, list) and f for f in q["key_facts"]):
            raise UserError(f"{path} line {n} needs question, reference, kind ({'/'.join(KINDS)}) "
                            f"and key_facts as a list of lists of accepted variants")
        if "passage" in q and not (isinstance(q["passage"], str) and q["passage"].strip()):
            raise UserError(f"{path} line {n}: passage must be the source text of the fact")
        q.setdefault("id", f"q{n}")
        questions.append(q)
    if not questions:
        raise UserError(f"{path} holds no questions")
    return questions


def first_of_each_kind(questions, n):
    """The first n questions of each kind, in their order (n = 0: all of them): a
    quick look that still asks every kind."""
    if n < 0:
        raise UserError(f"--per-kind {n} must be 0 (every question) or more")
    if not n:
        return questions
    counts, kept = {}, []
    for q in questions:
        counts[q["kind"]] = counts.get(q["kind"], 0) + 1
        if counts[q["kind"]] <= n:
            kept.append(q)
    return kept


def parse_stage(spec):
    """'name=MODEL' or 'name=MODEL+ADAPTER' -> (name, model, adapter or None)."""
    if "=" not in spec:
        raise UserError(f"stage {spec!r} must look like name=MODEL_DIR or name=MODEL_DIR+ADAPTER_DIR")
    name, rest = spec.split("=", 1)
    model, _, adapter = rest.partition("+")
    return name, model, adapter or None


def default_stages():
    """The demo's base, cpt and sft stages as (name, model, adapter)."""
    from omnilm.paths import adapter_dir, demo_text_model

    base = demo_text_model()
    return [("base", base, None), ("cpt", base, adapter_dir(kind="cpt")), ("sft", base, adapter_dir(kind="sft"))]


def plan_runs(stages, questions, open_book=True):
    """[(name, model, adapter, questions, open_book)]: every stage on every question,
    then (open_book) the first stage's model without adapter on the questions that
    carry a passage."""
    runs = [(name, model, adapter, questions, False) for name, model, adapter in stages]
    with_passage = [q for q in questions if q.get("passage")]
    if open_book and with_passage:
        runs.append((OPEN_BOOK, stages[0][1], None, with_passage, True))
    return runs


def asked(q, open_book=False):
    """The user message for question `q`, with its passage in front when open book."""
    return OPEN_BOOK_PROMPT.format(passage=q["passage"], question=q["question"]) if open_book else q["question"]


def prompt_tokens(tokenizer, question):
    """(prompt text, prompt ids as inside a training example) for one question."""
    from omnilm.chat import chat_prompt, prompt_ids

    messages = [{"role": "user", "content": question}]
    return chat_prompt(tokenizer, messages), prompt_ids(tokenizer, messages)


NLL_BATCH_TOKENS = 1024  # tokens per batched forward: logits stay at tokens x vocabulary floats


def answer_ids(tokenizer, question, reference):
    """(ids, prompt length): `reference` and the end of turn as the answer to
    `question`, tokenized as in a training example."""
    prompt, prompt_ids = prompt_tokens(tokenizer, question)
    ids = tokenizer.encode(prompt + reference, add_special_tokens=False)
    if ids[:len(prompt_ids)] != prompt_ids:  # the answer merged into the prompt's last token
        ids = prompt_ids + tokenizer.encode(reference, add_special_tokens=False)
    return ids + [tokenizer.eos_token_id], len(prompt_ids)


def nll_batches(seqs, pad_id, batch_tokens=NLL_BATCH_TOKENS):
    """(row indices, right-padded batch) for sequences [(ids, prompt length)]: rows of
    similar length together, shortest first, up to `batch_tokens` tokens a batch."""
    import mlx.core as mx

    order = sorted(range(len(seqs)), key=lambda i: len(seqs[i][0]))
    start = 0
    while start < len(order):
        width, end = len(seqs[order[start]][0]), start + 1
        while end < len(order) and (end - start + 1) * len(seqs[order[end]][0]) <= batch_tokens:
            width, end = len(seqs[order[end]][0]), end + 1
        rows = order[start:end]
        yield rows, mx.array([seqs[i][0] + [pad_id] * (width - len(seqs[i][0])) for i in rows])
        start = end


def answer_nlls(model, tokenizer, pairs, batch_tokens=NLL_BATCH_TOKENS):
    """Mean negative log-likelihood per token of each reference (and the end of turn)
    as the answer to its question, for [(question, reference)]. Sequences of similar
    length share one forward (right-padded: a causal model's positions never see the
    padding after them); one at a time, this took longer than generating the answers.
    The head and the log-sum-exp run at the answer's positions only (as in training,
    omnilm.training.loss): an open-book prompt is mostly passage."""
    import mlx.core as mx
    import numpy as np

    from omnilm.training.loss import head_split, logits_at, token_nll

    split = head_split(model)
    seqs = [answer_ids(tokenizer, q, r) for q, r in pairs]
    out = [None] * len(seqs)
    for rows, batch in nll_batches(seqs, tokenizer.eos_token_id, batch_tokens):
        width = batch.shape[1] - 1
        spans = [range(row * width + seqs[i][1] - 1, row * width + len(seqs[i][0]) - 1)
                 for row, i in enumerate(rows)]  # the answer's targets, flat in [rows, width]
        at = mx.array([p for span in spans for p in span])
        logits = logits_at(model, split, batch[:, :-1], at).astype(mx.float32)
        targets = batch[:, 1:].reshape(-1)[at]
        nll = np.array(token_nll(logits, targets)[0])
        done = 0
        for span, i in zip(spans, rows):
            out[i] = float(nll[done:done + len(span)].mean())
            done += len(span)
    return out


def answer_nll(model, tokenizer, question, reference):
    """answer_nlls of one question."""
    return answer_nlls(model, tokenizer, [(question, reference)])[0]


def generate_answer(model, tokenizer, question, max_tokens):
    """Greedy answer (reasoning removed) and the last stream_generate response: one
    question at a time, the reference the batched path is checked against."""
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


def generate_answers(model, tokenizer, messages, max_tokens, bar=None):
    """Greedy answers (reasoning removed) to every user message, batched; and the run.
    On the demo they equal generate_answer's one by one (tests, benchmarks/eval_generation_bench.py)."""
    from omnilm.qa_generation import generate_batched
    from omnilm.think import split_reasoning

    run = generate_batched(model, tokenizer, [prompt_tokens(tokenizer, m)[1] for m in messages], max_tokens, bar=bar)
    return [split_reasoning(t)[0].strip() for t in run.texts], run


def evaluate_stage(name, model_dir, adapter, questions, max_tokens=48, bar=None, open_book=False):
    import mlx.core as mx

    from omnilm.chat import load_model

    model, tokenizer = load_model(model_dir, adapter)
    fuse_lora(model)
    mx.reset_peak_memory()  # the peak is process-wide: this stage's own
    messages = [asked(q, open_book) for q in questions]
    answers, run = generate_answers(model, tokenizer, messages, max_tokens, bar)
    nlls = answer_nlls(model, tokenizer, [(message, q["reference"]) for q, message in zip(questions, messages)])
    rows = []
    for q, answer, text, nll in zip(questions, answers, run.texts, nlls):
        correct, _, missing = score_answer(answer, q["key_facts"])
        rows.append({
            "stage": name, "kind": q["kind"], "id": q["id"], "question": q["question"], "answer": answer,
            "correct": int(correct), "facts_missing": "; ".join(missing),
            "answer_nll": round(nll, 4),
            # speed is the batch's: all its generated tokens / its wall seconds, prefill included
            "generation_tps": round(run.tokens_per_second, 2),
            "generated_tokens": len(tokenizer.encode(text, add_special_tokens=False)),  # end of turn not counted
            "peak_memory_gb": run.stats["peak_memory_gb"],
        })
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
    lines = ["| stage | " + " | ".join(f"{k} accuracy" for k in KINDS) + " | mean answer NLL | batch tok/s | peak GB |",
             "|---" * (len(KINDS) + 4) + "|"]
    for st, s in summary.items():
        accs = [f"{s[k]:.2f} ({round(s[k] * s[k + '_n'])}/{s[k + '_n']})" if k in s else "-" for k in KINDS]
        lines.append(f"| {st} | " + " | ".join(accs) + f" | {s['answer_nll']:.3f} | {s['generation_tps']:.1f} | "
                     f"{s['peak_memory_gb']:.2f} |")
    return lines + (["", OPEN_BOOK_NOTE] if OPEN_BOOK in summary else [])


def write_chart(summary, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    stages = list(summary)
    labels = [f"{s}\n(upper bound)" if s == OPEN_BOOK else s for s in stages]
    kinds = [k for k in KINDS if any(k in s for s in summary.values())]  # a kind nobody was asked: no bars
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4))
    width = 0.8 / len(kinds)
    for i, kind in enumerate(kinds):
        xs = [x for x, s in enumerate(stages) if kind in summary[s]]
        ax1.bar([x + i * width for x in xs], [summary[stages[x]][kind] for x in xs], width, label=kind)
    ax1.set_xticks([x + 0.4 - width / 2 for x in range(len(stages))], labels)
    ax1.set_ylim(0, 1.05)
    ax1.set_ylabel("accuracy")
    ax1.set_title("Accuracy by question kind")
    ax1.legend()
    ax2.bar(labels, [summary[s]["answer_nll"] for s in stages], color="gray")
    ax2.set_ylabel("mean NLL of the reference answer")
    ax2.set_title("Reference-answer NLL (lower is better)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def run_comparison(runs, output_dir, max_tokens=48, bar=None):
    """Every run of plan_runs evaluated, then eval.csv, eval.md and eval.png written."""
    rows = []
    started = time.perf_counter()
    for name, model_dir, adapter, questions, open_book in runs:
        rows += evaluate_stage(name, model_dir, adapter, questions, max_tokens, bar, open_book)
    summary = summarize(rows)
    output_dir = Path(output_dir)
    write_csv_atomic(output_dir / "eval.csv", rows, CSV_COLUMNS)
    write_markdown(rows, summary, output_dir / "eval.md")
    write_chart(summary, output_dir / "eval.png")
    return rows, summary, time.perf_counter() - started


# ---------------------------------------------------------------- the stage

def check_stage(name, model, adapter):
    if not (model / "config.json").exists():
        raise UserError(f"stage {name}: model {display(model)} does not exist")
    if adapter is not None and not (adapter / "adapters.safetensors").exists():
        raise UserError(f"stage {name}: adapter {display(adapter)} does not exist (train it first)")


def compare_stages(args):
    """Stage 30 for resolved options (questions, stages, max_tokens, output, open_book):
    every stage checked before any model loads; results replace their namesakes in the
    output folder only once all are written. Returns the summary."""
    import os

    from omnilm.atomic import staged_files
    from omnilm.manifest import fingerprint, write_manifest
    from omnilm.progress import bar

    files = [resolve(f) for f in ([args.questions] if isinstance(args.questions, str) else args.questions)]
    questions = first_of_each_kind([q for f in files for q in load_questions(f)], args.per_kind)
    if args.stages:
        stages = [(n, resolve(m), resolve(a) if a else None) for n, m, a in map(parse_stage, args.stages)]
    else:
        stages = default_stages()
    for stage in stages:
        check_stage(*stage)
    if OPEN_BOOK in (name for name, _, _ in stages):
        raise UserError(f"stage name {OPEN_BOOK} is kept for the open-book upper bound: choose another")
    runs = plan_runs(stages, questions, args.open_book)
    out = resolve(args.output) if args.output else results_dir()
    with staged_files(out) as tmp:
        with bar(total=sum(len(r[3]) for r in runs), desc="evaluating", unit="q") as progress:
            rows, summary, seconds = run_comparison(runs, tmp, args.max_tokens, progress)
        inputs = {f"questions:{f.name}": fingerprint(f) for f in files}
        for name, model, adapter, _, _ in runs:
            inputs[name] = {"model": fingerprint(model / "config.json"),
                            "adapter": fingerprint(adapter / "adapters.safetensors") if adapter else None}
        write_manifest(tmp, "evaluate", args, inputs=inputs, metrics={"summary": summary, "seconds": round(seconds, 1)},
                       stages={n: {"model": display(m), "adapter": display(a) if a else None}
                               for n, m, a, _, _ in runs})
        os.replace(tmp / "manifest.json", tmp / "eval.json")
    print(f"\nevaluation ({len(questions)} questions x {len(stages)} stages"
          f"{' + open book' if len(runs) > len(stages) else ''}, {seconds:.0f}s) -> "
          f"{display(out / 'eval.md')}, eval.csv, eval.png")
    print(f"{'stage':10}" + "".join(f"{k:>14}" for k in KINDS) + f"{'answer NLL':>12}{'tok/s':>8}")
    for name, s in summary.items():
        print(f"{name:10}" + "".join(f"{s[k]:14.2f}" if k in s else f"{'-':>14}" for k in KINDS)
              + f"{s['answer_nll']:12.3f}{s['generation_tps']:8.1f}")
    if OPEN_BOOK in summary:
        print(OPEN_BOOK_NOTE)
    return summary
