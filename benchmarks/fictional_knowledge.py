"""Teach the demo model invented encyclopedia articles written by other people, and
measure it on their cloze probes: how much of a document the pipeline's recipe teaches.

Examples:
  .venv/bin/python benchmarks/fictional_knowledge.py --articles 3 --seeds 0 1 2
  .venv/bin/python benchmarks/fictional_knowledge.py --articles 10                # seed 0 only
  .venv/bin/python benchmarks/fictional_knowledge.py --articles 3 --first 20      # articles 20-22
  .venv/bin/python benchmarks/fictional_knowledge.py --articles 3 --dry-run       # build the inputs, train nothing

The demo paper's questions were written by the people who wrote the recipe, so they
may ask what the recipe happens to teach. This benchmark takes a public set instead
(shared/benchmarks/fictional_knowledge, README.md there: Chang et al., NeurIPS 2024):
invented articles (about 360 words each) that no model can know, each with 15 cloze
probes written by others, five of each kind: `mem` (a sentence of the article cut
before its target), `gen` (the same fact in other words) and `hard_gen` (a fact the
article implies but states in no one sentence). Only `gen` and `hard_gen` say whether
the model learned the facts rather than the sentences.

Articles --first .. --first + --articles - 1 become ONE Markdown document (a title, a
numbered section per article named by its first words, its text as paragraphs),
rendered to a PDF by the project's writer (omnilm.pdf_writer) and read back with
stage 10's own extraction to check that every article's text comes back. Its
probes go beside it as <stem>.questions.jsonl, kind `cloze`: stage 30 completes each
probe greedily as plain text (no chat template) and a hit is a completion that holds
the target (omnilm.scoring, as every verdict). Then, for each --seeds, the real
pipeline (python -m omnilm.pipeline --pdf ... --questions ... --config seed.yaml,
the demo model) runs in its own project root, OMNILM_ROOT=<work>/<stem>/seedN: each
seed builds the demo model and trains its own adapters there, and a rerun skips the
stages already done. seed.yaml sets `seed: N` at top level, which reaches every stage
that takes one (stage 10's held-out split, CPT, Q&A, SFT). The pipeline's output goes
to <work>/<stem>/seedN/pipeline.log, one line a stage to the screen.

Reported for base, CPT and SFT: accuracy on the set's probes per kind (mem, gen,
hard_gen) and over all of them, per seed and the median over seeds, beside the
evaluation's own figures for the rest (control, bleed, independent from its
eval.json; stage 10's own cloze probes from its eval.csv). Writes, in --output,
fictional_knowledge_N<articles>.csv (a row per seed x stage x kind, plus the
medians), .md, .png (median bars, each seed a point) and .manifest.json (machine,
commit, command, seconds per seed); a --first other than 0 adds _from<first>.
"""
import omnilm  # noqa: F401  (fast BLAS before mlx)

import csv
import json
import os
import re
import shlex
import statistics
import subprocess
import sys
import time
from pathlib import Path

from omnilm.atomic import atomic_file, staged_files, write_csv_atomic, write_text_atomic
from omnilm.config import make_parser
from omnilm.errors import UserError, run_main
from omnilm.paths import REPO_DIR

SET_NAME = "fictional_knowledge_0-64.json"
SET_FILES = [REPO_DIR / "shared" / "benchmarks" / "fictional_knowledge" / SET_NAME,  # a checkout's shared/
             REPO_DIR.parent / "shared" / "benchmarks" / "fictional_knowledge" / SET_NAME]
PROBE_KINDS = ("mem", "gen", "hard_gen")
ALL = "all"                        # the three kinds pooled
STAGES = ("base", "cpt", "sft")
OWN_CLOZE = "cloze_stage10"        # the pipeline's own cloze probes (its eval.json pools them with ours)
POOLED_KINDS = ("control", "bleed", "independent", "heldout_fact", "reader", "paraphrase", "trained")
HEADING_WORDS = 6
CSV_COLUMNS = ("seed", "stage", "probe_kind", "correct", "total", "accuracy", "min", "max", "source")


