"""The chat app's logic without the UI: sampling settings, the messages sent to the
model, the one loaded model shared by all sessions, and the streamed reply that
stops as soon as its reader stops reading."""
import contextlib
import gc
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from omnilm.chat import load_model
from omnilm.errors import UserError
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


def exchange_row(names, opts, question, reply):
    """The log row of one answer: names = (model, adapter), opts = the app's settings."""
    return {"model": names[0], "adapter": names[1], "temperature": opts["temperature"], "top_p": opts["top_p"],
            "max_tokens": opts["max_tokens"], "multi_turn": opts["multi_turn"], "system_prompt": opts["system_prompt"],
            "prompt": question, "answer": reply.answer, "reasoning": reply.reasoning, "tokens": reply.tokens,
            "tokens_per_s": round(reply.tokens_per_s, 2), "peak_memory_gb": round(reply.peak_memory_gb, 3),
            "duration_s": round(reply.duration_s, 2), "time_to_first_token_s": round(reply.time_to_first_token_s, 3),
            "stopped": reply.stopped}


class _NoLock:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


_NO_LOCK = _NoLock()


class ModelHolder:
    """The one base model in memory, shared by every browser session of an app process,
    with its adapters switched on that one copy (omnilm.adapter_switch). Loading another
    base first drops the current one, so two bases are never held."""

    def __init__(self):
        self.lock = threading.RLock()  # held while loading, switching and decoding
        self.key = None
        self.model = self.tokenizer = self.switcher = None
        self.seconds = 0.0

    def get(self, model_dir, adapter_dir=None, on_progress=None, force=False):
        """(model, tokenizer) with `adapter_dir` switched on (None: the plain base)."""
        from omnilm.adapter_switch import AdapterSwitcher

        with self.lock:
            if force or self.key is None or self.key[0] != str(model_dir):
                self.unload()
                started = time.perf_counter()
                self.model, self.tokenizer = load_model(model_dir, None, on_progress)
                self.switcher = AdapterSwitcher(self.model)
                self.key, self.seconds = (str(model_dir), None), time.perf_counter() - started
            if adapter_dir is not None and not (Path(adapter_dir) / "adapters.safetensors").exists():
                raise UserError(f"{adapter_dir} is not an adapter folder (no adapters.safetensors)")
            self.switcher.use(adapter_dir)
            self.key = (str(model_dir), str(adapter_dir) if adapter_dir else None)
            return self.model, self.tokenizer

    @contextlib.contextmanager
    def using(self, model_dir, adapter_dir=None):
        """Hold the model with this adapter switched on until the block ends: another
        session cannot switch it away in the middle of an answer."""
        with self.lock:
            yield self.get(model_dir, adapter_dir)

    def unload(self):
        import mlx.core as mx

        with self.lock:
            self.key = None
            self.model = self.tokenizer = self.switcher = None
            gc.collect()
            mx.clear_cache()
