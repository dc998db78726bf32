"""Stage 30: base vs CPT vs SFT on the same questions, scored automatically.

Each stage is loaded once; all its questions go through the chat template
(reasoning skipped, greedy) in one batched generation. Verdict = key facts found
(omnilm.scoring); the reference answer's mean negative log-likelihood given the
question is a continuous score that moves even when the words do not.

Question kinds: `trained` (the golden questions, trained verbatim), `heldout_fact`
(hand-written, on facts of the paper no training row asks about), `paraphrase`
(hand-written, trained facts reworded), `reader` (a reader's hand-written questions
on any fact of the paper), `independent` (made from the fact inventory in question
forms no training row has, omnilm.probes), `cloze` (a wording of a fact cut before
its answer, completed as plain text without the chat template) and `control` (broad
general knowledge, to see forgetting; its answers also give the bleed, omnilm.verdict).
Only the hand-written kinds get the reference answer's NLL: the generated ones are
many, and their verdict is what counts. The `open_book`
run asks the first stage's model, without adapter, each untrained question that
carries its source `passage` with the passage in the prompt: the upper bound, telling
a missing fact from a model too small to answer."""
import re
import time
from pathlib import Path

from omnilm.atomic import write_csv_atomic
from omnilm.errors import UserError
from omnilm.jsonl import json_lines
from omnilm.paths import display, resolve, results_dir
from omnilm.scoring import score_answer
from omnilm.verdict import (KINDS, OPEN_BOOK, OPEN_BOOK_NOTE, bleed_terms, knowledge, recommend,  # noqa: F401
                            summary_table, verdict_lines, write_chart, write_markdown)

NLL_KINDS = ("trained", "heldout_fact", "paraphrase", "reader")
CONTROL_TOKENS = 32  # a general answer is judged by its first sentence (bleed included): cheaper, same verdict
CLOZE_TOKENS = 16
# Rows generated at once, and prompts prefilled at a time: wider is faster on the CPU for the
# same greedy texts (docs/experiments/2026-12-07-verdict.md); a small-memory machine sets it lower.
BATCH_SIZE = 64
PREFILL_SHARE = 2  # a prefill of batch_size // 2 prompts: fewer pauses of a half-empty batch
OPEN_BOOK_PROMPT = "Read this passage and answer the question.\n\nPassage: {passage}\n\nQuestion: {question}"

CSV_COLUMNS = ("stage", "kind", "id", "question", "answer", "correct", "facts_missing", "answer_nll",
               "generation_tps", "generated_tokens", "peak_memory_gb", "probe", "fact_split", "bleed_terms")


def load_questions(path):
    path = Path(path)
    if not path.is_file():
        raise UserError(f"questions file {path} does not exist")
    questions = []
    for n, q in json_lines(path, lambda n, _: f"{path} line {n} is not valid JSON"):
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
    """'name=MODEL' or 'name=MODEL+ADAPTER' -> (name, model, adapter or None). A path may
    hold a '+' (a project folder 'run+1'): an existing folder is the model whole, else
    the split is at the last '+' whose left side exists (--adapter name=DIR avoids the
    question); with none, at the last '+' (check_stage then names what is missing)."""
    if "=" not in spec:
        raise UserError(f"stage {spec!r} must look like name=MODEL_DIR or name=MODEL_DIR+ADAPTER_DIR")
    name, rest = spec.split("=", 1)
    if "+" not in rest or resolve(rest).is_dir():
        return name, rest, None
    cuts = [i for i, ch in enumerate(rest) if ch == "+"]
    cut = next((i for i in reversed(cuts) if resolve(rest[:i]).is_dir()), cuts[-1])
    return name, rest[:cut], rest[cut + 1:] or None


def parse_stages(specs, adapters=()):
    """[(name, model, adapter)] resolved, from --stages and --adapter name=DIR (which
    gives a stage its adapter without the '+' form: then every spec is name=MODEL)."""
    given = {}
    for item in adapters or ():
        name, sep, folder = str(item).partition("=")
        if not sep or not folder:
            raise UserError(f"--adapter {item!r} must look like name=ADAPTER_DIR")
        given[name] = folder
    stages = []
    for spec in specs:
        if given:  # with --adapter, --stages names models only: a '+' is part of a path
            if "=" not in spec:
                raise UserError(f"stage {spec!r} must look like name=MODEL_DIR (its adapter: --adapter name=DIR)")
            name, model = spec.split("=", 1)
            adapter = given.get(name)
        else:
            name, model, adapter = parse_stage(spec)
        stages.append((name, resolve(model), resolve(adapter) if adapter else None))
    unknown = sorted(set(given) - {name for name, _, _ in stages})
    if unknown:
        raise UserError(f"--adapter {unknown[0]}=...: no stage named {unknown[0]} in --stages")
    return stages