# ---- the document and its probes ---------------------------------------------------

def default_set_file():
    return next((f for f in SET_FILES if f.is_file()), SET_FILES[-1])


def load_articles(path, first, count):
    """Entries first .. first+count-1 of the set, each checked to carry its probes."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"the fictional knowledge set {path} does not exist (see --set)")
    entries = json.loads(path.read_text(encoding="utf-8"))
    if count < 1 or first < 0 or first + count > len(entries):
        raise UserError(f"--first {first} --articles {count}: the set has {len(entries)} articles "
                        f"(0-{len(entries) - 1})")
    chosen = entries[first:first + count]
    for n, e in enumerate(chosen, first):
        for kind in PROBE_KINDS:
            if len(e.get(f"{kind}_input", [])) != len(e.get(f"{kind}_target", [])) or not e.get(f"{kind}_input"):
                raise UserError(f"{path}: article {n} has no matching {kind}_input / {kind}_target lists")
    return chosen


def stem_of(first, count):
    """The document's name: its PDF stem, so its data and adapter folders (data/cpt/<stem>...)."""
    return f"fictional_knowledge_{first}-{first + count - 1}"


def short_name(text, words=HEADING_WORDS):
    """A heading from an article's first words: up to its first comma, bracket or
    is/was, at most `words` words ('The fortieth government of Mars, or ...' ->
    'The fortieth government of Mars'; 'Malm Town (, "Northern ...' -> 'Malm Town')."""
    head = re.split(r"[,(;:]|\s(?:is|was|are|were)\s", text, maxsplit=1)[0]
    name = " ".join(head.split()[:words]).strip(" .'\"")
    return name or " ".join(text.split()[:words])


def paragraphs_of(article):
    """An article's paragraphs: the set marks a paragraph break with two spaces."""
    return [" ".join(p.split()) for p in re.split(r"\n\s*\n|\s{2,}(?=\S)", article.strip()) if p.strip()]


def build_markdown(entries, first):
    """One document of the articles, in the Markdown render_paper reads: a title, then
    a numbered section per article (numbered, so stage 10 reads it as a heading)."""
    n = len(entries)
    lines = [f"# Fictional knowledge: {n} article{'s' if n != 1 else ''}", ""]
    for i, e in enumerate(entries, 1):
        lines += [f"## {i} {short_name(e['train_context'])}", ""]
        for para in paragraphs_of(e["train_context"]):
            if para[:1] in "#|[":  # would read as a heading, table or reference list
                para = "\u2014 " + para
            lines += [para, ""]
    return "\n".join(lines)


def probe_rows(entries, first):
    """Stage 30's question rows (kind cloze) for every probe of the articles, in order."""
    rows = []
    for n, e in enumerate(entries, first):
        for kind in PROBE_KINDS:
            for i, (prompt, target) in enumerate(zip(e[f"{kind}_input"], e[f"{kind}_target"])):
                rows.append({"id": f"fk{n}-{kind}{i}", "kind": "cloze", "question": prompt.strip(),
                             "reference": target, "key_facts": [[target]], "probe": kind})
    return rows


def read_back(pdf):
    """The PDF's text as stage 10 reads it (extraction and cleaning), one string."""
    from omnilm.pdf_text import clean_pages, extract_pages

    raw, _ = extract_pages(pdf)
    return clean_pages(raw).text


def _flat(text):
    return " ".join(text.split())


