"""End to end in a real headless Chromium: the served app, the demo model, an adapter,
a streamed answer, the Stop button, the log row. Saves results/app_screenshot.png."""
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from omnilm import chatlog

REPO = Path(__file__).resolve().parents[1]
SCREENSHOT = REPO / "results" / "app_screenshot.png"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
DRIVER = shutil.which("chromedriver")

try:
    from selenium import webdriver
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import WebDriverWait
except ImportError:
    webdriver = None

pytestmark = pytest.mark.skipif(
    webdriver is None or not CHROMIUM or not DRIVER,
    reason="needs selenium (pip) and Debian's chromium + chromium-driver (apt); ./run_tests.sh installs them as root")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def served_app(chat_project):
    port = free_port()
    env = {**os.environ, "OMNILM_ROOT": str(chat_project)}
    server = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", str(REPO / "04_inference" / "app.py"), "--server.port", str(port),
         "--server.address", "127.0.0.1", "--server.headless", "true", "--browser.gatherUsageStats", "false"],
        cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if urllib.request.urlopen(f"{url}/_stcore/health", timeout=1).read() == b"ok":
                    break
            except OSError:
                pass
            if server.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"streamlit did not start: {server.stdout.read().decode()[-2000:]}")
            time.sleep(0.2)
        yield url
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()


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
