"""Stage 10's data: PDF -> clean text -> chunks in the model's tokens, the fact
inventory and its restatements, replay answers -> train/valid for mlx-lm (see
10_stage1_cpt/prepare_data.py for the options and what each output holds)."""
import hashlib
import json
import os
import sys
from collections import Counter

from omnilm.atomic import check_output, staged_dir, write_text_atomic
from omnilm.chunking import make_chunks, split_train_valid
from omnilm.errors import UserError
from omnilm.fact_training import (REPHRASE_PROMPTS, cpt_items, fact_inventory, heldout_questions, model_rephrasings,
                                  pack_apart, parameter_count, written_rephrasings)
from omnilm.facts import FACTS_FILE, HELDOUT_QUESTIONS_FILE
from omnilm.probes import CLOZE_FILE, INDEPENDENT_FILE, cloze_probes, independent_questions
from omnilm.jsonl import read_jsonl, write_jsonl
from omnilm.manifest import fingerprint, write_manifest
from omnilm.paths import (cpt_data_dir, display, models_dir, optional_file, paper_stem, replay_cache_dir,
                          resolve)
from omnilm.pdf_text import clean_pages, extract_pages, list_pdfs
from omnilm.progress import bar
from omnilm.replay import (MAX_WORDS, REPLAY_FILE, generate_replay, load_replay_questions, pack_texts, replay_texts,
                           select_answers, share_count)
from omnilm.sft_data import load_golden

SMALLEST_CHUNK = 128


def load_tokenizer(model):
    if not (model / "tokenizer.json").exists() and not (model / "tokenizer_config.json").exists():
        raise UserError(f"--model {display(model)} has no tokenizer files (tokenizer.json); "
                        f"give the text model folder written by stage 00")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")  # no "PyTorch was not found" noise: tokenizer only
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(str(model), trust_remote_code=False)
    except (OSError, ValueError) as e:
        raise UserError(f"cannot load the tokenizer of {display(model)}: {str(e).splitlines()[0]}")


def read_document(path, extractor, keep_references, quiet=False):
    """One PDF -> CleanDocument, refusing encrypted, damaged and scanned documents;
    reports pages without text. quiet: no bar and no warning (the pipeline's first
    check, which runs this same test before stage 00)."""
    if quiet:
        raw, used = extract_pages(path, extractor)
    else:
        with bar(desc=f"reading {path.name}", unit="page") as progress:
            raw, used = extract_pages(path, extractor, progress=progress.update)
    doc = clean_pages(raw, keep_references=keep_references)
    no_text = [p for p, why in doc.dropped_pages.items() if why.startswith("no text layer")]
    if len(no_text) == doc.pages:
        raise UserError(f"{display(path)} has no text layer on any of its {doc.pages} pages (a scanned document?); "
                        f"run OCR first, e.g. ocrmypdf in.pdf out.pdf")
    if no_text and not quiet:
        print(f"warning: {display(path)}: {len(no_text)} of {doc.pages} pages have no text layer and are skipped "
              f"(pages {', '.join(map(str, no_text))})", file=sys.stderr)
    return doc, used


def references_dropped(cleaning):
    """What the cleaning left out of the text, and why, for the summary and the manifest."""
    from omnilm.pdf_text import REFERENCES_DROPPED

    return {"lists": cleaning.get("reference_lists", 0), "entries": cleaning.get("reference_entries_dropped", 0),
            "why": REFERENCES_DROPPED}