def lost_text(entries, text):
    """What of the articles the PDF's text does not give back: [(article index in
    `entries`, what, detail)] for a paragraph not found whole (its changed words), a mem probe
    whose prompt is not in the text or is not followed there by its target (as stage
    30 scores it), and a gen/hard_gen target found as words in its article but not
    in the text."""
    from omnilm.scoring import normalize, score_answer

    flat, words = _flat(text), f" {normalize(text)} "
    lost = []
    for n, e in enumerate(entries):
        for para in paragraphs_of(e["train_context"]):
            if para not in flat:
                changed = [w for w in para.split() if w not in flat]
                lost.append((n, "paragraph", f"'{para[:40]}...' (words changed: {', '.join(changed) or '?'})"))
        for prompt, target in zip(e["mem_input"], e["mem_target"]):
            at = flat.find(_flat(prompt))
            if at < 0:
                lost.append((n, "mem prompt", f"'...{_flat(prompt)[-40:]}'"))
            elif not score_answer(flat[at + len(_flat(prompt)):][:300], [[target]])[0]:
                lost.append((n, "mem target", f"'{target}' (not after its prompt)"))
        article = f" {normalize(e['train_context'])} "
        for kind in ("gen", "hard_gen"):
            for target in e[f"{kind}_target"]:
                t = f" {normalize(target)} "
                if t in article and t not in words:
                    lost.append((n, f"{kind} target", f"'{target}'"))
    return lost


def render(markdown, hyphenate=True):
    """PDF bytes and pages of the document (omnilm.pdf_writer.render_paper). hyphenate
    False: no word is split at a line end (the writer's hyphenation points are turned
    off for this call), for a document whose hyphens stage 10 cannot all undo."""
    from omnilm import pdf_writer

    if hyphenate:
        return pdf_writer.render_paper(markdown)
    saved = pdf_writer.hyphen_points
    pdf_writer.hyphen_points = lambda word: []
    try:
        return pdf_writer.render_paper(markdown)
    finally:
        pdf_writer.hyphen_points = saved


def write_inputs(entries, first, folder):
    """<folder>/<stem>.md, .pdf and .questions.jsonl (each written whole), the PDF read
    back as stage 10 reads it. The PDF is laid out as the demo paper's (words hyphenated
    at line ends); when stage 10's cleaning then loses a probe's prompt or target (it
    joins a compound split at its own hyphen, "single-use" -> "singleuse"), it is laid
    out again with no word split. Returns {pdf, questions, pages, hyphenated, lost}:
    lost is what the final PDF still does not give back (lost_text)."""
    stem = stem_of(first, len(entries))
    folder.mkdir(parents=True, exist_ok=True)
    markdown = build_markdown(entries, first)
    write_text_atomic(folder / f"{stem}.md", markdown)
    pdf = folder / f"{stem}.pdf"
    for hyphenate in (True, False):
        pdf_bytes, pages = render(markdown, hyphenate)
        with atomic_file(pdf) as tmp:  # never a half-written PDF in place
            tmp.write_bytes(pdf_bytes)
        lost = lost_text(entries, read_back(pdf))
        if not any(what != "paragraph" for _, what, _ in lost):
            break
    questions = folder / f"{stem}.questions.jsonl"  # where the pipeline looks (omnilm.paths.paper_inputs)
    write_text_atomic(questions, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in probe_rows(entries, first)))
    return {"pdf": pdf, "questions": questions, "pages": pages, "hyphenated": hyphenate, "lost": lost}


def token_count(text):
    """Tokens of the demo model's tokenizer, or None when no demo model is built yet."""
    from omnilm.paths import demo_text_model

    for folder in (demo_text_model(), REPO_DIR / "tests" / ".cache" / "demo-omni-Text"):
        if (folder / "tokenizer.json").is_file():
            from tokenizers import Tokenizer

            return len(Tokenizer.from_file(str(folder / "tokenizer.json")).encode(text).ids)
    return None


# ---- one pipeline run per seed ---------------------------------------------------

def seed_root(folder, seed):
    return folder / f"seed{seed}"


def pipeline_command(pdf, questions, config):
    return [sys.executable, "-m", "omnilm.pipeline", "--pdf", str(pdf), "--questions", str(questions),
            "--config", str(config)]


