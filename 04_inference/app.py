"""Chat with a text model (+ LoRA adapter) from models/ and adapters/, in the browser.

Examples:
  streamlit run 04_inference/app.py                  # from the repo root: localhost only
  OMNILM_ROOT=/data/omnilm streamlit run 04_inference/app.py

Answers stream token by token (Stop ends the generation), reasoning blocks are
hidden or shown collapsed, and every exchange is appended to
logs/inference_logs.csv (the History tab shows and downloads it). The logic
lives in omnilm.catalog, omnilm.chat_session and omnilm.chatlog.
"""
import time

import omnilm  # noqa: F401  (fast BLAS before mlx)
import streamlit as st

from omnilm import catalog, chatlog
from omnilm.chat_session import ModelHolder, Reply, build_messages, sampling, stream_reply
from omnilm.paths import adapters_dir, display, models_dir

NO_ADAPTER = "None"
LOOPBACK = ("localhost", "127.0.0.1", "::1")
STOP_WAIT_S = 60  # a stopped run ends at its next token; a long prompt may still be in prefill


@st.cache_resource
def shared_holder():
    """One holder per app process: every browser session chats with the same loaded model."""
    return ModelHolder()


def warn_if_exposed():
    if st.get_option("server.address") not in LOOPBACK:
        st.warning("This app listens on every network interface. Start it from the repo root "
                   "(its .streamlit/config.toml binds localhost) or pass --server.address localhost.")


def pick_model():
    models, skipped = catalog.list_models()
    note = catalog.skipped_note(skipped)
    if not models:
        st.sidebar.error("No text model under models/ yet: run ./run_pipeline.sh (or 00_extract) first.")
        if note:
            st.sidebar.caption(note)
        return None
    names = [m.name for m in models]
    name = st.sidebar.selectbox("Model", names, key="model")
    if note:
        st.sidebar.caption(note)
    return models[names.index(name)]


def pick_adapter(model):
    """(adapter entry or None, usable): an incompatible pick is explained, never loaded."""
    adapters = {a.name: a for a in catalog.list_adapters()}
    checks = {name: catalog.check_adapter(a, model) for name, a in adapters.items()}
    options = [NO_ADAPTER, *adapters]
    default = catalog.default_adapter(adapters.values(), model)
    name = st.sidebar.selectbox(
        "Adapter", options, index=options.index(default) if default else 0, key=f"adapter::{model.name}",
        format_func=lambda n: n if n == NO_ADAPTER or checks[n].ok else f"{n} (incompatible)",
        help="Newest fitting SFT adapter by default; each is checked against the chosen model.")
    if name == NO_ADAPTER:
        return None, True
    check = checks[name]
    if check.notes:
        st.sidebar.caption("; ".join(check.notes))
    if not check.ok:
        st.sidebar.error(f"{name} cannot be used with {model.name}: {check.reason}")
    return adapters[name], check.ok


def controls():
    side = st.sidebar
    creative = side.toggle("Enable creativity", value=False, key="creative",
                           help="Off: greedy decoding (temperature 0). On: sample with temperature and top-p.")
    if creative:
        temperature = side.slider("Temperature", 0.0, 2.0, 0.7, 0.05, key="temperature")
        top_p = side.slider("Top-p", 0.05, 1.0, 0.95, 0.05, key="top_p")
    else:  # shown, fixed and greyed out, so the user sees what is used
        temperature = side.slider("Temperature", 0.0, 2.0, 0.0, 0.05, key="temperature_off", disabled=True)
        top_p = side.slider("Top-p", 0.05, 1.0, 1.0, 0.05, key="top_p_off", disabled=True)
    temperature, top_p = sampling(creative, temperature, top_p)
    return {
        "temperature": temperature, "top_p": top_p,
        "max_tokens": side.slider("Max tokens", 16, 2048, 256, 16, key="max_tokens"),
        "system_prompt": side.text_area("System prompt", "", key="system_prompt",
                                        placeholder="Empty: the model's default system prompt"),
        "multi_turn": side.toggle("Multi-turn context", value=True, key="multi_turn",
                                  help="On: the whole conversation goes to the model. Off: only the current question."),
        "show_reasoning": side.toggle("Show reasoning", value=False, key="show_reasoning",
                                      help="Show <think> blocks collapsed under the answer (never sent back)."),
    }


def load(model, adapter, force):
    """(model, tokenizer) or None after a clear message; loads only when the pick changed."""
    holder = shared_holder()
    model_dir = catalog.child_dir(models_dir(), model.name, "model")  # the guard at the loading boundary
    adapter_dir = catalog.child_dir(adapters_dir(), adapter.name, "adapter") if adapter else None
    key = (str(model_dir), str(adapter_dir) if adapter_dir else None)
    label = model.name + (f" + {adapter.name}" if adapter else "")
    if holder.key == key and holder.model is not None and not force:
        st.sidebar.caption(f"Loaded: {label} ({holder.seconds:.1f} s)")
        return holder.model, holder.tokenizer
    with st.status(f"Loading {label}...", expanded=True) as status:
        bar = st.progress(0.0, text="starting")
        try:
            loaded = holder.get(model_dir, adapter_dir, force=force,
                                on_progress=lambda fraction, message: bar.progress(fraction, text=message))
        except Exception as e:  # any failure leaves the app usable: pick another model
            status.update(label=f"Could not load {label}", state="error")
            why = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            st.error(f"Could not load {label}: {why}")
            return None
        status.update(label=f"Loaded {label} in {holder.seconds:.1f} s", state="complete", expanded=False)
    return loaded


