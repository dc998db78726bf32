"""Compare mode of the chat app, without the UI: one question, two or three stages
(the base and adapters of one loaded base model), answered one after another.

The stages share one base in memory (ModelHolder + omnilm.adapter_switch): each
answer switches its adapter on, so comparing costs no second model. When the
question is one of the evaluation questions, each answer gets stage 30's verdict
(omnilm.scoring: every key fact present). Every answer is stored in the chat log
with its stage and the id of its comparison."""
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from omnilm import catalog
from omnilm.chat_session import Reply, stream_reply
from omnilm.errors import UserError

BASE = "base"
MIN_STAGES, MAX_STAGES = 2, 3


@dataclass(frozen=True)
class Stage:
    name: str              # "base" or the adapter's folder name
    adapter: Path = None   # None: the plain base

    @property
    def adapter_label(self):
        """The log's adapter column, as the single chat writes it."""
        return self.adapter.name if self.adapter else "None"


def stage_choices(model):
    """({name: Stage} usable on `model` (a catalog.ModelEntry), base first; {name: why not}).
    An adapter is offered when it fits the base and is LoRA/DoRA (a full fine-tune
    would be a second copy of the weights)."""
    usable, refused = {BASE: Stage(BASE)}, {}
    for adapter in catalog.list_adapters():
        check = catalog.check_adapter(adapter, model)
        if not check.ok:
            refused[adapter.name] = check.reason
        elif adapter.config.get("fine_tune_type", "lora") == "full":
            refused[adapter.name] = "a full fine-tune, not LoRA: it cannot share the base"
        else:
            path = catalog.child_dir(adapter.path.parent, adapter.name, "adapter")
            usable[adapter.name] = Stage(adapter.name, path)
    return usable, refused


def default_stage_names(names):
    """base, then the newest-named CPT and SFT adapters when there are (up to three stages)."""
    picked = [BASE] if BASE in names else []
    for kind in ("cpt", "sft"):
        fitting = sorted(n for n in names if n != BASE and n.lower().endswith(kind))
        if fitting:
            picked.append(fitting[-1])
    for n in names:  # fewer than two: fill with the others
        if len(picked) >= MIN_STAGES:
            break
        if n not in picked:
            picked.append(n)
    return picked[:MAX_STAGES]


def check_stages(stages):
    names = [s.name for s in stages]
    if not MIN_STAGES <= len(stages) <= MAX_STAGES:
        raise UserError(f"compare needs {MIN_STAGES} or {MAX_STAGES} stages, got {len(stages)}")
    if len(set(names)) != len(names):
        raise UserError(f"a stage is picked twice: {', '.join(names)}")
    return stages


# ---- the evaluation questions, scored with stage 30's rule

def question_files():
    from omnilm.paths import CONTROL_QUESTIONS, DEMO_QUESTIONS

    return [DEMO_QUESTIONS, CONTROL_QUESTIONS]


@lru_cache(maxsize=4)
def _question_index(files, _stamps):
    from omnilm.evaluation import load_questions
    from omnilm.scoring import normalize

    index = {}
    for f in files:
        if Path(f).is_file():
            for q in load_questions(f):
                index.setdefault(normalize(q["question"]), q)
    return index


def evaluation_question(question, files=None):
    """The evaluation question (its dict, with key_facts) this text asks, else None.
    Matched after stage 30's normalization, so case, spacing and punctuation do not
    matter. The files are read again when they change."""
    from omnilm.scoring import normalize

    files = tuple(str(f) for f in (files or question_files()))
    stamps = tuple(Path(f).stat().st_mtime_ns if Path(f).is_file() else 0 for f in files)
    return _question_index(files, stamps).get(normalize(question))


def verdict(answer, q):
    """{"correct", "found", "missing"} of an answer to evaluation question `q`."""
    from omnilm.scoring import score_answer

    correct, found, missing = score_answer(answer, q["key_facts"])
    return {"correct": correct, "found": found, "missing": missing}


def verdict_line(v):
    if v["correct"]:
        return "holds every key fact: " + "; ".join(v["found"])
    return "misses " + "; ".join(v["missing"]) + (f" (has {'; '.join(v['found'])})" if v["found"] else "")


# ---- answering

def stream_stages(holder, model_dir, stages, messages, max_tokens=256, temperature=0.0, top_p=1.0, replies=None):
    """Yield (stage index, Reply) after each token, stage after stage, each on the one
    base with its adapter switched on. Closing the generator (Stop) ends the answer in
    progress (marked stopped) and skips the stages not yet begun (no tokens)."""
    replies = replies if replies is not None else [Reply() for _ in stages]
    for i, stage in enumerate(stages):
        with holder.using(model_dir, stage.adapter) as (model, tokenizer):
            tokens = stream_reply(model, tokenizer, messages, max_tokens, temperature, top_p, reply=replies[i])
            try:
                for reply in tokens:
                    yield i, reply
            finally:
                tokens.close()


def compare(holder, model_dir, stages, question, max_tokens=256, temperature=0.0, top_p=1.0, system_prompt=""):
    """Every stage's whole answer to one question: [Reply], in stage order (no UI, no log)."""
    from omnilm.chat_session import build_messages

    replies = [Reply() for _ in check_stages(stages)]
    messages = build_messages([], question, system_prompt, multi_turn=False)
    for _ in stream_stages(holder, model_dir, stages, messages, max_tokens, temperature, top_p, replies):
        pass
    return replies


def log_answers(model_name, stages, replies, question, opts, compare_id):
    """Store each answer that began, with its stage and the comparison's id (log only:
    a comparison is not a conversation). Returns how many were stored."""
    from omnilm import chat_store
    from omnilm.chat_session import exchange_row

    stored = 0
    for stage, reply in zip(stages, replies):
        if reply.recorded or not (reply.finish_reason or reply.stopped):
            continue  # already stored, or a stage that never began (Stop came first)
        row = exchange_row((model_name, stage.adapter_label), opts, question, reply)
        chat_store.add_exchange({**row, "stage": stage.name, "compare_id": compare_id}, stats=reply.stats_line())
        reply.recorded = True
        stored += 1
    return stored