def pipeline_env(root):
    """This interpreter's environment with the seed's project root, this checkout's
    code first on the path (its stages too), and output unbuffered so the log keeps order."""
    env = dict(os.environ, OMNILM_ROOT=str(root), PYTHONUNBUFFERED="1")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_DIR), os.environ.get("PYTHONPATH")]))
    return env


def prepare_root(root, seed):
    """The seed's project root (the folders a project has) and its config: the seed of
    every stage that takes one (prepare's split, CPT, Q&A, SFT: top-level keys reach
    each stage with that option)."""
    for d in ("models", "data", "adapters", "results", "logs"):
        (root / d).mkdir(parents=True, exist_ok=True)
    config = root / "seed.yaml"
    write_text_atomic(config, f"# fictional knowledge benchmark: the seed of stages 10 and 20\nseed: {seed}\n")
    return config


STAGE_LINE = re.compile(r"^\[(\d+)/(\d+)\] ([\w-]+): (.*)$")


def run_seed(seed, pdf, questions, root):
    """The pipeline on the document in the seed's root; its output to pipeline.log, one
    line a stage to the screen. Returns (seconds, {stage: seconds}) or raises UserError."""
    config = prepare_root(root, seed)
    log_path = root / "pipeline.log"
    cmd = pipeline_command(pdf, questions, config)
    print(f"seed {seed}: OMNILM_ROOT={root} {shlex.join(cmd)}\n  log: {log_path}", flush=True)
    stages, started, open_line, tail = {}, time.perf_counter(), False, []
    with open(log_path, "a", encoding="utf-8") as log:
        log.write(f"\n=== {time.strftime('%Y-%m-%d %H:%M:%S')} OMNILM_ROOT={root} {shlex.join(cmd)}\n")
        proc = subprocess.Popen(cmd, cwd=REPO_DIR, env=pipeline_env(root), stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True, errors="replace", bufsize=1)
        try:
            for line in proc.stdout:
                log.write(line)
                log.flush()
                tail = (tail + [line.rstrip()])[-15:]
                m = STAGE_LINE.match(line.strip())
                if not m:
                    continue
                i, n, name, what = m.groups()
                done = re.match(r"done in (\d+)s", what)
                if what.startswith("skipped") or done:
                    if not open_line:
                        print(f"  seed {seed} [{i}/{n}] {name}", end="")
                    stages[name] = int(done.group(1)) if done else 0
                    elapsed = (time.perf_counter() - started) / 60
                    print(f": {'done in ' + done.group(1) + ' s' if done else 'skipped (done before)'}"
                          f" ({elapsed:.1f} min so far)", flush=True)
                    open_line = False
                else:
                    print(f"  seed {seed} [{i}/{n}] {name} ({what})", end="", flush=True)
                    open_line = True
            rc = proc.wait()
        except BaseException:
            proc.terminate()
            proc.wait()
            raise
    seconds = time.perf_counter() - started
    if open_line:
        print(": failed", flush=True)
    if rc != 0:
        raise UserError(f"seed {seed}: the pipeline failed (exit {rc}); see {log_path}. Its last lines:\n  "
                        + "\n  ".join(tail) + "\nrun the same command again: finished stages are skipped")
    print(f"seed {seed}: pipeline finished in {seconds / 60:.1f} min", flush=True)
    return seconds, stages


# ---- the figures --------------------------------------------------------------------

def _correct(value):
    text = str(value).strip().lower()
    if text in ("true", "false"):
        return text == "true"
    return bool(int(float(text)))


def read_eval_csv(path):
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def ours(row):
    return row.get("probe") in PROBE_KINDS and str(row.get("id", "")).startswith("fk")


