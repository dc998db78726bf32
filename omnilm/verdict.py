"""What the evaluation tells a reader: every accuracy with its count and a 90% Wilson
interval, how much of the paper bleeds into general answers, and the stage to use.

The stage is picked by evidence the training never shaped: the hand-written held-out,
paraphrase and reader questions, the independent-form questions and the cloze probes
(pooled), provided it keeps the base's general knowledge (broad control within
CONTROL_MARGIN of the first stage) and its answers do not drift into the paper's
vocabulary (bleed at most BLEED_LIMIT). Trained questions never weigh in: a stage
that recites its training set is not the better stage for that."""
import math
import re
from pathlib import Path

from omnilm.scoring import normalize

KINDS = ("trained", "heldout_fact", "paraphrase", "reader", "independent", "cloze", "control")
OPEN_BOOK = "open_book"
OPEN_BOOK_NOTE = (f"{OPEN_BOOK} is the upper bound, not a trained stage: the first stage's model (no adapter) "
                  "with each question's source passage in the prompt (NLL given it too), on the untrained "
                  "questions that carry one. A miss there is a model too small to answer, not missing knowledge.")

Z90 = 1.6448536269514722  # two-sided 90%: the standard normal's 95th percentile
KNOWLEDGE_KINDS = ("heldout_fact", "paraphrase", "reader", "independent", "cloze")
CONTROL_MARGIN = 0.05
BLEED_LIMIT = 0.02


def wilson(correct, n, z=Z90):
    """(low, high) Wilson score interval of correct/n; (0, 1) when nothing was asked."""
    if n == 0:
        return 0.0, 1.0
    p = correct / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def figure(correct, n):
    """'0.19 (3/16, 0.08-0.39)': the share, its count and its 90% interval."""
    lo, hi = wilson(correct, n)
    return f"{correct / n:.2f} ({correct}/{n}, {lo:.2f}-{hi:.2f})" if n else "-"


# ------------------------------------------------------------------ bleed

def paper_terms(facts):
    """The paper's own vocabulary, normalized: every fact's answers and the names in its
    subject that no general text would use (an acronym, a CamelCase word, a word with a
    digit). A whole number of one or two digits and a number word are left out: general
    answers use them all the time ('a hand has 5 fingers')."""
    from omnilm.fact_rules import NUMBER_WORDS

    terms = set()
    for f in facts:
        for a in f.get("accept", []):
            a = normalize(a)
            if len(a) > 1 and a not in NUMBER_WORDS and not (a.isdigit() and len(a) < 3):
                terms.add(a)
        for word in re.findall(r"[\w-]+", f.get("subject") or ""):
            if re.search(r"\d", word) or re.fullmatch(r"[A-Z][A-Z0-9-]+", word) or re.search(r"[a-z][A-Z]", word):
                terms.add(normalize(word))
    return terms


def terms_in(text, terms):
    padded = f" {normalize(text)} "
    return {t for t in terms if f" {t} " in padded}


def bleed_terms(answer, reference_answer, question, terms):
    """The paper's terms in `answer` that neither the reference stage's answer to the same
    question nor the question itself uses."""
    return terms_in(answer, terms) - terms_in(reference_answer, terms) - terms_in(question, terms)


# ------------------------------------------------------------------ the pick

def knowledge(s):
    """(correct, asked) over the kinds the training never shaped, pooled."""
    return (sum(s.get(f"{k}_k", 0) for k in KNOWLEDGE_KINDS), sum(s.get(f"{k}_n", 0) for k in KNOWLEDGE_KINDS))


def _share(pair):
    return pair[0] / pair[1] if pair[1] else 0.0


