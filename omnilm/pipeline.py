"""The whole pipeline, stage after stage, skipping what is already done.

A stage is skipped when its output manifest carries the same pipeline key: a hash
of the stage's command line and of the manifests of what it reads. Change an
option or an upstream artifact and that stage (and those after it) run again.
Training stages resume an interrupted run on their own (--resume)."""
import hashlib
import json
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from omnilm.atomic import write_text_atomic
from omnilm.errors import UserError
from omnilm.facts import FACTS_FILE
from omnilm.manifest import MANIFEST, sha256_file
from omnilm.paths import (CONTROL_QUESTIONS, DEMO_GOLDEN, DEMO_QUESTIONS, REPLAY_QUESTIONS, REPO_DIR, adapter_dir,
                          benchmark_dir, cpt_data_dir, demo_omni_dir, demo_pdf, display, eval_json, models_dir,
                          optional_file, paper_inputs, paper_stem, quantized_dir, resolve, sft_data_dir,
                          text_model_dir)
from omnilm.probes import CLOZE_FILE, INDEPENDENT_FILE



@dataclass
class Stage:
    name: str
    script: str
    args: list
    reads: list = field(default_factory=list)    # artifact folders/files whose manifests key this stage
    writes: list = field(default_factory=list)   # manifest files this stage leaves when done
    title: str = ""


def manifest_file(path):
    path = Path(path)
    return path / MANIFEST if path.is_dir() or not path.suffix else path


def manifest_digest(m):
    """What a stage read, as a hash: a manifest without the pipeline's own bookkeeping
    (pipeline_key, pipeline_seconds), so an input redone with the same result, only
    faster or slower, does not make the stages after it run again."""
    if not m.exists():
        return "absent"
    if m.suffix != ".json":  # a PDF, a question list: its bytes
        return sha256_file(m)
    try:
        data = json.loads(m.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError):
        return sha256_file(m)
    if isinstance(data, dict):
        data = {k: v for k, v in data.items() if not k.startswith("pipeline_")}
    return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()


def config_options(stage):
    """What a stage reads from its --config file: the top-level options and the section
    named after it, a file an option names by its content (prepare's rephrasings_file).
    Editing them reruns the stage (the file's path alone would not); editing another
    stage's section does not."""
    args = [str(a) for a in stage.args]
    if "--config" not in args:
        return None
    from omnilm.config import load_yaml

    data = load_yaml(args[args.index("--config") + 1])
    options = {k: v for k, v in data.items() if not isinstance(v, dict)}
    options.update(data.get(stage.name) if isinstance(data.get(stage.name), dict) else {})
    return {k: [v, sha256_file(resolve(v))] if isinstance(v, str) and resolve(v).is_file() else v
            for k, v in options.items()}


def stage_key(stage):
    h = hashlib.sha256(json.dumps([stage.script, [str(a) for a in stage.args]]).encode())
    options = config_options(stage)
    if options is not None:  # a run without --config keys its stages as before
        h.update(json.dumps(options, sort_keys=True, default=str).encode())
    for path in stage.reads:
        h.update(str(path).encode())
        h.update(manifest_digest(manifest_file(path)).encode())
    return h.hexdigest()[:16]


def is_done(stage, key):
    """A stage that records nothing (a fast deterministic builder) always runs."""
    for m in map(manifest_file, stage.writes):
        try:
            if json.loads(m.read_text()).get("pipeline_key") != key:
                return False
        except (OSError, json.JSONDecodeError):
            return False
    return bool(stage.writes)


def mark_done(stage, key, seconds):
    for m in map(manifest_file, stage.writes):
        data = json.loads(m.read_text())
        data["pipeline_key"] = key
        data["pipeline_seconds"] = round(seconds, 1)
        write_text_atomic(m, json.dumps(data, indent=2, default=str) + "\n")


def run_script(script, args, log=print):
    """One project script (path from the repo root) in its own Python process, from the
    repo root, its command logged first; returns the exit code."""
    cmd = [sys.executable, str(REPO_DIR / script), *map(str, args)]
    log("$ " + " ".join(cmd[1:]))
    return subprocess.call(cmd, cwd=REPO_DIR)


def run_or_fail(script, args):
    """run_script for the benchmarks: its log flushed as it goes, a failure one clear error."""
    if run_script(script, args, log=lambda line: print(line, flush=True)):
        raise UserError(f"{script} failed (see above)")