def probe_accuracy(rows, stages=STAGES):
    """{stage: {kind: (correct, total)}} over the set's probes (ids fk*, probe mem, gen,
    hard_gen) of an eval.csv's rows, with ALL pooling the three, and OWN_CLOZE the
    pipeline's own cloze probes (the other cloze rows). A stage not in the rows is left out."""
    out = {}
    for stage in stages:
        mine = [r for r in rows if r.get("stage") == stage]
        if not mine:
            continue
        counts = {}
        for kind in PROBE_KINDS:
            hits = [_correct(r["correct"]) for r in mine if ours(r) and r["probe"] == kind]
            if hits:
                counts[kind] = (sum(hits), len(hits))
        if counts:
            counts[ALL] = (sum(k for k, _ in counts.values()), sum(n for _, n in counts.values()))
        own = [_correct(r["correct"]) for r in mine if r.get("kind") == "cloze" and not ours(r)]
        if own:
            counts[OWN_CLOZE] = (sum(own), len(own))
        out[stage] = counts
    return out


def pooled_figures(summary, stages=STAGES):
    """{stage: {kind: (correct, total)}} of the evaluation's own summary (eval.json
    metrics.summary) for the kinds other than cloze (which pools ours with stage 10's)."""
    out = {}
    for stage in stages:
        s = summary.get(stage) or {}
        out[stage] = {kind: (s[f"{kind}_k"], s[f"{kind}_n"]) for kind in POOLED_KINDS
                      if s.get(f"{kind}_n")}
    return out


def seed_rows(seed, results):
    """CSV rows of one seed from its results folder (eval.csv, eval.json)."""
    csv_path, json_path = results / "eval.csv", results / "eval.json"
    if not csv_path.is_file():
        raise UserError(f"seed {seed}: {csv_path} does not exist (did the pipeline's evaluation run?)")
    figures = probe_accuracy(read_eval_csv(csv_path))
    pooled = {}
    if json_path.is_file():
        pooled = pooled_figures(json.loads(json_path.read_text()).get("metrics", {}).get("summary", {}))
    rows = []
    for stage in STAGES:
        for source, table in (("eval.csv", figures.get(stage, {})), ("eval.json", pooled.get(stage, {}))):
            for kind, (k, n) in table.items():
                rows.append({"seed": seed, "stage": stage, "probe_kind": kind, "correct": k, "total": n,
                             "accuracy": round(k / n, 4), "source": source})
    return rows


def median_rows(rows):
    """One row per stage x kind: the median accuracy over the seeds, and its min and max."""
    out = []
    keys = list(dict.fromkeys((r["stage"], r["probe_kind"], r["source"]) for r in rows))
    for stage, kind, source in keys:
        values = [r["accuracy"] for r in rows if (r["stage"], r["probe_kind"], r["source"]) == (stage, kind, source)]
        out.append({"seed": "median", "stage": stage, "probe_kind": kind, "total": next(
            r["total"] for r in rows if (r["stage"], r["probe_kind"]) == (stage, kind)),
            "accuracy": round(statistics.median(values), 4), "min": min(values), "max": max(values),
            "source": source})
    return out


def table_kinds(rows):
    present = {r["probe_kind"] for r in rows}
    return [k for k in (*PROBE_KINDS, ALL, OWN_CLOZE, *POOLED_KINDS) if k in present]


def markdown(rows, medians, seeds, title, machine, seconds):
    kinds = table_kinds(medians)
    many = len(seeds) > 1

    def cell(stage, kind):
        m = next((r for r in medians if (r["stage"], r["probe_kind"]) == (stage, kind)), None)
        if m is None:
            return "-"
        return f"{m['accuracy']:.2f} ({m['min']:.2f}-{m['max']:.2f})" if many else f"{m['accuracy']:.2f}"

    n = {k: next(r["total"] for r in medians if r["probe_kind"] == k) for k in kinds}
    lines = [f"# {title}", "",
             f"Seeds {', '.join(map(str, seeds))}; " + ("median (min-max) over the seeds" if many else "one seed")
             + "; probes per kind: " + ", ".join(f"{k} {n[k]}" for k in kinds) + ".",
             f"`{'`, `'.join(PROBE_KINDS)}`, `{ALL}`: the set's cloze probes (written by others), a hit when "
             "the greedy completion holds the target. "
             f"`{OWN_CLOZE}`: the pipeline's own cloze probes; the other kinds are the evaluation's own figures.",
             "", f"Machine: {machine}", "",
             "Pipeline seconds per seed: " + ", ".join(f"seed {s} {seconds[s]:.0f}" for s in seeds if s in seconds),
             "", "| stage | " + " | ".join(kinds) + " |", "|---" * (len(kinds) + 1) + "|"]
    lines += [f"| {stage} | " + " | ".join(cell(stage, k) for k in kinds) + " |" for stage in STAGES]
    return "\n".join(lines) + "\n"