def default_stages():
    """The demo's base, cpt and sft stages as (name, model, adapter)."""
    from omnilm.paths import adapter_dir, demo_text_model

    base = demo_text_model()
    return [("base", base, None), ("cpt", base, adapter_dir(kind="cpt")), ("sft", base, adapter_dir(kind="sft"))]


def plan_runs(stages, questions, open_book=True):
    """[(name, model, adapter, questions, open_book)]: every stage on every question,
    then (open_book) the first stage's model without adapter on the questions that
    carry a passage, trained ones aside: the bound tells a missing fact from a model
    too small to answer, which only matters where no training row asked."""
    runs = [(name, model, adapter, questions, False) for name, model, adapter in stages]
    with_passage = [q for q in questions if q.get("passage") and q["kind"] != "trained"]
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


def first_sentence_done(text):
    """True once the answer's first sentence has ended and the next has begun."""
    from omnilm.think import split_reasoning

    return bool(re.search(r"[.!?]\s+\S", split_reasoning(text)[0].strip()))


def cloze_done(text):
    """A completion has said enough at its first line break or after a dozen words."""
    return "\n" in text.lstrip() or len(text.split()) > 12


def generate_answers(model, tokenizer, messages, max_tokens, bar=None, enough=None, chat=True, batch_size=BATCH_SIZE):
    """Greedy answers (reasoning removed) to every user message, batched; and the run.
    On the demo they equal generate_answer's one by one (tests; docs/experiments/2026-12-01-evaluation-batching.md).
    chat=False completes a message as plain text (a cloze probe), no template; `max_tokens`,
    `enough` and `chat` may each be one value or a list with one per message."""
    from omnilm.qa_generation import generate_batched
    from omnilm.think import split_reasoning

    chats = list(chat) if isinstance(chat, (list, tuple)) else [chat] * len(messages)
    prompts = [prompt_tokens(tokenizer, m)[1] if c else m for m, c in zip(messages, chats)]
    run = generate_batched(model, tokenizer, prompts, max_tokens, batch_size=batch_size, bar=bar, enough=enough,
                           prefill_size=max(1, batch_size // PREFILL_SHARE))
    texts = [split_reasoning(t)[0].strip() if c else t.strip() for t, c in zip(run.texts, chats)]
    return texts, run


def answer_plan(question, max_tokens):
    """(max tokens, enough, chat): how a question of its kind is answered."""
    if question["kind"] == "control":
        return min(max_tokens, CONTROL_TOKENS), first_sentence_done, True
    if question["kind"] == "cloze":
        return CLOZE_TOKENS, cloze_done, False
    return max_tokens, None, True


def model_loads(runs):
    """plan_runs' runs grouped by the model and adapter they load, in order of first use:
    [(model, adapter, [(run index, stage name, question, open_book)])]. The open book
    rides on the base's load, so each model is loaded once and generates once."""
    loads = {}
    for index, (name, model_dir, adapter, questions, open_book) in enumerate(runs):
        items = loads.setdefault((model_dir, adapter), [])
        items += [(index, name, q, open_book) for q in questions]
    return [(model_dir, adapter, items) for (model_dir, adapter), items in loads.items()]


def evaluate_load(model_dir, adapter, items, max_tokens=48, bar=None, batch_size=BATCH_SIZE):
    """Rows for every (run index, stage name, question, open_book) item on one model:
    all answers in one batched generation, then the hand-written kinds' reference NLL."""
    import mlx.core as mx

    from omnilm.chat import load_model

    model, tokenizer = load_model(model_dir, adapter)
    fuse_lora(model)
    mx.reset_peak_memory()  # the peak is process-wide: this load's own
    messages = [asked(q, open_book) for _, _, q, open_book in items]
    limits, checks, chats = zip(*(answer_plan(q, max_tokens) for _, _, q, _ in items))
    answers, run = generate_answers(model, tokenizer, messages, list(limits), bar, list(checks), list(chats),
                                    batch_size)
    with_nll = [i for i, (_, _, q, _) in enumerate(items) if q["kind"] in NLL_KINDS]
    nlls = dict(zip(with_nll, answer_nlls(model, tokenizer, [(messages[i], items[i][2]["reference"])
                                                             for i in with_nll])))
    rows = []
    for i, ((_, name, q, _), answer, text) in enumerate(zip(items, answers, run.texts)):
        correct, _, missing = score_answer(answer, q["key_facts"])
        rows.append({
            "stage": name, "kind": q["kind"], "id": q["id"], "question": q["question"], "answer": answer,
            "correct": int(correct), "facts_missing": "; ".join(missing),
            "answer_nll": round(nlls[i], 4) if i in nlls else None,
            # speed is the load's: all its generated tokens / its wall seconds, prefill included
            "generation_tps": round(run.tokens_per_second, 2),
            "generated_tokens": len(tokenizer.encode(text, add_special_tokens=False)),  # end of turn not counted
            "peak_memory_gb": run.stats["peak_memory_gb"], "probe": q.get("probe", ""),
            "fact_split": q.get("fact_split", ""),
        })
    del model
    return rows


def add_bleed(rows, terms):
    """Each control answer's bleed_terms (the paper's terms it uses that the first
    stage's answer to the same question does not): '' when none, None without terms."""
    control = [r for r in rows if r["kind"] == "control" and r["stage"] != OPEN_BOOK]
    if not control:
        return rows
    reference = control[0]["stage"]
    ref_answers = {r["id"]: r["answer"] for r in control if r["stage"] == reference}
    for r in control:
        if terms is None or r["id"] not in ref_answers:
            r["bleed_terms"] = None
        else:
            r["bleed_terms"] = "; ".join(sorted(bleed_terms(r["answer"], ref_answers[r["id"]], r["question"], terms)))
    return rows


def summarize(rows):
    """{stage: {kind: accuracy, kind_n, kind_k (correct), ..., 'bleed' (share of control
    answers with paper terms), 'answer_nll': mean, 'generation_tps': median}} in stage order."""
    import statistics

    out = {}
    for stage in dict.fromkeys(r["stage"] for r in rows):
        mine = [r for r in rows if r["stage"] == stage]
        s = {}
        for kind in KINDS:
            of_kind = [r["correct"] for r in mine if r["kind"] == kind]
            if of_kind:
                s[kind] = sum(of_kind) / len(of_kind)
                s[f"{kind}_n"], s[f"{kind}_k"] = len(of_kind), sum(of_kind)
        bled = [bool(r["bleed_terms"]) for r in mine if r["kind"] == "control" and r.get("bleed_terms") is not None]
        if bled:
            s["bleed"], s["bleed_k"], s["bleed_n"] = sum(bled) / len(bled), sum(bled), len(bled)
        nlls = [r["answer_nll"] for r in mine if r["answer_nll"] is not None]
        s["answer_nll"] = statistics.mean(nlls) if nlls else None
        s["generation_tps"] = statistics.median(r["generation_tps"] for r in mine)
        s["peak_memory_gb"] = max(r["peak_memory_gb"] for r in mine)
        out[stage] = s
    return out


def run_comparison(runs, output_dir, max_tokens=48, bar=None, terms=None, batch_size=BATCH_SIZE):
    """Every run of plan_runs evaluated, the bleed against the paper's `terms` and the
    recommendation; then eval.csv, eval.md and eval.png written."""
    rows = []  # (run index, position, row)
    started = time.perf_counter()
    for model_dir, adapter, items in model_loads(runs):
        got = evaluate_load(model_dir, adapter, items, max_tokens, bar, batch_size)
        rows += zip((index for index, _, _, _ in items), range(len(got)), got)
    rows = [row for _, _, row in sorted(rows, key=lambda r: r[:2])]  # plan order: stage by stage, open book last
    summary = summarize(add_bleed(rows, terms))
    pick, notes = recommend(summary, skip=(OPEN_BOOK,))
    where = {name: (model_dir, adapter) for name, model_dir, adapter, _, _ in runs}
    recommendation = {"stage": pick, "model": display(where[pick][0]) if pick else None,
                      "adapter": display(where[pick][1]) if pick and where[pick][1] else None, "notes": notes}
    output_dir = Path(output_dir)
    write_csv_atomic(output_dir / "eval.csv", rows, CSV_COLUMNS)
    write_markdown(rows, summary, recommendation, output_dir / "eval.md")
    write_chart(summary, output_dir / "eval.png")
    return rows, summary, recommendation, time.perf_counter() - started


# ---------------------------------------------------------------- the stage

def check_stage(name, model, adapter):
    """A stage's model and adapter, checked as the app checks them (files, config, rank and
    shapes against the base), so a bad one is refused before any stage is evaluated."""
    from omnilm.catalog import require_fitting_adapter

    if not (model / "config.json").exists():
        raise UserError(f"stage {name}: model {display(model)} does not exist")
    if adapter is not None and not (adapter / "adapters.safetensors").exists():
        raise UserError(f"stage {name}: adapter {display(adapter)} does not exist (train it first)")
    if adapter is not None:
        require_fitting_adapter(adapter, model, f"stage {name}: adapter")


def independent_only(questions, training_data):
    """The questions less the independent ones whose form a training row has (each
    folder's train.jsonl and valid.jsonl are read), and those dropped."""
    from omnilm.jsonl import read_jsonl
    from omnilm.probes import check_independent, trained_forms, trained_questions

    rows = []
    for folder in training_data:
        for name in ("train.jsonl", "valid.jsonl"):
            if (folder / name).is_file():
                rows += read_jsonl(folder / name, "training data")
    return check_independent(questions, trained_forms(trained_questions(rows)))


def paper_vocabulary(facts_file):
    """The paper's terms (omnilm.verdict.paper_terms) from a facts.jsonl, None without one."""
    from omnilm.jsonl import read_jsonl
    from omnilm.verdict import paper_terms

    return paper_terms(read_jsonl(facts_file, "facts file")) if facts_file and facts_file.is_file() else None


def compare_stages(args):
    """Stage 30 for resolved options (questions, stages, max_tokens, output, open_book,
    facts, training_data): every stage checked before any model loads; results replace
    their namesakes in the output folder only once all are written. Returns the summary."""
    from omnilm.atomic import rename_within, staged_files
    from omnilm.manifest import fingerprint, write_manifest
    from omnilm.progress import bar

    if args.stages:
        stages = parse_stages(args.stages, getattr(args, "adapter", None))
    else:
        stages = default_stages()
    for stage in stages:
        check_stage(*stage)
    if OPEN_BOOK in (name for name, _, _ in stages):
        raise UserError(f"stage name {OPEN_BOOK} is kept for the open-book upper bound: choose another")
    files = [resolve(f) for f in ([args.questions] if isinstance(args.questions, str) else args.questions)]
    questions = first_of_each_kind([q for f in files for q in load_questions(f)], args.per_kind)
    training = [resolve(d) for d in (getattr(args, "training_data", None) or [])]
    for folder in training:
        if not folder.is_dir():
            raise UserError(f"--training-data {display(folder)} is not a folder")
    questions, dropped = independent_only(questions, training)
    facts_file = resolve(args.facts) if getattr(args, "facts", None) else None
    if facts_file is not None and not facts_file.is_file():
        raise UserError(f"--facts {display(facts_file)} does not exist")
    terms = paper_vocabulary(facts_file)  # read before any model loads: a bad file fails at once
    runs = plan_runs(stages, questions, args.open_book)
    out = resolve(args.output) if args.output else results_dir()
    if dropped:
        print(f"{len(dropped)} independent question(s) dropped: a training row has their form "
              f"({', '.join(sorted({d['form'] for d in dropped}))})")
    with staged_files(out) as tmp:
        with bar(total=sum(len(r[3]) for r in runs), desc="evaluating", unit="q") as progress:
            rows, summary, recommendation, seconds = run_comparison(runs, tmp, args.max_tokens, progress, terms,
                                                                    getattr(args, "batch_size", BATCH_SIZE))
        inputs = {f"questions:{f.name}": fingerprint(f) for f in files}
        if facts_file is not None:
            inputs["facts"] = fingerprint(facts_file)
        for name, model, adapter, _, _ in runs:
            inputs[name] = {"model": fingerprint(model / "config.json"),
                            "adapter": fingerprint(adapter / "adapters.safetensors") if adapter else None}
        write_manifest(tmp, "evaluate", args, inputs=inputs,
                       metrics={"summary": summary, "recommended": recommendation, "seconds": round(seconds, 1),
                                "independent_dropped": len(dropped)},
                       stages={n: {"model": display(m), "adapter": display(a) if a else None}
                               for n, m, a, _, _ in runs})
        rename_within(tmp, "manifest.json", "eval.json")
    print(f"\nevaluation ({len(questions)} questions x {len(stages)} stages"
          f"{' + open book' if len(runs) > len(stages) else ''}, {seconds:.0f}s) -> "
          f"{display(out / 'eval.md')}, eval.csv, eval.png")
    kinds = [k for k in KINDS if any(f"{k}_n" in s for s in summary.values())]
    print(f"{'stage':10}{'knowledge':>11}" + "".join(f"{k:>13}" for k in kinds) + f"{'bleed':>8}")
    for name, s in summary.items():
        pooled = knowledge(s)
        print(f"{name:10}" + (f"{pooled[0] / pooled[1]:11.2f}" if pooled[1] else f"{'-':>11}")
              + "".join(f"{s[k]:13.2f}" if k in s else f"{'-':>13}" for k in kinds)
              + (f"{s['bleed']:8.0%}" if "bleed" in s else f"{'-':>8}"))
    print("\n".join(verdict_lines(recommendation)).replace("**", ""))
    if OPEN_BOOK in summary:
        print(OPEN_BOOK_NOTE)
    return summary
