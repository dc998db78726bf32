"""End to end in a real headless Chromium: the served app, the demo model, an adapter,
a streamed answer, the Stop button, the log row, a chat that survives an app restart.
Saves results/app_screenshot.png."""
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from conftest import make_lora_adapter
from omnilm import chat_store, chatlog

REPO = Path(__file__).resolve().parents[1]
SCREENSHOT = REPO / "results" / "app_screenshot.png"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
DRIVER = shutil.which("chromedriver")

try:
    from selenium import webdriver
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import WebDriverWait
except ImportError:
    webdriver = None

pytestmark = [pytest.mark.slow(seconds=18), pytest.mark.skipif(
    webdriver is None or not CHROMIUM or not DRIVER,
    reason="needs selenium (pip) and Debian's chromium + chromium-driver (apt); ./run_tests.sh installs them as root")]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_app(project, port):
    """`streamlit run` the app on `port` for the project root `project`; (server, url) once healthy."""
    env = {**os.environ, "OMNILM_ROOT": str(project)}
    server = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", str(REPO / "04_inference" / "app.py"), "--server.port", str(port),
         "--server.address", "127.0.0.1", "--server.headless", "true", "--browser.gatherUsageStats", "false"],
        cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            if urllib.request.urlopen(f"{url}/_stcore/health", timeout=1).read() == b"ok":
                return server, url
        except OSError:
            pass
        if server.poll() is not None or time.monotonic() > deadline:
            stop_app(server)
            pytest.fail(f"streamlit did not start: {server.stdout.read().decode()[-2000:]}")
        time.sleep(0.2)


def stop_app(server):
    server.terminate()
    try:
        server.wait(timeout=10)
    except subprocess.TimeoutExpired:
        server.kill()
        server.wait()


@pytest.fixture
def served_app(chat_project):
    server, url = start_app(chat_project, free_port())
    try:
        yield url
    finally:
        stop_app(server)


@pytest.fixture
def browser():
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1400,1000",
                "--disable-gpu"):
        options.add_argument(arg)
    driver = webdriver.Chrome(options=options, service=webdriver.ChromeService(executable_path=DRIVER))
    yield driver
    driver.quit()


def wait_for(driver, condition, seconds=30, what="condition"):
    try:
        return WebDriverWait(driver, seconds, poll_frequency=0.05).until(lambda d: condition(d), message=what)
    except Exception:
        driver.save_screenshot(str(SCREENSHOT.with_name("app_screenshot_failed.png")))  # to see why
        raise


def pick(driver, label, option):
    """Choose `option` in the sidebar selectbox labelled `label` (a react-aria combobox)."""
    box = driver.find_element(By.CSS_SELECTOR, f"[data-testid='stSidebar'] input[role='combobox'][aria-label='{label}']")
    box.find_element(By.XPATH, "following-sibling::button").click()
    wait_for(driver, lambda d: d.find_elements(By.XPATH, f"//*[@role='option'][normalize-space()='{option}']"),
             10, f"option {option}")[0].click()
    wait_for(driver, lambda d: d.find_element(By.CSS_SELECTOR, f"input[role='combobox'][aria-label='{label}']")
             .get_attribute("value") == option, 10, f"{label} = {option}")


def chat_box(driver):
    boxes = driver.find_elements(By.CSS_SELECTOR, "textarea[data-testid='stChatInputTextArea']")
    return boxes[0] if boxes and boxes[0].is_enabled() else None


def ask(driver, question):
    box = wait_for(driver, chat_box, 60, "an enabled chat input")
    box.send_keys(question)
    box.send_keys(Keys.ENTER)


def assistant_text(driver):
    messages = driver.find_elements(By.CSS_SELECTOR, "[data-testid='stChatMessage']")
    if not messages:
        return ""
    md = messages[-1].find_elements(By.CSS_SELECTOR, "[data-testid='stMarkdownContainer']")
    return md[0].text.strip() if md else ""


def fewest_tokens(driver):
    """Max tokens down to 16, the slider's minimum."""
    slider = driver.find_element(By.CSS_SELECTOR, "[data-testid='stSidebar'] input[aria-label='Max tokens']")
    driver.execute_script("arguments[0].focus()", slider)  # a visually hidden range input: keys, not clicks
    ActionChains(driver).send_keys(Keys.HOME).perform()
    wait_for(driver, lambda d: slider.get_attribute("value") == "16", 10, "max tokens 16")