def plot(rows, medians, path, title):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    kinds = [*PROBE_KINDS, ALL]
    stages = [s for s in STAGES if any(r["stage"] == s for r in medians)]
    width = 0.8 / len(kinds)
    fig, ax = plt.subplots(figsize=(7, 4))
    colors = plt.cm.tab10.colors
    for j, kind in enumerate(kinds):
        xs = [i + (j - (len(kinds) - 1) / 2) * width for i in range(len(stages))]
        ys = [next((r["accuracy"] for r in medians if (r["stage"], r["probe_kind"]) == (s, kind)), 0)
              for s in stages]
        total = next((r["total"] for r in medians if r["probe_kind"] == kind), 0)
        ax.bar(xs, ys, width, label=f"{kind} ({total} probes)", color=colors[j], alpha=0.8)
        for x, stage in zip(xs, stages):
            points = [r["accuracy"] for r in rows if (r["stage"], r["probe_kind"]) == (stage, kind)]
            ax.scatter([x] * len(points), points, color="black", s=12, zorder=3)
    ax.set_xticks(range(len(stages)))
    ax.set_xticklabels(stages)
    ax.set_ylim(-0.02, 1.02)
    ax.set_ylabel("probe accuracy (bar: median, dot: a seed)")
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def git_commit():
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO_DIR, capture_output=True, text=True,
                              check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None


def write_results(out, name, rows, seeds, seconds, stage_seconds, args, inputs):
    """<name>.csv, .md, .png and .manifest.json in `out`, all written before any replaces its namesake."""
    from omnilm.benchmark_report import machine_line
    from omnilm.manifest import write_manifest
    from omnilm.runtime import machine_summary

    machine = machine_summary()
    medians = median_rows(rows)
    title = f"Fictional knowledge: {args.articles} article{'s' if args.articles != 1 else ''} " \
            f"({args.first}-{args.first + args.articles - 1})"
    with staged_files(out) as tmp:
        write_csv_atomic(tmp / f"{name}.csv", rows + medians, CSV_COLUMNS)
        write_text_atomic(tmp / f"{name}.md", markdown(rows, medians, seeds, title, machine_line(machine), seconds))
        plot(rows, medians, tmp / f"{name}.png", title)
        write_manifest(tmp, "fictional_knowledge", args=args, inputs=inputs,
                       metrics={"median": medians, "per_seed": rows},
                       machine=machine, machine_line=machine_line(machine), commit=git_commit(),
                       command=shlex.join([sys.executable, *sys.argv]),
                       seconds_per_seed={str(s): round(seconds[s], 1) for s in seeds},
                       stage_seconds_per_seed={str(s): stage_seconds[s] for s in seeds})
        os.replace(tmp / "manifest.json", tmp / f"{name}.manifest.json")
    return medians