def run_stages(stages, start_from=None, force=False, log=print):
    """Run (or skip) each stage in order; returns [(name, 'ran'|'skipped', seconds)]."""
    names = [s.name for s in stages]
    if start_from and start_from not in names:
        raise UserError(f"--from {start_from}: no such stage (stages: {', '.join(names)})")
    rerun_from = names.index(start_from) if start_from else (0 if force else None)
    done = []
    for i, stage in enumerate(stages):
        key = stage_key(stage)
        if (rerun_from is None or i < rerun_from) and is_done(stage, key):
            log(f"[{i + 1}/{len(stages)}] {stage.name}: skipped (same inputs and options as the last run)")
            done.append((stage.name, "skipped", 0.0))
            continue
        log(f"\n[{i + 1}/{len(stages)}] {stage.name}: {stage.title}")
        started = time.perf_counter()
        rc = run_script(stage.script, stage.args, log)
        seconds = time.perf_counter() - started
        if rc != 0:
            raise StageFailed(stage.name, rc)
        mark_done(stage, key, seconds)
        done.append((stage.name, "ran", seconds))
        log(f"[{i + 1}/{len(stages)}] {stage.name}: done in {seconds:.0f}s")
    return done


class StageFailed(Exception):
    def __init__(self, name, rc):
        super().__init__(f"stage {name} failed (exit {rc}); fix the cause and run again: finished stages are skipped")
        self.rc = rc


def demo_plan(source=None, pdf=None, config=None, golden=None, questions=None):
    """The stage list: the demo model (no source) or a user's checkpoint, taught the demo
    paper (no pdf) or the user's. A paper's golden pairs and questions are its own (given,
    or found beside it by paper_inputs), never the demo's; every paper gets the controls."""
    cfg = ["--config", config] if config else []
    demo, demo_paper = source is None, pdf is None
    source = Path(source) if source else demo_omni_dir()
    text = text_model_dir(source)
    q8, q4 = quantized_dir(text, 8), quantized_dir(text, 4)
    pdf = Path(pdf) if pdf else demo_pdf()
    if demo_paper:
        golden, questions = DEMO_GOLDEN, DEMO_QUESTIONS
    else:
        beside = paper_inputs(pdf)  # a file given, else the one beside the paper; "none" says there is none
        golden, questions = (None if optional_file(given or found) is None else given or found
                             for given, found in zip((golden, questions), beside))
    golden_arg, questions_arg = golden or "none", questions or "none"
    stem = paper_stem(pdf)
    cpt_data, sft_data = cpt_data_dir(stem), sft_data_dir(stem)
    cpt, sft = adapter_dir(stem, "cpt"), adapter_dir(stem, "sft")
    bench = benchmark_dir()
    # the paper's hand-written questions if any, the questions and probes in forms no training row has
    # (stage 10 makes them from the facts), and the broad control; never the templates' own questions
    eval_questions = [*filter(None, [questions]), cpt_data / INDEPENDENT_FILE, cpt_data / CLOZE_FILE,
                      CONTROL_QUESTIONS]
    stages = []
    if demo:
        stages.append(Stage("demo", "00_extract/make_demo_omni.py", ["--output", source, "--force"], writes=[source],
                            title="build the embedded demo omni checkpoint"))
    if demo_paper:  # under a second and byte-identical each time, so it always runs (prepare keys on its hash)
        stages.append(Stage("demo-pdf", "10_stage1_cpt/make_demo_pdf.py", ["--output", pdf, "--force"],
                            title="render the demo paper to PDF"))
    stages += [
        Stage("extract", "00_extract/extract_text_backbone.py", ["--source", source, "--output", text, "--force", *cfg],
              reads=[source if demo else source / "config.json"], writes=[text], title="text backbone out of the omni checkpoint"),
        Stage("quantize", "01_quantize/quantize.py", ["--model", text, "--bits", "8", "4", "--force", *cfg],
              reads=[text], writes=[q8, q4], title="8-bit and 4-bit versions"),
        Stage("prepare", "10_stage1_cpt/prepare_data.py", ["--pdf", pdf, "--model", text, "--output", cpt_data,
                                                           "--golden", golden_arg, "--force", *cfg],
              reads=[pdf, text, REPLAY_QUESTIONS, CONTROL_QUESTIONS,
                     *filter(None, [golden])], writes=[cpt_data],
              title="PDF -> clean text -> token chunks, facts (+ replay answers) -> train/valid"),
        Stage("benchmark", "01_quantize/benchmark.py", ["--models", text, q8, q4, "--output", bench,
                                                        "--text-file", cpt_data / "valid.jsonl", "--force", *cfg],
              reads=[text, q8, q4, cpt_data], writes=[bench], title="load time, tok/s, memory, perplexity"),
        Stage("cpt", "10_stage1_cpt/train_cpt.py", ["--data", cpt_data, "--adapter-path", cpt, "--resume", *cfg],
              reads=[text, q4, cpt_data], writes=[cpt], title="continued pretraining (LoRA, early stopping)"),
        Stage("qa", "20_stage2_sft/generate_qa.py", ["--chunks", cpt_data, "--adapter", cpt, "--output", sft_data,
                                                     "--golden", golden_arg, "--questions", questions_arg, "--force", *cfg],
              reads=[cpt_data, cpt, *filter(None, [golden, questions])], writes=[sft_data],
              title="question/answer pairs from the chunks"),
        Stage("sft", "20_stage2_sft/train_sft.py", ["--data", sft_data, "--init-adapter", cpt, "--adapter-path", sft,
                                                    "--resume", *cfg],
              reads=[sft_data, cpt], writes=[sft], title="supervised fine-tuning from the CPT adapter"),
        Stage("eval", "30_evaluation/compare_stages.py",
              ["--stages", f"base={text}", f"cpt={text}", f"sft={text}", "--adapter", f"cpt={cpt}",
               "--adapter", f"sft={sft}", "--questions", *eval_questions,
               "--facts", cpt_data / FACTS_FILE, "--training-data", cpt_data, sft_data, *cfg],
              reads=[text, cpt, sft, *filter(None, [questions]), CONTROL_QUESTIONS, cpt_data, sft_data],
              writes=[eval_json()], title="base vs CPT vs SFT"),
    ]
    return stages


