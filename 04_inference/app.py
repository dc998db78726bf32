"""Chat with a text model (+ LoRA adapter) from models/ and adapters/, in the browser.

Examples:
  streamlit run 04_inference/app.py                  # from the repo root: localhost only
  OMNILM_ROOT=/data/omnilm streamlit run 04_inference/app.py

Answers stream token by token (Stop ends the generation), reasoning blocks are
hidden or shown collapsed. Every answer is stored as it is made in
logs/chats.sqlite3: conversations survive a reload (the URL names the open one,
?chat=<id>) and a restart, the sidebar reopens earlier ones and exports the open
one as Markdown or JSON, Regenerate redoes the last answer, and the History tab
shows the whole log and downloads it as CSV. "Compare stages" sends one question
to two or three stages (base, CPT adapter, SFT adapter) and shows the answers side
by side, each stage's adapter switched on the one loaded base. The logic lives in
omnilm.catalog, omnilm.chat_session, omnilm.chat_store, omnilm.chatlog,
omnilm.adapter_switch and omnilm.compare (its screen: omnilm.compare_ui).
"""
import time

import omnilm  # noqa: F401  (fast BLAS before mlx)
import streamlit as st

from omnilm import catalog, chat_store, chatlog, compare_ui
from omnilm.chat_session import ModelHolder, Reply, build_messages, exchange_row, sampling, stream_reply
from omnilm.errors import UserError
from omnilm.paths import adapters_dir, display, models_dir

NO_ADAPTER = "None"
LOOPBACK = ("localhost", "127.0.0.1", "::1")
STOP_WAIT_S = 60  # a stopped run ends at its next token; a long prompt may still be in prefill
LISTED_CHATS = 30  # the sidebar's list of earlier conversations: the newest ones
NOT_SAVED = " · not saved (the chat store cannot be used: see the message above)"


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
        help="By default the stage the last evaluation recommends (results/eval.md), else the newest fitting "
        "SFT adapter; each is checked against the chosen model.")
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
    """(model, tokenizer, (model dir, adapter dir)) or None after a clear message; loads
    only when the base changed (adapters are switched on the one loaded base)."""
    holder = shared_holder()
    model_dir = catalog.child_dir(models_dir(), model.name, "model")  # the guard at the loading boundary
    adapter_dir = catalog.child_dir(adapters_dir(), adapter.name, "adapter") if adapter else None
    key = (str(model_dir), str(adapter_dir) if adapter_dir else None)
    label = model.name + (f" + {adapter.name}" if adapter else "")
    if holder.key == key and holder.model is not None and not force:
        st.sidebar.caption(f"Loaded: {label} ({holder.seconds:.1f} s)")
        return holder.model, holder.tokenizer, (model_dir, adapter_dir)
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
    return (*loaded, (model_dir, adapter_dir))


def show_turn(turn, show_reasoning):
    with st.chat_message(turn["role"]):
        if turn["role"] == "assistant" and show_reasoning and turn.get("reasoning"):
            with st.expander("Reasoning", expanded=False):
                st.markdown(turn["reasoning"])
        st.markdown(turn["content"] or "_(empty answer)_")
        if turn.get("stats"):
            st.caption(turn["stats"])


def answer(question, model, tokenizer, dirs, names, opts, turn=None):
    """Stream one reply under the question; record it (history + store) even when stopped.
    `turn`: the stored turn this answer replaces (Regenerate), None for a new question."""
    history = st.session_state.history
    conversation = st.session_state.get("conversation_id") or chat_store.new_id()
    st.session_state.conversation_id = conversation
    st.query_params["chat"] = conversation  # so a page reload reopens this conversation
    messages = build_messages(history, question, opts["system_prompt"], opts["multi_turn"])
    history.append({"role": "user", "content": question})
    show_turn(history[-1], False)
    reply = st.session_state.in_flight = Reply()
    with st.chat_message("assistant"):
        reasoning_box, answer_box, stats_box = st.empty(), st.empty(), st.empty()
        stop_box = st.empty()
        stop_box.button("Stop", key="stop", icon=":material/stop_circle:")  # any click stops this run: that is the stop
        tokens = stream_reply(model, tokenizer, messages, opts["max_tokens"], opts["temperature"], opts["top_p"],
                              lock=shared_holder().using(*dirs), reply=reply)  # this adapter, held
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
            record(history, question, reply, names, opts, conversation, turn)
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


def record(history, question, reply, names, opts, conversation=None, turn=None):
    """The answer into the history, and into the store unless it cannot be written (the
    page said why once): then the answer's stats line says it was not saved."""
    entry = {"role": "assistant", "content": reply.answer, "reasoning": reply.reasoning, "stats": reply.stats_line()}
    history.append(entry)
    try:
        if opts.get("store_problem"):
            entry["stats"] += NOT_SAVED
        else:
            entry["turn"] = chat_store.add_exchange(exchange_row(names, opts, question, reply), conversation, turn,
                                                    stats=entry["stats"])
    except UserError:  # the store broke during this answer
        entry["stats"] += NOT_SAVED
    finally:
        reply.recorded = True


def open_conversation(conversation_id):
    """Show a stored conversation: a click in the sidebar, or the URL's ?chat= after a reload."""
    conv = chat_store.conversation(conversation_id)
    st.session_state.conversation_id = conv["id"] if conv else None
    st.session_state.history = chat_store.as_history(conv)
    if conv:
        st.query_params["chat"] = conv["id"]
    else:
        st.query_params.pop("chat", None)


def new_chat():
    """An empty chat; the one shown before stays in the store and in the sidebar list."""
    st.session_state.conversation_id = None
    st.session_state.history = []
    st.query_params.pop("chat", None)