def main():
    p = make_parser(__doc__)
    p.add_argument("--articles", type=int, default=3, help="how many articles make the document (default 3)")
    p.add_argument("--first", type=int, default=0, help="index of the first article in the set (default 0)")
    p.add_argument("--seeds", type=int, nargs="+", default=[0], help="a pipeline run per seed (default 0)")
    p.add_argument("--output", default="results/fictional_knowledge",
                   help="results folder (default results/fictional_knowledge)")
    p.add_argument("--work", default="data/fictional_knowledge",
                   help="the document, its probes and each seed's project root (default data/fictional_knowledge)")
    p.add_argument("--set", help=f"the set's JSON (default {SET_FILES[0].relative_to(REPO_DIR)}, else "
                                 f"{SET_FILES[1]})")
    p.add_argument("--dry-run", action="store_true", help="build the document and probes, print what would run")
    args = p.parse_args()
    if len(set(args.seeds)) != len(args.seeds):
        raise UserError("--seeds must be different seeds")
    set_file = Path(args.set).resolve() if args.set else default_set_file()
    # relative folders are the repository's, whatever the cwd and OMNILM_ROOT (each seed gets its own root)
    work, out = (Path(a) if Path(a).is_absolute() else REPO_DIR / a for a in (args.work, args.output))
    entries = load_articles(set_file, args.first, args.articles)
    stem = stem_of(args.first, args.articles)
    folder = work / stem
    made = write_inputs(entries, args.first, folder)
    pdf, questions = made["pdf"], made["questions"]
    n_probes = sum(1 for _ in questions.read_text().splitlines())
    markdown_text = (folder / f"{stem}.md").read_text()
    tokens, demo_tokens = token_count(markdown_text), token_count(
        (REPO_DIR / "10_stage1_cpt" / "demo_paper.md").read_text())
    size = (f"{tokens} tokens, {tokens / demo_tokens:.2f}x the demo paper's {demo_tokens}" if tokens and demo_tokens
            else f"{len(markdown_text.split())} words")
    print(f"document: {pdf} ({args.articles} articles {args.first}-{args.first + args.articles - 1}, "
          f"{made['pages']} pages, {size}"
          + ("" if made["hyphenated"] else "; laid out with no word split at line ends: stage 10 could not undo "
             "every hyphen of the hyphenated layout") + ")\nprobes: " + f"{questions} ({n_probes}: "
          + ", ".join(f"{sum(len(e[f'{k}_input']) for e in entries)} {k}" for k in PROBE_KINDS) + ")")
    if made["lost"]:
        print(f"note: {len(made['lost'])} piece(s) of the articles come back changed from the PDF's text "
              "(stage 10's cleaning):\n  " + "\n  ".join(f"article {args.first + n} {what}: {detail}"
                                                        for n, what, detail in made["lost"]))
    else:
        print("read back as stage 10 reads it: every paragraph whole, every mem probe followed by its target")
    name = f"fictional_knowledge_N{args.articles}" + (f"_from{args.first}" if args.first else "")
    if args.dry_run:
        print("would run, one after another:")
        for seed in args.seeds:
            root = seed_root(folder, seed)
            print(f"  seed {seed}: OMNILM_ROOT={root} PYTHONPATH={REPO_DIR} "
                  f"{shlex.join(pipeline_command(pdf, questions, root / 'seed.yaml'))}"
                  f"  (seed.yaml: seed: {seed}; log {root / 'pipeline.log'})")
        print(f"then read each seed's results/eval.csv and eval.json -> {out}/{name}.csv, .md, .png, .manifest.json")
        return 0
    rows, seconds, stage_seconds = [], {}, {}
    for seed in args.seeds:
        root = seed_root(folder, seed)
        seconds[seed], stage_seconds[seed] = run_seed(seed, pdf, questions, root)
        rows += seed_rows(seed, root / "results")
    from omnilm.manifest import sha256_file

    inputs = {"set": str(set_file), "set_sha256": sha256_file(set_file), "pdf": str(pdf),
              "pdf_sha256": sha256_file(pdf), "hyphenated_layout": made["hyphenated"],
              "changed_by_cleaning": [[args.first + n, what, detail] for n, what, detail in made["lost"]],
              "questions": str(questions), "questions_sha256": sha256_file(questions),
              "roots": {str(s): str(seed_root(folder, s)) for s in args.seeds}}
    write_results(out, name, rows, args.seeds, seconds, stage_seconds, args, inputs)
    print((out / f"{name}.md").read_text() + f"-> {out}/{name}.csv, .md, .png, .manifest.json")
    return 0


if __name__ == "__main__":
    run_main(main)