def chunk_documents(docs, count_tokens, chunk_tokens, overlap, min_chunks):
    """Chunks of every document (none straddles two); smaller chunks for a short corpus.
    Returns (chunks, chunk size used)."""
    size = chunk_tokens
    while True:
        chunks = []
        for path, doc in docs:
            for c in make_chunks(doc.paragraphs, count_tokens, size, overlap * size // chunk_tokens):
                chunks.append({"id": f"{path.stem}-{len(chunks):04d}", "source": path.name, **c})
        if len(chunks) >= min_chunks or size // 2 < SMALLEST_CHUNK:
            return chunks, size
        size //= 2


def load_written_rephrasings(path):
    """The rows of a --rephrasings-file ({"statement", "rephrasings": [...]}), checked
    at once so a bad file stops stage 10 before the PDF is read."""
    if not path.is_file():
        raise UserError(f"--rephrasings-file {display(path)} does not exist")
    rows = read_jsonl(path, "rephrasings file")
    for n, row in enumerate(rows, 1):
        texts = row.get("rephrasings")
        if not isinstance(row.get("statement"), str) or not isinstance(texts, list) or \
                not all(isinstance(t, str) for t in texts):
            raise UserError(f"rephrasings file {display(path)} entry {n} needs \"statement\" (text) and "
                            f"\"rephrasings\" (a list of texts)")
    return rows


def rephrase_facts(model, facts, min_params, per_fact):
    """A capable model's grounded rephrasings on each fact (model_rephrasings, at most
    `per_fact`, one per prompt of REPHRASE_PROMPTS); returns what happened, for the
    manifest."""
    if not any(model.glob("*.safetensors")):
        return {"skipped": "no weights"}
    params = parameter_count(model)
    if params < min_params:
        return {"skipped": f"{params / 1e6:.0f}M parameters < --rephrase-min-params {min_params:.0e}"}
    from omnilm.chat import load_model

    lm, tokenizer = load_model(model)
    per_fact = min(per_fact, len(REPHRASE_PROMPTS))
    with bar(desc="rephrasing facts", total=len(facts) * per_fact, unit="sentence") as b:
        kept, dropped = model_rephrasings(lm, tokenizer, facts, per_fact=per_fact, bar=b)
    return _attach(facts, kept, dropped, source=display(model))


def _attach(facts, kept, dropped, source):
    for f in facts:
        if f["id"] in kept:
            f["model_rephrasings"] = kept[f["id"]]
    return {"source": source, "kept": sum(map(len, kept.values())), "facts_rephrased": len(kept),
            "dropped_by_reason": dict(Counter(d["reason"] for d in dropped))}


def replay_pairs(args, model):
    """(kept, metrics, generation figures): the model's own answers to general questions.
    Greedy answers are deterministic, so the raw generations are cached under
    data/cache/replay/ by the model's fingerprint, the questions, the token limit and
    the word limit they stop past;
    which answers are kept is decided afresh, so a change of the filters needs no rerun."""
    from omnilm.chat import load_model
    from omnilm.sft_data import load_eval_questions

    eval_path = resolve(args.eval_questions)
    control = load_eval_questions(eval_path, "control") if eval_path.is_file() else []
    questions, skipped = load_replay_questions(resolve(args.replay_questions), control)
    questions = questions[:args.replay]
    # generations stop past MAX_WORDS words (past_max_words), so it is part of what they depend on
    key = hashlib.sha256(json.dumps(["raw", fingerprint(model), questions, args.replay_max_tokens, MAX_WORDS],
                                    sort_keys=True).encode()).hexdigest()[:20]
    cache = replay_cache_dir() / f"{key}.json"
    if cache.is_file():
        texts, truncated, generation = json.loads(cache.read_text())
        print(f"replay answers: {len(texts)} generations from the cache {display(cache)}")
        generation = dict(generation, cached=True)
    else:
        lm, tokenizer = load_model(model)
        with bar(desc="replay answers", total=len(questions), unit="question") as b:
            run = generate_replay(lm, tokenizer, questions, args.replay_max_tokens, bar=b)
        texts, truncated = run.texts, run.truncated
        generation = {"generated_tokens": run.generated_tokens, "seconds": round(run.seconds, 2),
                      "tokens_per_second": round(run.tokens_per_second, 2), **run.stats}
        write_text_atomic(cache, json.dumps([texts, truncated, generation]))
    kept, dropped = select_answers(questions, texts, truncated)
    metrics = {"questions": len(questions), "questions_skipped": skipped, "kept": len(kept),
               "shortened": sum(bool(k.get("shortened")) for k in kept),
               "dropped_by_reason": dict(Counter(d["reason"] for d in dropped))}
    return kept, metrics, generation


def prepare_document(args):
    """The whole stage for resolved options (the script's argparse namespace, or any
    object with the same attributes); returns the output folder."""
    if not 0 < args.valid_fraction < 1:
        raise UserError(f"--valid-fraction {args.valid_fraction} must be between 0 and 1")
    if args.chunk_tokens < SMALLEST_CHUNK or not 0 <= args.overlap < args.chunk_tokens // 2:
        raise UserError(f"--chunk-tokens must be >= {SMALLEST_CHUNK} and --overlap below half of it")
    if args.replay < 0 or not 0 <= args.replay_share < 1:
        raise UserError("--replay must be >= 0 and --replay-share in [0, 1)")
    if args.rephrasings < 0 or args.qa_in_cpt < 0 or not 0 <= args.heldout_fraction < 1:
        raise UserError("--rephrasings and --qa-in-cpt must be >= 0, --heldout-fraction in [0, 1)")

    pdf = resolve(args.pdf)
    files = list_pdfs(pdf)
    output = resolve(args.output) if args.output else cpt_data_dir(paper_stem(pdf))
    check_output(output, args.force)  # before any work: a folder it may not replace stops it here
    model = resolve(args.model)
    if not model.is_dir():
        hint = " (build it: python 00_extract/extract_text_backbone.py)" if model.parent == models_dir() else ""
        raise UserError(f"--model {display(model)} does not exist{hint}")

    written = resolve(args.rephrasings_file) if args.rephrasings_file else None
    written_rows = load_written_rephrasings(written) if written else None
    if written is not None and args.rephrasings < 2:
        raise UserError(f"--rephrasings-file needs --rephrasings 2 or more (the statement is the first of the K; "
                        f"got {args.rephrasings}), or the rewrites would go unused")

    docs, extractors = [], set()
    for path in files:
        doc, used = read_document(path, args.extractor, args.keep_references)
        docs.append((path, doc))
        extractors.add(used)
    tokenizer = load_tokenizer(model)
    if args.replay and not any(model.glob("*.safetensors")):
        raise UserError(f"--model {display(model)} has no weights (*.safetensors) to answer the replay questions; "
                        f"give the text model folder, or --replay 0 for the document alone")

    def count_tokens(text):
        return len(tokenizer.encode(text, add_special_tokens=False))

    chunks, size = chunk_documents(docs, count_tokens, args.chunk_tokens, args.overlap, args.min_chunks)
    tokens = sum(count_tokens(doc.text) for _, doc in docs)
    if len(chunks) < 2:
        raise UserError(f"{display(pdf)} is too short to split into train and valid: its {tokens} tokens of clean "
                        f"text make {len(chunks)} chunk(s); give a longer document")
    train_idx, valid_idx = split_train_valid(len(chunks), args.valid_fraction, args.seed)
    if not args.hold_out:
        train_idx = list(range(len(chunks)))
    golden_path = optional_file(args.golden)
    golden = [g["answer"] for g in load_golden(golden_path)] if golden_path and golden_path.is_file() else []
    # getattr: a caller's namespace from before --relations existed reads as off
    facts, context = fact_inventory(docs, chunks, golden, args.heldout_fraction, args.seed,
                                    relations=getattr(args, "relations", False))
    per_fact = args.rephrasings - 1  # the statement is the first of the K; rewrites may fill the rest
    if written_rows is not None:
        rephrased = _attach(facts, *written_rephrasings(written_rows, facts, per_fact), source=display(written))
    else:
        rephrased = rephrase_facts(model, facts, args.rephrase_min_params, per_fact) if per_fact > 0 else {}
    items = cpt_items(facts, context, args.rephrasings, args.qa_in_cpt, args.seed)
    trained_texts = [text for _, text in items]
    fact_rows = (pack_apart(count_tokens, items, size) if args.restatements_apart
                 else pack_texts(count_tokens, trained_texts, size))
    replay, replay_metrics, generation = replay_pairs(args, model) if args.replay else ([], {}, {})
    # the share is reached by repeating the answers (see replay_texts), not capped at one pass
    wanted = share_count(len(train_idx) + len(fact_rows), args.replay_share)
    replay_rows = replay_texts(tokenizer, replay, size, rows=wanted, seed=args.seed)

    pages_dropped = [{"file": path.name, "page": page, "reason": why}
                     for path, doc in docs for page, why in sorted(doc.dropped_pages.items())]
    cleaning = {}
    for _, doc in docs:
        for key, n in doc.stats.items():
            cleaning[key] = cleaning.get(key, 0) + n
    metrics = {
        "files": len(files), "pages": sum(doc.pages for _, doc in docs),
        "pages_used": sum(doc.pages for _, doc in docs) - len(pages_dropped), "pages_dropped": pages_dropped,
        "characters": sum(len(doc.text) for _, doc in docs), "tokens": tokens, "chunk_tokens": size,
        "chunks": len(chunks), "train_chunks": len(train_idx), "valid_chunks": len(valid_idx),
        "train_tokens": sum(chunks[i]["tokens"] for i in train_idx),
        "valid_tokens": sum(chunks[i]["tokens"] for i in valid_idx),
        "extractor": ", ".join(sorted(extractors)), "cleaning": cleaning,
        "references_dropped": references_dropped(cleaning),
        "facts": len(facts), "facts_heldout": sum(f["heldout"] for f in facts), "model_rephrasings": rephrased,
        "facts_restructured": sum(f["kind"] != "table" and bool(f.get("variants")) for f in facts),
        "facts_by_kind": dict(Counter(f["kind"] for f in facts)), "fact_context": context,
        "fact_train_rows": len(fact_rows), "fact_tokens": sum(count_tokens(r) for r in fact_rows),
        "replay_pairs": len(replay), "replay_train_rows": len(replay_rows),
        "replay_tokens": sum(count_tokens(r) for r in replay_rows), "replay": replay_metrics,
    }
    args.pdf, args.model, args.output = display(pdf), display(model), display(output)
    args.replay_questions, args.eval_questions = (display(resolve(v)) for v in (args.replay_questions, args.eval_questions))
    args.golden = display(golden_path) if golden_path else "none"
    args.rephrasings_file = display(written) if written else None
    with staged_dir(output, force=args.force, what="output") as tmp:
        write_jsonl(tmp / "train.jsonl", [{"text": chunks[i]["text"]} for i in train_idx]
                    + [{"text": row} for row in fact_rows + replay_rows])
        write_jsonl(tmp / FACTS_FILE, facts)
        write_jsonl(tmp / HELDOUT_QUESTIONS_FILE, heldout_questions(facts))
        write_jsonl(tmp / INDEPENDENT_FILE, independent_questions(facts, context, seed=args.seed))
        write_jsonl(tmp / CLOZE_FILE, cloze_probes(facts, trained_texts, seed=args.seed))
        write_jsonl(tmp / "valid.jsonl", ({"text": chunks[i]["text"]} for i in valid_idx))
        trained, validated = set(train_idx), set(valid_idx)  # sets: a corpus may have thousands of chunks
        write_jsonl(tmp / "chunks.jsonl", ({**c, "split": "valid" if i not in trained else
                                            "train+valid" if i in validated else "train"}
                                           for i, c in enumerate(chunks)))
        inputs = {f"pdf:{path.name}": fingerprint(path) for path in files}
        if golden_path and golden_path.is_file():
            inputs["golden"] = fingerprint(golden_path)
        if written is not None:
            inputs["rephrasings_file"] = fingerprint(written)
        inputs["tokenizer"] = fingerprint(model / "tokenizer.json")
        if args.replay:
            write_jsonl(tmp / REPLAY_FILE, replay)
            inputs["replay_questions"] = fingerprint(resolve(args.replay_questions))
            inputs["model"] = fingerprint(model)
        write_manifest(tmp, "prepare", args, inputs=inputs, metrics=metrics, replay_generation=generation)
    resized = f" (shrunk from {args.chunk_tokens} to reach {args.min_chunks} chunks)" if size != args.chunk_tokens else ""
    print(f"{metrics['pages_used']}/{metrics['pages']} pages, {metrics['characters']:,} chars, {tokens:,} tokens -> "
          f"{len(chunks)} chunks of <= {size} tokens{resized}: {len(train_idx)} train / {len(valid_idx)} valid"
          f"{'' if args.hold_out else ' (also trained)'} "
          f"[{metrics['extractor']}] -> {display(output)}")
    print(f"facts: {len(facts)} ({metrics['facts_heldout']} held out of every Q&A row; {metrics['facts_restructured']} "
          f"sentence facts also in other structures by rule) -> {display(output / FACTS_FILE)}; {len(fact_rows)} CPT "
          f"rows of {args.rephrasings} rephrasings a fact + {args.qa_in_cpt} Q&A a trained fact")
    refs = metrics["references_dropped"]
    if refs["lists"]:
        print(f"{refs['entries']} reference entries of {refs['lists']} reference "
              f"list{'s' if refs['lists'] > 1 else ''} dropped: {refs['why']}; what follows a list is kept")
    if "kept" in rephrased:
        dropped = rephrased["dropped_by_reason"]
        print(f"rewrites: {rephrased['kept']} kept on {rephrased['facts_rephrased']} facts from {rephrased['source']}"
              + (f"; dropped: {', '.join(f'{n} {why}' for why, n in dropped.items())}" if dropped else ""))
    if args.replay:
        print(f"replay: {len(replay)}/{replay_metrics['questions']} general questions answered by the model kept "
              f"({replay_metrics['shortened']} cut to their first whole sentences; {len(replay_rows)} train rows, {metrics['replay_tokens']:,} tokens; "
              f"{generation['tokens_per_second']} tok/s)")
    return output
