"""Replay data against forgetting: the base model's own greedy answers to general questions.

Training on one document teaches a small model to answer everything with the
document's sentences. Mixing in the model's own answers to everyday questions
(self-distillation) keeps its general behaviour at no cost in quality: the
targets are what it already says. The pairs are generated once, by stage 10,
into `replay.jsonl` next to the chunks; stage 10 mixes them into the CPT text and
stage 20 into both SFT splits: disjoint pairs in validation make the best-weights
choice see forgetting (their loss rises as general answers drift), not only the
document's loss, which keeps falling while the model memorizes."""
import random
from collections import Counter

from omnilm.chunking import CLOSERS
from omnilm.errors import UserError
from omnilm.jsonl import read_jsonl
from omnilm.paths import display
from omnilm.qa_filters import check_leakage, check_length, find_near_duplicate, normalize_text, split_sentences
from omnilm.think import split_reasoning

REPLAY_FILE = "replay.jsonl"
CONTROL_SIMILARITY = 0.6  # as loose as the paraphrase hold-out: no reworded control question gets in
MAX_WORDS = 20  # a small model's long answers ramble; short ones teach it to answer and stop
SENTENCE_ENDS = (".", "!", "?", "。")  # Korean "다." and "요." end in "." too
# Each answer at most this many times per CPT epoch; the demo's kept answers reach their
# share of the rows within that (docs/experiments/2026-12-01-replay-share.md).
MAX_PASSES = 4


def load_replay_questions(path, control=()):
    """(questions, dropped): one question per line ('#' lines and blanks skipped),
    without repeats and without near-duplicates of the evaluation's control
    questions (those measure forgetting, so they must stay unseen)."""
    if not path.is_file():
        raise UserError(f"replay questions {display(path)} do not exist")
    questions, dropped = [], Counter()
    for line in path.read_text().splitlines():
        q = normalize_text(line)
        if not q or q.startswith("#"):
            continue
        if find_near_duplicate(q, control, CONTROL_SIMILARITY):
            dropped["near_control_question"] += 1
        elif q in questions:
            dropped["repeated"] += 1
        else:
            questions.append(q)
    return questions, dict(dropped)


# Words that name no topic: a control question may share these with a replay question
# (stems, as content_words gives them). Any other shared word is a shared topic.
TOPIC_FREE = {"call", "name", "nam", "known", "first", "main", "largest", "biggest", "smallest", "make", "made",
              "used", "use", "usually", "often", "world", "people", "person", "kind", "type", "common", "part",
              "number", "word", "mean"}


def shared_topics(question, replay_questions):
    """The topic words (content-word stems) `question` shares with any replay question:
    the broad control must measure forgetting on what replay never rehearses, so it
    may share none ('capital of Peru' beside replay's capitals shares 'capital')."""
    from omnilm.qa_filters import content_words

    replayed = {w for q in replay_questions for w in content_words(q)}
    return sorted(set(content_words(question)) & replayed - TOPIC_FREE)


def leading_sentences(text, max_words, finished_only):
    """The answer's first whole sentences, at most `max_words` words in all ('' when
    even the first is longer). A prefix of a greedy answer is still exactly what the
    model says; `finished_only` drops a last sentence the token limit cut short."""
    sentences = split_sentences(text)
    if finished_only and sentences and not sentences[-1].rstrip(CLOSERS).endswith(SENTENCE_ENDS):
        sentences = sentences[:-1]
    kept, words = [], 0
    for sentence in sentences:
        words += len(sentence.split())
        if words > max_words:
            break
        kept.append(sentence)
    return " ".join(kept)


def select_answers(questions, texts, truncated):
    """(kept [{question, answer}], dropped [{question, answer, reason}]): a long answer,
    or one the token limit cut, keeps its first whole sentences (up to MAX_WORDS words;
    such pairs carry "shortened": true); what is left must pass the leakage filters of
    the document pairs. On the demo this keeps about twice as many answers as keeping
    whole answers only, so the replay share needs fewer repeats
    (docs/experiments/2026-12-01-replay-share.md)."""
    kept, dropped = [], []
    for q, text, cut in zip(questions, texts, truncated):
        full = normalize_text(split_reasoning(text)[0])
        too_long = past_max_words(full)  # "long" even when the token limit cut it after that
        answer = leading_sentences(full, MAX_WORDS, finished_only=cut) if cut or too_long else full
        reason = ("long" if too_long else "truncated") if not answer else check_length(q, answer) or check_leakage(q, answer)
        if reason:
            dropped.append({"question": q, "answer": full, "reason": reason})
        else:
            kept.append({"question": q, "answer": answer, **({"shortened": True} if answer != full else {})})
    return kept, dropped