def store_problem():
    """Why the chat store cannot be used ("" when it can), checked once a run and shown
    once: the app then answers without saving and the panels that read it stay quiet."""
    try:
        chat_store.check()
    except UserError as e:
        return f"{e}. Answers are shown but not saved."
    return ""


def start_session():
    """A new browser session (first visit, page reload) reopens the chat its URL names."""
    st.session_state.setdefault("conversation_id", None)
    if "history" not in st.session_state:
        st.session_state.history = []
        if st.query_params.get("chat"):
            try:
                open_conversation(st.query_params["chat"])
            except UserError:
                pass  # the store's problem is the page's one message (store_problem)


def take_back_last_answer(loaded):
    """After a Regenerate click: the last question and its stored turn, both taken off the
    history so this run shows and answers the question again (None when nothing to redo)."""
    history = st.session_state.history
    clicked = st.session_state.pop("regenerate", False)
    if not (clicked and loaded and len(history) >= 2
            and history[-1]["role"] == "assistant" and history[-2]["role"] == "user"):
        return None
    last = history.pop()
    return {"question": history.pop()["content"], "turn": last.get("turn")}


def conversations_panel():
    """The sidebar list of stored conversations (newest first) and the open one's export."""
    st.subheader("Conversations")
    try:
        convs = chat_store.conversations()
        current = st.session_state.conversation_id
        conv = chat_store.conversation(current) if current else None
    except UserError:
        st.caption("Not available: see the message above.")
        return
    if not convs:
        st.caption(f"None yet: each chat is kept in {display(chat_store.db_path())} as it happens.")
    for item in convs[:LISTED_CHATS]:
        st.button(chat_store.label(item), key=f"open::{item['id']}", on_click=open_conversation, args=(item["id"],),
                  type="secondary" if item["id"] == current else "tertiary", width="stretch",
                  help=f"{item['turns']} turn(s), started {item['created'].replace('T', ' ')}")
    if len(convs) > LISTED_CHATS:
        st.caption(f"{len(convs) - LISTED_CHATS} older ones are in {display(chat_store.db_path())} "
                   "and in the History tab.")
    if conv and conv["turns"]:
        st.caption("Export the open chat")
        md_col, json_col = st.columns(2)
        md_col.download_button("Markdown", chat_store.to_markdown(conv), file_name=chat_store.export_name(conv, "md"),
                               mime="text/markdown", key="export_md", on_click="ignore", icon=":material/download:")
        json_col.download_button("JSON", chat_store.to_json(conv), file_name=chat_store.export_name(conv, "json"),
                                 mime="application/json", key="export_json", on_click="ignore",
                                 icon=":material/download:")


def history_panel():
    try:
        log = chatlog.read_log()
    except UserError:
        st.caption("The log is not available: see the message above.")
        return
    old = len(chatlog.read_old_rows())
    st.caption(f"{len(log)} exchanges logged in {display(chat_store.db_path())}"
               + (f" ({old} of them from the older {display(chatlog.log_path())})" if old else ""))
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


def chat_view(question, loaded, model, adapter, opts):
    wait_for_stopped_reply()
    redo = take_back_last_answer(loaded)
    for turn in st.session_state.history:
        show_turn(turn, opts["show_reasoning"])
    names = (model.name, adapter.name if adapter else NO_ADAPTER) if loaded else None
    if redo:
        answer(redo["question"], *loaded, names, opts, turn=redo["turn"])
    elif question and loaded:
        answer(question, *loaded, names, opts)
    history = st.session_state.history
    if loaded and history and history[-1]["role"] == "assistant":
        st.button("Regenerate", key="regenerate", icon=":material/refresh:",
                  on_click=lambda: st.session_state.update(regenerate=True),
                  help="Answer the last question again with the current model and settings; "
                       "the earlier answer stays in the History tab.")


def pick_mode(model):
    """(comparing, stages, adapter, usable): compare mode's stages, or the single chat's adapter."""
    comparing = st.sidebar.toggle("Compare stages", value=False, key="compare_mode",
                                  help="One question to two or three stages (base, CPT, SFT), answered side by side "
                                       "on one loaded copy of the base model.")
    if comparing:
        stages = compare_ui.pick_stages(model) if model else []
        return True, stages, None, bool(stages)
    adapter, usable = pick_adapter(model) if model else (None, False)
    return False, [], adapter, usable


def main():
    st.set_page_config(page_title="omnilm chat", page_icon=":material/chat:", layout="wide")
    warn_if_exposed()
    problem = store_problem()
    if problem:
        st.error(problem, icon=":material/database:")
    start_session()
    st.sidebar.title("omnilm chat")
    model = pick_model()
    comparing, stages, adapter, usable = pick_mode(model)
    opts = {**controls(), "store_problem": problem}
    clear_col, reload_col = st.sidebar.columns(2)
    clear_col.button("New chat", key="clear", on_click=new_chat, icon=":material/add_comment:")
    force = reload_col.button("Reload model", key="reload")
    chats_box = st.sidebar.container()  # filled last, so it lists a chat begun in this run
    with st.container():  # a fixed slot for the loading status: the tabs keep their place between runs
        loaded = load(model, adapter, force) if model and usable else None

    chat_tab, log_tab = st.tabs(["Compare" if comparing else "Chat", "History"])
    question = st.chat_input("Ask a question", key="question", disabled=loaded is None)
    with chat_tab:
        if comparing:
            compare_ui.show(question if loaded else None, shared_holder(), loaded[2][0] if loaded else None,
                            model.name if model else None, stages, opts)
        else:
            chat_view(question, loaded, model, adapter, opts)
    with log_tab:
        history_panel()
    with chats_box:
        conversations_panel()


main()