def recommend(summary, skip=("open_book",)):
    """(stage name, [sentences saying why and what got worse]) from a summary of
    evaluate's (its first stage is the reference: the base)."""
    stages = [s for s in summary if s not in skip]
    if not stages:
        return None, []
    ref = summary[stages[0]]
    ref_control = ref.get("control")
    notes = []

    def keeps_base(name):
        s = summary[name]
        control_ok = ref_control is None or s.get("control", ref_control) >= ref_control - CONTROL_MARGIN
        return control_ok and s.get("bleed", 0.0) <= BLEED_LIMIT

    def net(name):  # knowledge less what was lost, for when every taught stage forgets
        s = summary[name]
        lost = max(0.0, (ref_control or 0.0) - s.get("control", ref_control or 0.0))
        return _share(knowledge(s)) - lost - s.get("bleed", 0.0)

    eligible = [n for n in stages if keeps_base(n)]
    if eligible and eligible != stages[:1] or len(stages) == 1:
        pick = max(eligible or stages, key=lambda n: (_share(knowledge(summary[n])), -stages.index(n)))
    else:
        pick = max(stages, key=lambda n: (net(n), -stages.index(n)))
        notes.append(f"every taught stage loses general knowledge (broad control more than {CONTROL_MARGIN:.2f} below "
                     f"{stages[0]}) or bleeds the paper into general answers (over {BLEED_LIMIT:.0%}): picked by "
                     "paper knowledge less what was lost")
    for earlier, later in zip(stages[1:], stages[2:]):
        a, b = knowledge(summary[earlier]), knowledge(summary[later])
        if b[1] and _share(b) < _share(a):
            notes.append(f"{later.upper()} answers fewer of the paper's facts than {earlier.upper()} "
                         f"({_share(b):.2f} vs {_share(a):.2f} of {b[1]} independent questions and probes)"
                         + (f": use the {earlier} stage" if pick == earlier else ""))
    for name in stages[1:]:
        s = summary[name]
        if ref_control is not None and "control" in s and s["control"] < ref_control - CONTROL_MARGIN:
            notes.append(f"{name.upper()} answers fewer general questions than {stages[0]} "
                         f"({s['control']:.2f} vs {ref_control:.2f}): it forgets")
        if s.get("bleed", 0.0) > BLEED_LIMIT:
            notes.append(f"{name.upper()} puts the paper's terms into {s['bleed']:.0%} of its general answers "
                         f"({s['bleed_k']}/{s['bleed_n']})")
    overlap = [n for n in stages if n != pick and knowledge(summary[n])[1] and
               wilson(*knowledge(summary[n]))[1] >= wilson(*knowledge(summary[pick]))[0]
               and _share(knowledge(summary[n])) < _share(knowledge(summary[pick]))]
    if overlap:
        notes.append(f"{pick}'s lead over {', '.join(overlap)} is within the 90% intervals: ask more questions "
                     "to be sure")
    return pick, notes


# ------------------------------------------------------------------ what is written

def _cell(text, width=70):
    text = " ".join(str(text).split()).replace("|", "\\|")
    return text if len(text) <= width else text[:width - 1] + "…"


def _verdict(r):
    if r["correct"]:
        return "✅ correct"
    return "❌ wrong" + (f" (missing: {r['facts_missing']})" if r.get("facts_missing") else "")


KIND_NOTES = {
    "trained": "the golden questions, trained verbatim: recitation, never used to pick a stage",
    "heldout_fact": "hand-written, on facts no training row asks about",
    "paraphrase": "hand-written, trained facts in other words",
    "reader": "a reader's hand-written questions on the paper",
    "independent": "made from the facts in question forms no training row has (fill in the blank, true or false)",
    "cloze": "a wording of a fact cut before its answer, completed as plain text (no chat template)",
    "control": "broad general knowledge the base answers: forgetting shows here",
}


def write_markdown(rows, summary, recommendation, path):
    """The verdict first (the stage to use and why), the figures, then every answer."""
    stages = list(summary)
    lines = ["# Evaluation: which stage to use", ""] + verdict_lines(recommendation) + [
             "", "## Figures", "", *summary_table(summary), "",
             "Verdict: correct when the answer holds every key fact (an accepted variant, not negated), "
             "scored automatically. NLL (hand-written kinds only): the reference answer's mean negative "
             "log-likelihood per token given the question (lower is better). Greedy decoding through the chat "
             "template, reasoning skipped; cloze probes without it.", "",
             "## Answers", "", "| kind | question | " + " | ".join(stages) + " |", "|---" * (len(stages) + 2) + "|"]
    by_q = {}
    for r in rows:
        by_q.setdefault((r["kind"], r["question"]), {})[r["stage"]] = r
    for (kind, question), per_stage in by_q.items():
        cells = []
        for st in stages:
            r = per_stage.get(st)
            nll = f"NLL {r['answer_nll']:.2f}, " if r is not None and r["answer_nll"] is not None else ""
            bled = f" bleed: {r['bleed_terms']}" if r is not None and r.get("bleed_terms") else ""
            cells.append("" if r is None else f"{_cell(r['answer'], 60)} **{_verdict(r)}**{bled} "
                                              f"({nll}{r['generation_tps']:.0f} tok/s)")
        lines.append(f"| {kind} | {_cell(question, 50)} | " + " | ".join(cells) + " |")
    Path(path).write_text("\n".join(lines) + "\n")