def test_chat_in_a_real_browser(served_app, browser, chat_project):
    browser.get(served_app)
    wait_for(browser, chat_box, 60, "the app to load the demo model")
    pick(browser, "Model", "demo-omni-Text")
    pick(browser, "Adapter", "demo_paper-sft")
    wait_for(browser, chat_box, 60, "the model + adapter loaded")

    # Stop: a long answer is cut after a few tokens, kept, and logged as stopped
    ask(browser, "Write a very long story about a lighthouse keeper.")
    stop = wait_for(browser, lambda d: [b for b in d.find_elements(By.CSS_SELECTOR, "[data-testid='stChatMessage'] button")
                                        if b.text.strip().endswith("Stop")], 30, "the Stop button")[0]
    wait_for(browser, lambda d: len(assistant_text(d).split()) >= 3, 30, "the first words")
    stop.click()
    wait_for(browser, lambda d: "(stopped)" in d.page_source, 30, "the stopped note")
    rows = wait_for(browser, lambda d: chatlog.read_rows() or None, 10, "the log row")
    assert rows[0]["stopped"] == "True" and 0 < int(rows[0]["tokens"]) < 256

    # A demo question: the answer streams in (seen growing), then the stats and a new log row
    ask(browser, "What does VELLUM stand for?")
    seen = set()
    started = time.monotonic()
    while len(chatlog.read_rows()) < 2 and time.monotonic() - started < 60:
        text = assistant_text(browser)
        if text and "thinking" not in text:
            seen.add(text)
        time.sleep(0.05)
    rows = chatlog.read_rows()
    assert len(rows) == 2, "the answer never finished"
    assert len(seen) >= 2, f"the answer did not stream: saw {seen}"
    wait_for(browser, lambda d: "tok/s" in d.find_elements(By.CSS_SELECTOR, "[data-testid='stChatMessage']")[-1].text,
             10, "the stats under the answer")
    final = assistant_text(browser)
    assert final and rows[1]["answer"].split()[:3] == final.split()[:3]
    assert (rows[1]["model"], rows[1]["adapter"], rows[1]["stopped"]) == ("demo-omni-Text", "demo_paper-sft", "False")
    wait_for(browser, lambda d: not d.find_elements(By.CSS_SELECTOR, "[data-testid='stStatusWidget']"), 10,
             "the run to end")
    SCREENSHOT.parent.mkdir(exist_ok=True)
    browser.save_screenshot(str(SCREENSHOT))

    # the History tab counts both exchanges
    browser.find_element(By.XPATH, "//*[@role='tab'][normalize-space()='History']").click()
    wait_for(browser, lambda d: "2 exchanges logged" in d.page_source, 10, "the History tab")


def chat_texts(driver):
    return [m.text for m in driver.find_elements(By.CSS_SELECTOR, "[data-testid='stMainBlockContainer'] "
                                                                  "[data-testid='stChatMessage']")]


def shows_exchange(question, answer):
    """The page shows exactly one exchange: the question, then an answer starting like `answer`."""
    start = " ".join(answer.split()[:3])
    return lambda d: (lambda t: len(t) == 2 and question in t[0] and start in " ".join(t[1].split()))(chat_texts(d))