def check_user_inputs(source, pdf):
    """Stop at once, before any stage, on a source or PDF that cannot work, with the
    checks stage 00 and stage 10 make (every shard's header and tensor against
    text_config; each PDF readable, not encrypted, with a text layer): a bad one
    stopped the run only after extraction and quantization had replaced folders."""
    from omnilm.extract import load_config, plan_extraction, text_config_of

    text = None
    if source is not None:
        if not Path(source).exists():
            raise UserError(f"--source {source} does not exist")
        text = text_config_of(load_config(source), source)
    if pdf is not None:
        from omnilm.pdf_text import list_pdfs
        from omnilm.prepare import read_document

        for path in list_pdfs(pdf):
            read_document(path, "auto", keep_references=False, quiet=True)
    if text is not None:  # the shards last: their headers are the slowest to read
        plan_extraction(source, text)


def check_config(config, stages):
    """Every section of --config read as its stage will read it (with the arguments the
    pipeline gives that stage), before stage 00: a bad `sft:` failed only after CPT."""
    if not config:
        return
    from omnilm.config import SECTIONS, parse_options, stage_parser

    given = {s.name: [str(a) for a in s.args] for s in stages if "--config" in map(str, s.args)}
    for section in SECTIONS:
        parse_options(stage_parser(section), section, given.get(section, ["--config", config]), force="checked")


def check_outputs(stages):
    """Every folder a stage will replace is refused at once, before stage 00, when
    this project did not make it (omnilm.atomic.check_output): a user's X-Text folder
    is never replaced, and no earlier stage runs for nothing."""
    from omnilm.adapters import check_adapter_path
    from omnilm.atomic import check_output

    fix = "move it away or empty it (its name comes from --source or --pdf)"
    for stage in stages:
        what = f"the {stage.name} stage's output"
        for path in map(Path, stage.writes):
            if manifest_file(path) == path:  # a file among others (results/eval.json), not a folder it replaces
                continue
            if stage.name in ("cpt", "sft"):
                check_adapter_path(path, what, fix)
            else:
                check_output(path, force=True, what=what, fix=fix)