def past_max_words(text):
    """True once an answer's first sentences that select_answers keeps are settled (and
    what select_answers calls long): it
    has more than MAX_WORDS words, so no later word can join them (the sentence running
    past the limit is never kept). Generation can stop there: a greedy answer's prefix
    is the answer's own start, and it is treated as cut, which changes nothing, since
    the sentence the cut falls in is the one running past the limit."""
    return len(normalize_text(split_reasoning(text)[0]).split()) > MAX_WORDS


def generate_replay(model, tokenizer, questions, max_tokens=64, batch_size=16, bar=None, stop_when_settled=True):
    """GenerationRun: greedy answers, batched, each prompt tokenized exactly as it
    appears inside a training example (see chat.prompt_ids), each ended as soon as
    what select_answers keeps of it is settled (past_max_words); stop_when_settled=False
    lets every answer run to its end or the token limit (what the tests compare against;
    docs/experiments/2026-12-02-replay-stop.md)."""
    from omnilm.chat import prompt_ids
    from omnilm.qa_generation import generate_batched

    prompts = [prompt_ids(tokenizer, [{"role": "user", "content": q}]) for q in questions]
    return generate_batched(model, tokenizer, prompts, max_tokens=max_tokens, batch_size=batch_size, bar=bar,
                            enough=past_max_words if stop_when_settled else None)


def replay_texts(tokenizer, pairs, max_tokens, rows=None, seed=0):
    """CPT rows: each question and its answer as plain text, packed into rows of at most
    `max_tokens` tokens so a row weighs about as much as a document chunk. The first
    pass keeps file order; when `rows` asks for more than one pass makes, further passes
    (at most MAX_PASSES in all, each in a new seeded order, so rows differ) fill up to it.

    Plain text, not the chat template: CPT puts loss on every token, so packed chats
    taught the template's boilerplate instead of the answers. Measured on the demo, the
    CPT model then answered chat prompts with '</think>' over and over, or with the
    default system prompt. SFT, which masks the prompt, keeps the chat form."""
    def count_tokens(text):
        return len(tokenizer.encode(text, add_special_tokens=False))

    texts = [f"{p['question']}\n{p['answer']}" for p in pairs]
    out = pack_texts(count_tokens, texts, max_tokens)
    if rows is None:
        return out
    rng = random.Random(seed)
    for _ in range(MAX_PASSES - 1):
        if len(out) >= rows or not texts:
            break
        out += pack_texts(count_tokens, rng.sample(texts, len(texts)), max_tokens)
    return out[:rows]


def pack_texts(count_tokens, texts, max_tokens):
    """Texts packed in order into rows of at most `max_tokens` tokens, a blank line apart."""
    rows, current, size = [], "", 0
    for text in texts:
        text += "\n\n"
        n = count_tokens(text)
        if current and size + n > max_tokens:
            rows.append(current.rstrip())
            current, size = "", 0
        current, size = current + text, size + n
    return rows + ([current.rstrip()] if current else [])


def read_replay(folder):
    """The pairs stage 10 wrote next to the chunks ([] when it wrote none)."""
    path = folder / REPLAY_FILE
    if not path.is_file():
        return []
    pairs = []
    for n, row in enumerate(read_jsonl(path, "replay pairs"), 1):
        if not (isinstance(row.get("question"), str) and isinstance(row.get("answer"), str)):
            raise UserError(f"replay pairs {display(path)} line {n} needs \"question\" and \"answer\"")
        pairs.append({"question": row["question"], "answer": row["answer"]})
    return pairs


def share_count(train_rows, share):
    """How many replay items (CPT rows, SFT pairs) make `share` (0 <= share < 1) of the
    final train set beside `train_rows` others."""
    return round(share / (1 - share) * train_rows) if share > 0 else 0


def replay_count(available, train_rows, share):
    """share_count, capped by the `available` items."""
    return min(available, share_count(train_rows, share))


def split_replay(pairs, train_rows, valid_rows, share, seed=0):
    """(train, valid): disjoint replay pairs, each `share` of its split's final rows;
    when there are too few, both splits shrink in proportion (validation needs some to
    see forgetting). The same pairs for the same seed, in file order."""
    n_train, n_valid = (replay_count(len(pairs), rows, share) for rows in (train_rows, valid_rows))
    if n_train + n_valid > len(pairs):
        n_valid = round(len(pairs) * valid_rows / (train_rows + valid_rows))
        n_train = len(pairs) - n_valid
    order = random.Random(seed).sample(range(len(pairs)), n_train + n_valid)
    return [pairs[i] for i in sorted(order[:n_train])], [pairs[i] for i in sorted(order[n_train:])]
