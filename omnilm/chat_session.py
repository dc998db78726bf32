"""The chat app's logic without the UI: sampling settings, the messages sent to the
model, the one loaded model shared by all sessions, and the streamed reply that
stops as soon as its reader stops reading."""
import gc
import threading
import time
from dataclasses import dataclass, field

from omnilm.chat import load_model
from omnilm.think import split_reasoning, split_streaming

MAX_TEMPERATURE = 2.0


def sampling(creative, temperature=0.7, top_p=0.95):
    """(temperature, top_p) actually used: without creativity, greedy decoding."""
    if not creative:
        return 0.0, 1.0
    return min(max(float(temperature), 0.0), MAX_TEMPERATURE), min(max(float(top_p), 0.01), 1.0)


def build_messages(history, question, system_prompt="", multi_turn=True):
    """Chat messages for the template. With multi-turn the earlier exchanges come
    along, answers only: a reasoning block never goes back to the model."""
    messages = [{"role": "system", "content": system_prompt.strip()}] if system_prompt.strip() else []
    if multi_turn:
        for turn in history:
            content = turn["content"]
            if turn["role"] == "assistant":
                content = split_reasoning(content)[0]  # defensive: stored answers are already clean
            if content:
                messages.append({"role": turn["role"], "content": content})
    messages.append({"role": "user", "content": question})
    return messages


@dataclass
class Reply:
    """A reply as it streams: raw text, its answer/reasoning split, and the figures."""
    text: str = ""
    answer: str = ""
    reasoning: str = ""
    thinking: bool = False
    tokens: int = 0
    prompt_tokens: int = 0
    tokens_per_s: float = 0.0
    peak_memory_gb: float = 0.0
    time_to_first_token_s: float = 0.0
    duration_s: float = 0.0
    finish_reason: str = ""
    stopped: bool = False
    recorded: bool = False   # set by the app once history and log hold it
    started: float = field(default_factory=time.perf_counter, repr=False)

    def stats_line(self):
        end = " (stopped)" if self.stopped else (" (max tokens reached)" if self.finish_reason == "length" else "")
        return (f"{self.duration_s:.1f} s · {self.tokens} tokens · {self.tokens_per_s:.1f} tok/s · "
                f"first token {self.time_to_first_token_s:.2f} s · peak {self.peak_memory_gb:.2f} GB{end}")


def stream_reply(model, tokenizer, messages, max_tokens=256, temperature=0.0, top_p=1.0, lock=None, reply=None):
    """Yield `reply` (a Reply, new if None) after each token. Closing the generator
    (the reader stops iterating: a stop button, a rerun) ends decoding at once; the
    reply is then marked stopped. `lock` (optional) is held while decoding."""
    import mlx.core as mx
    from mlx_lm import stream_generate
    from mlx_lm.sample_utils import make_sampler

    from omnilm.chat import prompt_ids

    prompt = prompt_ids(tokenizer, messages)  # the prefix a fine-tuned model saw in training
    sampler = make_sampler(temp=temperature, top_p=top_p if temperature > 0 else 1.0)
    reply = reply if reply is not None else Reply()
    with lock or _NO_LOCK:
        mx.reset_peak_memory()
        reply.started = time.perf_counter()
        tokens = stream_generate(model, tokenizer, prompt, max_tokens=max_tokens, sampler=sampler)
        try:
            for step in tokens:
                now = time.perf_counter()
                if reply.tokens == 0:
                    reply.time_to_first_token_s = now - reply.started
                reply.text += step.text
                reply.answer, reply.reasoning, reply.thinking = split_streaming(reply.text)
                reply.tokens, reply.prompt_tokens = step.generation_tokens, step.prompt_tokens
                reply.tokens_per_s, reply.peak_memory_gb = step.generation_tps, step.peak_memory
                reply.duration_s = now - reply.started
                reply.finish_reason = step.finish_reason or ""
                yield reply
        finally:
            tokens.close()  # frees the KV cache now, even when the reader left midway
            reply.stopped = not reply.finish_reason
            reply.answer, reply.reasoning = split_reasoning(reply.text)
            reply.thinking = False
            reply.duration_s = time.perf_counter() - reply.started


class _NoLock:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


_NO_LOCK = _NoLock()


class ModelHolder:
    """The one model (+ adapter) in memory, shared by every browser session of an app
    process. Loading another one first drops the current one, so two are never held."""

    def __init__(self):
        self.lock = threading.RLock()  # held while loading and while decoding
        self.key = None
        self.model = self.tokenizer = None
        self.seconds = 0.0

    def get(self, model_dir, adapter_dir=None, on_progress=None, force=False):
        key = (str(model_dir), str(adapter_dir) if adapter_dir else None)
        with self.lock:
            if force or key != self.key:
                self.unload()
                started = time.perf_counter()
                self.model, self.tokenizer = load_model(model_dir, adapter_dir, on_progress)
                self.key, self.seconds = key, time.perf_counter() - started
            return self.model, self.tokenizer

    def unload(self):
        import mlx.core as mx

        with self.lock:
            self.key = None
            self.model = self.tokenizer = None
            gc.collect()
            mx.clear_cache()