def main(argv=None):
    from omnilm.config import make_parser

    p = make_parser(RUN_DOC, prog="run_pipeline.sh")
    src = p.add_mutually_exclusive_group()
    src.add_argument("--source", help="your omni checkpoint folder (default: the embedded demo)")
    src.add_argument("--hf-repo", help="download the omni checkpoint's language-model shards from the Hub")
    p.add_argument("--pdf", help="your paper: a PDF file or a folder of PDFs (default: the demo paper); without "
                   "--source the demo model learns it: a first look before the 8B")
    p.add_argument("--golden", help="your paper's hand-written question/answer pairs (default: paper.golden.jsonl "
                   "beside paper.pdf, or golden.jsonl in the PDF folder; else none; 'none' to use none of them)")
    p.add_argument("--questions", help="your paper's evaluation questions (default: paper.questions.jsonl beside "
                   "paper.pdf, or questions.jsonl in the PDF folder; else, or with 'none', the held-out facts' questions only)")
    p.add_argument("--config", help="YAML file setting every stage's options (see configs/)")
    p.add_argument("--from", dest="start_from", help="rerun from this stage on (names: see --list)")
    p.add_argument("--force", action="store_true", help="rerun every stage")
    p.add_argument("--list", action="store_true", help="list the stages and whether each is up to date")
    args = p.parse_args(argv)
    source = resolve(args.source) if args.source else None
    if args.hf_repo:
        source = models_dir() / args.hf_repo.split("/")[-1]
    pdf = resolve(args.pdf) if args.pdf else None
    if source is not None and pdf is None:
        raise UserError("a real run needs --pdf too (your paper); with neither --source nor --pdf it runs the demo")
    inputs = {name: getattr(args, name) for name in ("golden", "questions")}
    for name, given in inputs.items():
        if given is not None and pdf is None:
            raise UserError(f"--{name} belongs to your paper: give --pdf too (the demo paper has its own)")
        if given is not None and given.lower() != "none":
            inputs[name] = resolve(given)
            if not inputs[name].is_file():
                raise UserError(f"--{name} {given} does not exist")
    config = str(resolve(args.config)) if args.config else None
    if config and not Path(config).is_file():
        raise UserError(f"--config {args.config} does not exist")
    check_user_inputs(None if args.hf_repo else source, pdf)
    stages = demo_plan(source, pdf, config, **inputs)
    if args.hf_repo:
        extract = next(s for s in stages if s.name == "extract")
        extract.args = ["--hf-repo", args.hf_repo, *extract.args]
    check_config(config, stages)
    check_outputs(stages)
    if args.list:
        for i, s in enumerate(stages, 1):
            print(f"{i:2}. {s.name:10} {'up to date' if is_done(s, stage_key(s)) else 'to run':11} {s.title}")
        return 0
    started = time.perf_counter()
    try:
        done = run_stages(stages, start_from=args.start_from, force=args.force)
    except StageFailed as e:
        print(f"error: {e}", file=sys.stderr)
        return e.rc or 1
    from omnilm.report import write_report

    report = write_report(stages)
    total = time.perf_counter() - started
    ran = [n for n, what, _ in done if what == "ran"]
    skipped = [n for n, what, _ in done if what == "skipped"]
    print(f"\npipeline finished in {total / 60:.1f} min: ran {', '.join(ran) or 'nothing'}"
          + (f"; skipped {', '.join(skipped)} (up to date)" if skipped else ""))
    print(f"report: {display(report)}")
    print("chat with the result:  .venv/bin/streamlit run 04_inference/app.py")
    return 0


RUN_DOC = """Run every stage in order: extract, quantize, prepare the PDF, CPT, Q&A, SFT, evaluate.

Examples:
  ./run_pipeline.sh                                     # the embedded demo (no download, no GPU)
  ./run_pipeline.sh --source models/HyperCLOVAX-SEED-Omni-8B --pdf paper.pdf \\
      --config configs/hyperclovax-seed-omni-8b-16gb.yaml
  ./run_pipeline.sh --hf-repo naver-hyperclovax/HyperCLOVAX-SEED-Omni-8B --pdf paper.pdf
  ./run_pipeline.sh --pdf paper.pdf                     # your paper on the demo model: a first look
  ./run_pipeline.sh --list                              # which stages are up to date
  ./run_pipeline.sh --from sft                          # rerun SFT and what follows

A stage whose inputs and options did not change since its last run is skipped; a
training stage interrupted midway resumes where it stopped. Ends with
results/REPORT.md and the command to chat with the result.
"""

if __name__ == "__main__":
    from omnilm.errors import run_main

    run_main(main)