def show_turn(turn, show_reasoning):
    with st.chat_message(turn["role"]):
        if turn["role"] == "assistant" and show_reasoning and turn.get("reasoning"):
            with st.expander("Reasoning", expanded=False):
                st.markdown(turn["reasoning"])
        st.markdown(turn["content"] or "_(empty answer)_")
        if turn.get("stats"):
            st.caption(turn["stats"])


def answer(question, model, tokenizer, names, opts):
    """Stream one reply under the question; record it (history + log) even when stopped."""
    history = st.session_state.history
    messages = build_messages(history, question, opts["system_prompt"], opts["multi_turn"])
    history.append({"role": "user", "content": question})
    show_turn(history[-1], False)
    reply = st.session_state.in_flight = Reply()
    with st.chat_message("assistant"):
        reasoning_box, answer_box, stats_box = st.empty(), st.empty(), st.empty()
        stop_box = st.empty()
        stop_box.button("Stop", key="stop", icon=":material/stop_circle:")  # any click stops this run: that is the stop
        tokens = stream_reply(model, tokenizer, messages, opts["max_tokens"], opts["temperature"], opts["top_p"],
                              lock=shared_holder().lock, reply=reply)
        try:
            for reply in tokens:
                if opts["show_reasoning"] and reply.reasoning:
                    with reasoning_box.expander("Reasoning" + ("..." if reply.thinking else ""), expanded=False):
                        st.markdown(reply.reasoning)
                answer_box.markdown(reply.answer or ("_thinking..._" if reply.thinking else ""))
                stats_box.caption(f"{reply.tokens} tokens · {reply.tokens_per_s:.1f} tok/s")
        finally:
            # Also on Stop, when Streamlit ends this run at the next st call: so no st call
            # here (even st.session_state would raise again), only the captured history list.
            tokens.close()
            reply.stopped = reply.stopped or not reply.finish_reason
            record(history, question, reply, names, opts)
        stop_box.empty()
        stats_box.caption(history[-1]["stats"])


def wait_for_stopped_reply():
    """After Stop, the new run starts while the stopped one is still ending (fast
    reruns): wait until it has recorded its partial answer, so the history shows it."""
    reply = st.session_state.pop("in_flight", None)
    if reply is None or reply.recorded:
        return
    with st.spinner("Stopping the answer..."):
        deadline = time.monotonic() + STOP_WAIT_S
        while not reply.recorded and time.monotonic() < deadline:
            time.sleep(0.05)


def record(history, question, reply, names, opts):
    history.append({"role": "assistant", "content": reply.answer, "reasoning": reply.reasoning,
                    "stats": reply.stats_line()})
    try:
        chatlog.append_row({
            "model": names[0], "adapter": names[1], "temperature": opts["temperature"], "top_p": opts["top_p"],
            "max_tokens": opts["max_tokens"], "multi_turn": opts["multi_turn"], "system_prompt": opts["system_prompt"],
            "prompt": question, "answer": reply.answer, "reasoning": reply.reasoning, "tokens": reply.tokens,
            "tokens_per_s": round(reply.tokens_per_s, 2), "peak_memory_gb": round(reply.peak_memory_gb, 3),
            "duration_s": round(reply.duration_s, 2), "time_to_first_token_s": round(reply.time_to_first_token_s, 3),
            "stopped": reply.stopped})
    finally:
        reply.recorded = True


def history_panel():
    log = chatlog.read_log()
    st.caption(f"{len(log)} exchanges logged in {display(chatlog.log_path())}")
    if log.empty:
        return
    left, right = st.columns(2)
    models = left.multiselect("Model", sorted(set(log["model"])), key="log_models")
    adapters = right.multiselect("Adapter", sorted(set(log["adapter"])), key="log_adapters")
    if models:
        log = log[log["model"].isin(models)]
    if adapters:
        log = log[log["adapter"].isin(adapters)]
    st.dataframe(log.iloc[::-1], hide_index=True, width="stretch")
    st.download_button("Download CSV", log.to_csv(index=False).encode("utf-8"), file_name=chatlog.LOG_NAME,
                       mime="text/csv", key="download_log")


def main():
    st.set_page_config(page_title="omnilm chat", page_icon=":material/chat:", layout="wide")
    warn_if_exposed()
    st.session_state.setdefault("history", [])
    st.sidebar.title("omnilm chat")
    model = pick_model()
    adapter, usable = pick_adapter(model) if model else (None, False)
    opts = controls()
    clear_col, reload_col = st.sidebar.columns(2)
    if clear_col.button("Clear chat", key="clear"):
        st.session_state.history = []
    force = reload_col.button("Reload model", key="reload")
    loaded = load(model, adapter, force) if model and usable else None

    chat_tab, log_tab = st.tabs(["Chat", "History"])
    question = st.chat_input("Ask a question", key="question", disabled=loaded is None)
    with chat_tab:
        wait_for_stopped_reply()
        for turn in st.session_state.history:
            show_turn(turn, opts["show_reasoning"])
        if question and loaded:
            names = (model.name, adapter.name if adapter else NO_ADAPTER)
            answer(question, *loaded, names, opts)
    with log_tab:
        history_panel()


main()
