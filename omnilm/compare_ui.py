"""The chat app's compare mode on screen (Streamlit): the stage picker, and one
question answered by each stage in its own column. The logic is omnilm.compare;
this only draws it, so the app script stays short."""
import time

import streamlit as st

from omnilm import compare
from omnilm.chat_session import Reply, build_messages
from omnilm.chat_store import new_id
from omnilm.errors import UserError

STOP_WAIT_S = 60


def pick_stages(model):
    """The stages picked in the sidebar ([compare.Stage]), or [] after a clear message."""
    usable, refused = compare.stage_choices(model)
    names = list(usable)
    chosen = st.sidebar.multiselect(
        "Stages", names, default=compare.default_stage_names(names), key=f"stages::{model.name}",
        max_selections=compare.MAX_STAGES,
        help="Each stage answers the same question in turn, on the one loaded base model: "
             "base is the model alone, the others switch an adapter on.")
    if refused:
        st.sidebar.caption("Not offered: " + "; ".join(f"{n} ({why})" for n, why in refused.items()))
    try:
        return compare.check_stages([usable[n] for n in chosen])
    except UserError as e:
        st.sidebar.error(str(e))
        return []


def _column_boxes(run):
    boxes = []
    for i, (col, name) in enumerate(zip(st.columns(len(run["stages"])), run["stages"])):
        with col.container(key=f"compare_col_{run['id']}_{i}", border=True):  # the key names it on the page
            st.markdown(f"**{name}**")
            boxes.append({"answer": st.empty(), "stats": st.empty(), "verdict": st.empty()})
    return boxes


def _show_verdict(box, v):
    if v is not None:
        line = compare.verdict_line(v)
        box.markdown(f":green[**key facts: yes**] · {line}" if v["correct"] else f":red[**key facts: no**] · {line}")


def _finish(run):
    """The run's record for this session's screen: answers, figures and verdicts."""
    q = run["eval_question"]
    run["answers"] = [{"answer": r.answer, "stats": r.stats_line() if (r.finish_reason or r.stopped) else "not run",
                       "verdict": compare.verdict(r.answer, q) if q and r.finish_reason else None}
                      for r in run["replies"]]


def show_run(run):
    with st.chat_message("user"):
        st.markdown(run["question"])
        if run["eval_question"]:
            st.caption(f"Evaluation question {run['eval_question']['id']} ({run['eval_question']['kind']}): "
                       "each answer is scored as in stage 30")
    for box, item in zip(_column_boxes(run), run["answers"]):
        box["answer"].markdown(item["answer"] or "_(empty answer)_")
        box["stats"].caption(item["stats"])
        _show_verdict(box["verdict"], item["verdict"])


def _wait_for_stopped_run():
    """After Stop the next run can start before the stopped one has logged its answers."""
    run = st.session_state.pop("compare_in_flight", None)
    if run is None or run["recorded"]:
        return
    with st.spinner("Stopping the comparison..."):
        deadline = time.monotonic() + STOP_WAIT_S
        while not run["recorded"] and time.monotonic() < deadline:
            time.sleep(0.05)


def ask(question, holder, model_dir, model_name, stages, opts):
    """Stream every stage's answer to `question`, one after another, then log them all."""
    try:
        q = compare.evaluation_question(question)
    except UserError as e:
        st.caption(f"Key facts not checked: {e}")
        q = None
    run = {"question": question, "stages": [s.name for s in stages], "eval_question": q, "recorded": False,
           "replies": [Reply() for _ in stages], "id": new_id()}
    runs = st.session_state.setdefault("comparisons", [])
    runs.append(run)  # before streaming: a stopped run still shows what it got
    st.session_state.compare_in_flight = run
    settings = {**opts, "multi_turn": False}  # each comparison is one question on its own
    with st.chat_message("user"):
        st.markdown(question)
        if q:
            st.caption(f"Evaluation question {q['id']} ({q['kind']}): each answer is scored as in stage 30")
    boxes = _column_boxes(run)
    stop_box = st.empty()
    stop_box.button("Stop", key="compare_stop", icon=":material/stop_circle:")  # a click reruns: that is the stop
    messages = build_messages([], question, opts["system_prompt"], multi_turn=False)
    steps = compare.stream_stages(holder, model_dir, stages, messages, opts["max_tokens"], opts["temperature"],
                                  opts["top_p"], run["replies"])
    try:
        for i, reply in steps:
            boxes[i]["answer"].markdown(reply.answer or ("_thinking..._" if reply.thinking else ""))
            boxes[i]["stats"].caption(f"{reply.tokens} tokens · {reply.tokens_per_s:.1f} tok/s · "
                                      f"first token {reply.time_to_first_token_s:.2f} s")
    finally:
        # also on Stop, when Streamlit ends this run at its next st call: no st call here
        steps.close()
        try:
            compare.log_answers(model_name, stages, run["replies"], question, settings, run["id"])
        finally:
            _finish(run)
            run["recorded"] = True
    stop_box.empty()
    for box, item in zip(boxes, run["answers"]):
        box["answer"].markdown(item["answer"] or "_(empty answer)_")
        box["stats"].caption(item["stats"])
        _show_verdict(box["verdict"], item["verdict"])


def show(question, holder, model_dir, model_name, stages, opts):
    """The compare tab: earlier comparisons of this session, then the new question's."""
    _wait_for_stopped_run()
    runs = st.session_state.setdefault("comparisons", [])
    if not runs and not question:
        st.caption("Ask a question: each picked stage answers it in turn, side by side. Evaluation questions "
                   "(10_stage1_cpt/*questions.jsonl) are marked by whether each answer holds the key facts.")
    for run in runs:
        if "answers" in run:
            show_run(run)
    if question and stages:
        ask(question, holder, model_dir, model_name, stages, opts)
