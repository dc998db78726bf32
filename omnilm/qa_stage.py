"""Stage 20's data: question/answer pairs for every trained fact (and from the CPT
model, when asked), the golden pairs on top, filtered and split, replay answers, and
the fact statements as text rows (see 20_stage2_sft/generate_qa.py for the options)."""
from omnilm.atomic import check_output, staged_dir
from omnilm.errors import UserError
from omnilm.fact_training import cpt_texts, fact_pairs
from omnilm.facts import FACTS_FILE, facts_from_chunks
from omnilm.jsonl import read_jsonl, write_jsonl
from omnilm.manifest import base_model_of, fingerprint, write_manifest
from omnilm.paths import adapter_dir, cpt_data_dir, demo_text_model, display, optional_file, resolve, sft_data_dir
from omnilm.progress import bar
from omnilm.replay import pack_texts, read_replay, split_replay
from omnilm.sft_data import build_pairs, counts, load_golden, load_heldout_questions, split_train_valid, to_messages

STATEMENT_WORDS = 120  # words per statement row: a few short rows, not one step per fact

def load_facts(folder, chunks, context):
    """Stage 10's fact inventory; for an older data folder, the facts of its chunks
    (then nothing is held out)."""
    path = folder / FACTS_FILE
    if path.is_file():
        return read_jsonl(path, "facts")
    print(f"note: {display(folder)} has no {FACTS_FILE}: facts taken from its chunks, none held out "
          f"(rerun 10_stage1_cpt/prepare_data.py for the held-out split)")
    return facts_from_chunks(chunks, context)


def load_chunks(folder):
    path = folder / "chunks.jsonl"
    if not path.is_file():
        raise UserError(f"{display(folder)} has no chunks.jsonl (run 10_stage1_cpt/prepare_data.py first)")
    chunks = read_jsonl(path, "chunks")
    for n, c in enumerate(chunks):
        if not isinstance(c.get("text"), str) or not c["text"].strip():
            raise UserError(f"chunks {display(path)} entry {n + 1} has no \"text\"")
        c.setdefault("id", n)
    if not chunks:
        raise UserError(f"chunks {display(path)} is empty")
    return chunks


def choose_model(args, stem):
    """(model dir, adapter dir or None, note): the CPT adapter and the base it was trained on."""
    if args.adapter and str(args.adapter).lower() == "none":
        adapter = None
    elif args.adapter:
        adapter = resolve(args.adapter)
        if not (adapter / "adapters.safetensors").is_file():
            raise UserError(f"--adapter {args.adapter} is not an adapter folder (no adapters.safetensors)")
    else:
        default = adapter_dir(stem, "cpt")
        adapter = default if (default / "adapters.safetensors").is_file() else None
    note = "" if adapter or args.adapter else f"no CPT adapter at {display(adapter_dir(stem, 'cpt'))}; using the base model"
    if args.model:
        model = resolve(args.model)
    else:
        model = (base_model_of(adapter) if adapter else None) or demo_text_model()
    return model, adapter, note


def model_candidates(args, chunks, model_dir, adapter):
    """Parsed model pairs (and one dropped record per unparseable output) + throughput."""
    from omnilm.chat import load_model
    from omnilm.qa_generation import build_prompts, generate_batched, parse_qa

    model, tokenizer = load_model(model_dir, adapter)
    jobs = build_prompts(tokenizer, chunks, args.per_chunk)
    with bar(desc="generating Q&A", total=len(jobs), unit="prompt") as b:
        run = generate_batched(model, tokenizer, [j["prompt"] for j in jobs], max_tokens=args.max_tokens,
                               batch_size=args.batch_size, temp=args.temp, seed=args.seed, bar=b)
    candidates = []
    for job, text, cut in zip(jobs, run.texts, run.truncated):
        tags = {"source": "model", "style": job["style"], "chunk_id": job["chunk_id"], "pages": job["pages"]}
        parsed = parse_qa(text, truncated=cut)
        if not parsed.pairs:
            candidates.append(dict(tags, question=None, answer=None, raw=text, reason="malformed", detail=parsed.error))
        candidates += [dict(tags, question=q, answer=a) for q, a in parsed.pairs]
    throughput = {"prompts": len(jobs), "prompt_tokens": run.prompt_tokens, "generated_tokens": run.generated_tokens,
                  "seconds": round(run.seconds, 2), "tokens_per_second": round(run.tokens_per_second, 2),
                  "batch_size": args.batch_size, **run.stats}
    return candidates, throughput, tokenizer


def rendered_tokens(tokenizer, rows):
    """Longest example in the model's own chat template (what the trainer will see)."""
    return max((len(tokenizer.apply_chat_template(r["messages"], tokenize=True)) for r in rows), default=0)


