"""Question/answer pairs written by a model: prompts, batched generation, strict parsing.

Each chunk is cut into `per_chunk` windows of consecutive sentences, and each window
gets one prompt in a different style, so the prompts stay short (prefill dominates
on CPU) and ask about different facts. The assistant turn is primed with
"Question:" so even a small model starts in the expected format; the parser then
accepts only complete `Question: ...?` / `Answer: ...` pairs."""
import re
import time
from dataclasses import dataclass, field

from omnilm.qa_filters import split_sentences
from omnilm.think import split_reasoning

STYLES = (
    ("definition", "what a named method, model or benchmark is"),
    ("number", "a number or quantity"),
    ("purpose", "what something does or why it is used"),
)
PRIMER = "Question:"
INSTRUCTION = ("Text:\n{window}\n\nWrite one question about {focus} stated in the text above, and its answer.\n"
               "Use exactly this format:\nQuestion: <the question>\nAnswer: <one full sentence>")
MARKER = re.compile(r"^[ \t]*(?:[-*][ \t]*|\d+[.)][ \t]*)?(?:\*\*)?(question|answer|q|a)[ \t]*\d*[ \t]*(?:\*\*)?[ \t]*:(?:\*\*)?",
                    re.I | re.M)


def windows(text, n):
    """`n` windows of consecutive sentences covering the text (fewer if it is short)."""
    sentences = split_sentences(text)
    n = max(1, min(n, len(sentences)))
    size = -(-len(sentences) // n)
    return [" ".join(sentences[i:i + size]) for i in range(0, len(sentences), size)]


def build_prompts(tokenizer, chunks, per_chunk):
    """[{chunk_id, pages, style, window, prompt}] for every window of every chunk;
    styles rotate over the whole run so each chunk sees different ones."""
    from omnilm.chat import chat_prompt

    jobs = []
    for chunk in chunks:
        for window in windows(chunk["text"], per_chunk):
            style, focus = STYLES[len(jobs) % len(STYLES)]
            message = INSTRUCTION.format(window=window, focus=focus)
            prompt = chat_prompt(tokenizer, [{"role": "user", "content": message}]) + PRIMER
            jobs.append({"chunk_id": chunk["id"], "pages": chunk.get("pages", []), "style": style,
                         "window": window, "prompt": prompt})
    return jobs


@dataclass
class GenerationRun:
    texts: list
    truncated: list
    prompt_tokens: int = 0
    generated_tokens: int = 0
    seconds: float = 0.0
    stats: dict = field(default_factory=dict)

    @property
    def tokens_per_second(self):
        return self.generated_tokens / self.seconds if self.seconds else 0.0


def generate_batched(model, tokenizer, prompts, max_tokens=96, batch_size=16, temp=0.0, seed=0, bar=None,
                     enough=None, prefill_size=8):
    """Every prompt (a string, or its token ids when the caller built them) through
    mlx-lm's BatchGenerator (continuous batching); `bar` ticks once per finished
    prompt. Greedy by default; temp > 0 samples with `seed`. `enough(text)`, when
    given, ends a prompt's generation as soon as it is true of the text so far, which
    then counts as cut by the limit (truncated). `max_tokens` and `enough` may be
    lists, one per prompt: prompts answered differently share one batch, which keeps
    its rows full until the very end. `prefill_size` prompts are
    prefilled at a time."""
    import mlx.core as mx
    from mlx_lm.sample_utils import make_sampler

    from omnilm.mlx_lm_api import batch_generator

    mx.random.seed(seed)
    ids = [tokenizer.encode(p, add_special_tokens=False) if isinstance(p, str) else list(p) for p in prompts]
    gen = batch_generator(model, stop_tokens=[[t] for t in tokenizer.eos_token_ids],
                         sampler=make_sampler(temp=temp), completion_batch_size=batch_size,
                         prefill_batch_size=min(batch_size, prefill_size))
    started = time.perf_counter()
    limits = list(max_tokens) if isinstance(max_tokens, (list, tuple)) else [max_tokens] * len(ids)
    checks = list(enough) if isinstance(enough, (list, tuple)) else [enough] * len(ids)
    uids = gen.insert(ids, limits)
    check = dict(zip(uids, checks))
    tokens = {uid: [] for uid in uids}
    finish = {}
    try:
        with gen.stats() as stats:
            while responses := gen.next_generated():
                for r in responses:
                    if r.finish_reason != "stop":
                        tokens[r.uid].append(r.token)
                    if r.finish_reason is None and check[r.uid] and check[r.uid](tokenizer.decode(tokens[r.uid])):
                        gen.remove([r.uid])
                        finish[r.uid] = "length"
                    elif r.finish_reason is not None:
                        finish[r.uid] = r.finish_reason
                    if r.uid in finish and bar is not None:
                        bar.update(1)
    finally:
        gen.close()
    seconds = time.perf_counter() - started
    return GenerationRun(
        texts=[tokenizer.decode(tokens[u]) for u in uids],
        truncated=[finish.get(u) == "length" for u in uids],
        prompt_tokens=sum(map(len, ids)), generated_tokens=sum(len(t) for t in tokens.values()),
        seconds=seconds, stats={"prompt_seconds": round(stats.prompt_time, 2),
                                "decode_seconds": round(stats.decode_time, 2),
                                "peak_memory_gb": round(stats.peak_memory, 3)})


@dataclass
class Parsed:
    pairs: list  # [(question, answer)], each complete
    error: str = None  # why nothing (or not everything) could be kept


def parse_qa(text, truncated=False, primed=True):
    """Complete (question, answer) pairs out of a model's output.

    Accepted: `Question: ...` then `Answer: ...` at line starts (also `Q:`/`A:`,
    bold or numbered markers), several pairs in a row, a reasoning block (ignored).
    Malformed output is never half-kept: a stray marker order, an empty part or
    text after the last answer voids the whole output; a generation cut by the
    token limit loses its last (unfinished) pair."""
    if primed:  # the primer is part of the output's format, so it goes back before parsing
        text = PRIMER + " " + text.lstrip(" ")
    text, _ = split_reasoning(text)
    hits = list(MARKER.finditer(text))
    if not hits:
        return Parsed([], "no_markers")
    parts = []
    for i, m in enumerate(hits):
        end = hits[i + 1].start() if i + 1 < len(hits) else len(text)
        parts.append(("q" if m.group(1).lower().startswith("q") else "a", text[m.end():end].strip()))
    if truncated:
        parts = parts[:-1]
        if parts and parts[-1][0] == "q":
            parts = parts[:-1]
        if not parts:
            return Parsed([], "truncated")
    if any(kind != "qa"[i % 2] for i, (kind, _) in enumerate(parts)):
        return Parsed([], "marker_order")
    if len(parts) % 2:
        return Parsed([], "question_without_answer")
    pairs = [(q, a) for (_, q), (_, a) in zip(parts[::2], parts[1::2])]
    if any(not q or not a for q, a in pairs):
        return Parsed([], "empty_part")
    if not truncated and "\n\n" in pairs[-1][1]:
        return Parsed([], "trailing_text")  # rambling after the last answer
    return Parsed(pairs)