def verdict_lines(recommendation):
    """The recommended stage and the sentences that explain it, as Markdown lines."""
    if not recommendation or not recommendation.get("stage"):
        return ["No stage to recommend: no stage was evaluated."]
    r = recommendation
    where = f"`{r['adapter']}` on `{r['model']}`" if r.get("adapter") else f"`{r['model']}` without an adapter"
    lines = [f"**Use {r['stage']}** ({where}): picked by the questions and probes the training never shaped, "
             "the broad control and the bleed, never by the trained questions."]
    return lines + [f"- {note}" for note in r.get("notes", [])]


def summary_table(summary):
    """Each figure per stage as 'share (correct/asked, 90% interval)', Markdown lines
    (eval.md and the pipeline report)."""
    kinds = [k for k in KINDS if any(f"{k}_n" in s for s in summary.values())]
    lines = ["| stage | paper knowledge (pooled) | " + " | ".join(kinds) + " | bleed | mean answer NLL | "
             "batch tok/s | peak GB |", "|---" * (len(kinds) + 6) + "|"]
    for st, s in summary.items():
        cells = [figure(s[f"{k}_k"], s[f"{k}_n"]) if f"{k}_n" in s else "-" for k in kinds]
        pooled = figure(*knowledge(s)) if knowledge(s)[1] else "-"
        bleed = f"{s['bleed']:.0%} ({s['bleed_k']}/{s['bleed_n']})" if "bleed" in s else "-"
        nll = f"{s['answer_nll']:.3f}" if s.get("answer_nll") is not None else "-"
        lines.append(f"| {st} | {pooled} | " + " | ".join(cells) + f" | {bleed} | {nll} | "
                     f"{s['generation_tps']:.1f} | {s['peak_memory_gb']:.2f} |")
    lines += ["", "Each figure: share correct (correct/asked, 90% Wilson interval). Paper knowledge pools "
              "heldout_fact, paraphrase, reader, independent and cloze: the evidence no training template shaped. "
              "Bleed: the share of control answers that use the paper's terms (fact answers, its names) that the "
              "first stage's answer to the same question does not."]
    lines += [f"- {k}: {KIND_NOTES[k]}" for k in kinds]
    return lines + (["", OPEN_BOOK_NOTE] if OPEN_BOOK in summary else [])


def write_chart(summary, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from omnilm.verdict import wilson

    stages = list(summary)
    labels = [f"{s}\n(upper bound)" if s == OPEN_BOOK else s for s in stages]
    kinds = [k for k in KINDS if any(k in s for s in summary.values())]  # a kind nobody was asked: no bars
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(13, 4))
    width = 0.8 / len(kinds)
    for i, kind in enumerate(kinds):
        xs = [x for x, s in enumerate(stages) if kind in summary[s]]
        ys = [summary[stages[x]][kind] for x in xs]
        bounds = [wilson(summary[stages[x]][f"{kind}_k"], summary[stages[x]][f"{kind}_n"]) for x in xs]
        err = [[max(0.0, y - lo) for y, (lo, _) in zip(ys, bounds)], [max(0.0, hi - y) for y, (_, hi) in zip(ys, bounds)]]
        ax1.bar([x + i * width for x in xs], ys, width, yerr=err, capsize=2, label=kind)
    ax1.set_xticks([x + 0.4 - width / 2 for x in range(len(stages))], labels)
    ax1.set_ylim(0, 1.05)
    ax1.set_ylabel("accuracy (90% interval)")
    ax1.set_title("Accuracy by question kind")
    ax1.legend(fontsize=7)
    with_bleed = [s for s in stages if "bleed" in summary[s]]
    ax2.bar(with_bleed, [summary[s]["bleed"] for s in with_bleed], color="firebrick")
    ax2.set_ylabel("share of control answers")
    ax2.set_title("Bleed: the paper's terms in general answers")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