def test_a_chat_survives_an_app_restart(chat_project, browser, tmp_path):
    question, port = "What does VELLUM stand for?", free_port()
    server, url = start_app(chat_project, port)
    try:
        browser.get(url)
        wait_for(browser, chat_box, 60, "the app to load the demo model")
        fewest_tokens(browser)  # 16 tokens: this test is about keeping answers
        ask(browser, question)
        rows = wait_for(browser, lambda d: chatlog.read_rows() or None, 60, "the answer stored")
        assert rows[0]["max_tokens"] == "16" and rows[0]["turn"] == "1"
        wait_for(browser, shows_exchange(question, rows[0]["answer"]), 10, "the answer shown")
    finally:
        stop_app(server)

    server, url = start_app(chat_project, port)  # the same address, a new process: nothing in memory
    try:
        browser.get(url)  # no ?chat= in this URL: the chat comes back from the sidebar list
        label = chat_store.label(chat_store.conversation(rows[0]["conversation_id"]))
        wait_for(browser, lambda d: d.find_elements(By.XPATH, f"//*[@data-testid='stSidebar']//button"
                                                              f"[normalize-space()='{label}']"), 60,
                 "the chat listed")[0].click()
        wait_for(browser, shows_exchange(question, rows[0]["answer"]), 30, "the earlier question and answer")
        assert "chat=" + rows[0]["conversation_id"] in browser.current_url
        browser.refresh()  # a page reload reopens the chat its URL names
        wait_for(browser, shows_exchange(question, rows[0]["answer"]), 60, "the chat after a reload")

        # the reopened chat exports as Markdown: the file the browser saves holds both turns' text
        browser.execute_cdp_cmd("Browser.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(tmp_path)})
        wait_for(browser, lambda d: d.find_elements(By.XPATH, "//*[@data-testid='stSidebar']//*[@data-testid="
                                                              "'stDownloadButton']//button[contains(., 'Markdown')]"),
                 30, "the Markdown button")[0].click()
        # seen under load: the file already there but still empty; wait until it is written
        saved = wait_for(browser, lambda d: [f.read_text() for f in tmp_path.glob("chat-*.md")
                                             if not list(tmp_path.glob("*.crdownload")) and f.stat().st_size], 20,
                         "the Markdown file")[0]
        assert question in saved and rows[0]["answer"].strip() in saved
    finally:
        stop_app(server)


def compare_columns(driver):
    return [c.text for c in driver.find_elements(By.CSS_SELECTOR, "[class*='st-key-compare_col_']")]


def test_compare_mode_in_a_real_browser(chat_project, demo_text_model, browser):
    # a seeded adapter that changes this answer from its first word, so the columns differ
    make_lora_adapter(demo_text_model, chat_project / "adapters" / "demo_paper-sft", scale=40.0, seed=0)
    server, url = start_app(chat_project, free_port())
    try:
        browser.get(url)
        wait_for(browser, chat_box, 60, "the app to load the demo model")
        fewest_tokens(browser)
        browser.find_element(By.CSS_SELECTOR, "[data-testid='stSidebar'] .st-key-compare_mode label").click()
        wait_for(browser, lambda d: d.find_elements(By.XPATH, "//*[@role='tab'][normalize-space()='Compare']"), 20,
                 "the Compare tab")
        # the stages offered by default: the base and the fitting SFT adapter (tiny-cpt is refused, and said why)
        picker = wait_for(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "[data-testid='stSidebar'] "
                                                                        "[data-testid='stMultiSelect']"), 10, "stages")
        assert picker[0].text.split()[1:] == ["base", "demo_paper-sft"]  # after the label "Stages"
        sidebar = browser.find_element(By.CSS_SELECTOR, "[data-testid='stSidebar']").text
        assert "Not offered: tiny-cpt (" in sidebar and "hidden size 576" in sidebar

        ask(browser, "What does VELLUM stand for?")
        rows = wait_for(browser, lambda d: (lambda r: r if len(r) == 2 else None)(chatlog.read_rows()), 90,
                        "both answers stored")
        wait_for(browser, lambda d: (lambda t: len(t) == 2 and all("key facts" in c for c in t))(compare_columns(d)),
                 20, "both columns finished")
        wait_for(browser, lambda d: not d.find_elements(By.CSS_SELECTOR, "[data-testid='stStatusWidget']"), 10,
                 "the run to end")  # the page settled: nothing moves any more
        base, sft = browser.find_elements(By.CSS_SELECTOR, "[class*='st-key-compare_col_']")
        places = base.rect, sft.rect
        assert abs(places[0]["y"] - places[1]["y"]) <= 2 and places[0]["x"] + places[0]["width"] <= places[1]["x"], \
            f"not side by side: {places}"
        by_stage = {r["stage"]: r for r in rows}
        assert by_stage["base"]["answer"] != by_stage["demo_paper-sft"]["answer"]
        for column, stage in ((base, "base"), (sft, "demo_paper-sft")):
            assert column.text.splitlines()[0] == stage
            assert " ".join(by_stage[stage]["answer"].split()) in " ".join(column.text.split())
            assert "tok/s" in column.text and "first token" in column.text
            assert "key facts: no" in column.text  # 16 tokens of an untrained adapter: not the expansion
        assert {r["compare_id"] for r in rows} != {""} and len({r["compare_id"] for r in rows}) == 1
        assert "Evaluation question d1" in browser.page_source
        SCREENSHOT.parent.mkdir(exist_ok=True)
        browser.save_screenshot(str(SCREENSHOT.with_name("app_compare_screenshot.png")))

        # Stop during the first stage: its partial answer is kept, the second stage never runs
        slider = browser.find_element(By.CSS_SELECTOR, "[data-testid='stSidebar'] input[aria-label='Max tokens']")
        browser.execute_script("arguments[0].focus()", slider)
        ActionChains(browser).send_keys(Keys.END).perform()
        wait_for(browser, lambda d: slider.get_attribute("value") == "2048", 10, "max tokens 2048")
        ask(browser, "Write a very long story about a lighthouse keeper.")
        stop = wait_for(browser, lambda d: d.find_elements(By.CSS_SELECTOR, ".st-key-compare_stop button"), 30,
                        "the Stop button")[0]
        wait_for(browser, lambda d: any("lighthouse keeper" in t for t in compare_columns(d)), 30, "the first words")
        stop.click()
        rows = wait_for(browser, lambda d: (lambda r: r if len(r) == 3 else None)(chatlog.read_rows()), 30,
                        "the stopped answer stored")
        assert (rows[2]["stage"], rows[2]["stopped"]) == ("base", "True") and int(rows[2]["tokens"]) < 2048
        wait_for(browser, lambda d: (lambda t: len(t) == 4 and "(stopped)" in t[2] and "not run" in t[3])(
            compare_columns(d)), 30, "the stopped run shown")
        time.sleep(1)
        assert len(chatlog.read_rows()) == 3  # the second stage never began
    finally:
        stop_app(server)