def build_sft_data(args):
    """The whole stage for resolved options (the script's argparse namespace, or any
    object with the same attributes); returns the output folder."""
    if min(args.per_chunk, args.per_fact, args.statements) < 0 or not 0 <= args.valid_fraction < 1 or not 0 <= args.replay_share < 1:
        raise UserError("--per-chunk, --per-fact and --statements must be >= 0, --valid-fraction and --replay-share in [0, 1)")

    from omnilm.qa_mining import context_name, find_acronyms

    chunks_dir = resolve(args.chunks) if args.chunks else cpt_data_dir()
    chunks = load_chunks(chunks_dir)
    stem = chunks_dir.name
    output = check_output(resolve(args.output) if args.output else sft_data_dir(stem), args.force)  # before the model runs
    golden_path, questions_path = optional_file(args.golden), optional_file(args.questions)
    golden = load_golden(golden_path) if golden_path and golden_path.is_file() else []
    heldout = load_heldout_questions(questions_path) if questions_path and questions_path.is_file() else []
    if not golden:
        print(f"note: no golden pairs ({display(golden_path) + ' missing or empty' if golden_path else '--golden none'})")
    context = args.context_name or context_name(chunks)

    acronyms = find_acronyms("\n\n".join(c["text"] for c in chunks))
    facts = load_facts(chunks_dir, chunks, context)
    heldout_facts = [f for f in facts if f.get("heldout")]
    candidates = [dict(pair, source="fact", fact_id=f["id"], chunk_id=f.get("chunk_id"), pages=[f.get("page")])
                  for f in facts if not f.get("heldout") for pair in fact_pairs(f, args.per_fact)]
    throughput, tokenizer, model_dir, adapter = {}, None, None, None
    if args.per_chunk:
        model_dir, adapter, note = choose_model(args, stem)
        if note:
            print(f"note: {note}")
        print(f"generating with {display(model_dir)}" + (f" + {display(adapter)}" if adapter else ""))
        generated, throughput, tokenizer = model_candidates(args, chunks, model_dir, adapter)
        candidates += generated

    chunk_texts = {c["id"]: c["text"] for c in chunks}
    kept, dropped = build_pairs(golden, candidates, chunk_texts, heldout, context, args.min_overlap, heldout_facts)
    held_golden = [d["question"] for d in dropped if d["source"] == "golden" and d["variant"] == "plain"
                   and d["reason"] == "heldout_for_eval"]
    if held_golden:
        print(f"warning: golden pairs near-duplicating evaluation paraphrases were held out: {held_golden}")
    if not kept:
        raise UserError(f"no pair survived the filters for {display(chunks_dir)}; see the reasons with --per-chunk and golden.jsonl")
    train, valid, overlap = split_train_valid(kept, args.valid_fraction, args.seed)
    replay = read_replay(chunks_dir)
    # after the document split, so each split gets its share of the final rows
    parts = split_replay(replay, len(train), len(valid), args.replay_share, args.seed)
    replay_train, replay_valid = ([dict(p, source="replay", variant="plain", group=f"replay-{name}-{i}", pages=[],
                                        chunk_id=None) for i, p in enumerate(part)]
                                  for name, part in zip(("train", "valid"), parts))
    train, valid, kept = train + replay_train, valid + replay_valid, kept + replay_train + replay_valid
    train_rows, valid_rows = [to_messages(p) for p in train], [to_messages(p) for p in valid]
    statement_rows = [{"text": t, "source": "statement"} for t in pack_texts(
        lambda text: len(text.split()), cpt_texts(facts, context, args.statements, 0, args.seed), STATEMENT_WORDS)]
    metrics = counts(kept, dropped, train, valid)
    metrics.update(replay_available=len(replay), replay_in_train=len(replay_train), replay_in_valid=len(replay_valid),
                   statement_rows=len(statement_rows))
    metrics["candidates_by_source"] = {s: sum(c["source"] == s for c in candidates) for s in ("fact", "model")}
    metrics.update(facts=len(facts), facts_heldout=len(heldout_facts),
                   facts_trained=len({p["fact_id"] for p in kept if p.get("fact_id")}))
    metrics["candidates_by_source"]["golden"] = len(golden)
    metrics["heldout_questions"] = len(heldout)
    if tokenizer is not None:
        metrics["longest_example_tokens"] = rendered_tokens(tokenizer, train_rows + valid_rows)

    inputs = {"chunks": fingerprint(chunks_dir / "chunks.jsonl"), "chunks_manifest": fingerprint(chunks_dir),
              **({"facts": fingerprint(chunks_dir / FACTS_FILE)} if (chunks_dir / FACTS_FILE).is_file() else {})}
    if replay:
        inputs["replay"] = fingerprint(chunks_dir / "replay.jsonl")
    for name, path in (("golden", golden_path), ("questions", questions_path)):
        if path and path.is_file():
            inputs[name] = fingerprint(path)
    if model_dir:
        inputs["model"] = fingerprint(model_dir)
    if adapter:
        inputs["adapter"] = fingerprint(adapter)
    with staged_dir(output, force=args.force, what="output") as tmp:
        write_jsonl(tmp / "train.jsonl", train_rows + statement_rows)
        write_jsonl(tmp / "valid.jsonl", valid_rows)
        write_jsonl(tmp / "pairs.jsonl", kept)
        write_jsonl(tmp / "dropped.jsonl", dropped)
        write_manifest(tmp, "qa", args, inputs=inputs, metrics=metrics, generation=throughput,
                       context_name=context, acronyms=acronyms, valid_overlaps_train=overlap,
                       model=display(model_dir) if model_dir else None,
                       adapter=display(adapter) if adapter else None)

    by_source = ", ".join(f"{n} {s}" for s, n in metrics["kept_by_source"].items())
    reasons = ", ".join(f"{n} {r}" for r, n in sorted(metrics["dropped_by_reason"].items())) or "none"
    speed = f"; generation {throughput['tokens_per_second']} tok/s over {throughput['prompts']} prompts" if throughput else ""
    if not replay and args.replay_share:
        print(f"note: no replay pairs in {display(chunks_dir)} (stage 10 --replay): nothing guards general answers")
    statements = f" + {len(statement_rows)} rows of fact statements" if statement_rows else ""
    print(f"SFT data: {display(output)}: {len(train)} train{statements} / {len(valid)} valid ({by_source}); "
          f"dropped {len(dropped)} ({reasons}){speed}")
    return output
