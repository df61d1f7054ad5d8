"""The dashboard in a real browser: JupyterLab on localhost, driven by headless Chromium through Playwright.

Needs Debian's `chromium` and the `playwright` package (`.ci/run` installs both and sets
CLIPEXPLORE_REQUIRE_BROWSER=1, so that there a missing browser fails instead of skipping)."""
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path

import pytest

from test_widgets import live_notebook

CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-sync",
                  "--disable-background-networking", "--disable-component-update"]   # closed network: no calls home
STATE_IS = "([el, state]) => el.innerText.trim().split(/\\s+/)[0] === state"   # the status line's first word: its state


def browser_or_skip():
    "Path of Chromium, with Playwright importable; skip (or fail where CI requires the browser) otherwise."
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    try: import playwright.sync_api  # noqa: F401
    except ImportError: chromium = None
    if chromium is None:
        message = "needs Debian's chromium and the playwright package"
        if os.environ.get("CLIPEXPLORE_REQUIRE_BROWSER"): pytest.fail(message)
        pytest.skip(message)
    return chromium


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0)); return s.getsockname()[1]


@pytest.fixture
def jupyterlab(tmp_path):
    "A JupyterLab server on localhost serving `tmp_path`; yields its base URL and token; stops it and its kernels after."
    import nbformat
    nbformat.write(live_notebook(epochs=150, background_stop=True), tmp_path / "live.ipynb")
    port, token = free_port(), "clipexplore-test"
    env = {k: v for k, v in os.environ.items() if k != "IN_TEST"}                   # the kernel must see a front end
    server = subprocess.Popen([sys.executable, "-m", "jupyter", "lab", "--no-browser", f"--port={port}", "--ip=127.0.0.1",
                               f"--ServerApp.token={token}", f"--ServerApp.root_dir={tmp_path}", "--allow-root",
                               "--LabApp.news_url=", "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate"],
                              env=env, stdout=subprocess.DEVNULL, stderr=open(tmp_path / "server.log", "w"), start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(120):
            try:
                urllib.request.urlopen(f"{url}/api/status?token={token}", timeout=2); break
            except OSError: time.sleep(0.5)
        else: pytest.fail("JupyterLab did not start:\n" + (tmp_path / "server.log").read_text()[-3000:])
        yield url, token
    finally:
        os.killpg(server.pid, signal.SIGTERM)                                        # the server and its kernels
        try: server.wait(timeout=20)
        except subprocess.TimeoutExpired: os.killpg(server.pid, signal.SIGKILL)


@contextmanager
def chromium_page(width=1500, height=1000):
    "A page of headless Chromium driven by Playwright; the browser closes after."
    chromium = browser_or_skip()
    from playwright.sync_api import sync_playwright
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=CHROMIUM_FLAGS)
        try: yield browser.new_page(viewport=dict(width=width, height=height))
        finally: browser.close()


@pytest.mark.browser
def test_dashboard_renders_updates_and_stops_in_jupyterlab(jupyterlab):
    url, token = jupyterlab
    with chromium_page() as page:
        try:
            page.goto(f"{url}/lab/tree/live.ipynb?token={token}")
            page.wait_for_selector(".jp-Notebook .jp-Cell", timeout=90_000)
            page.locator(".jp-StatusBar-TextItem", has_text="Idle").first.wait_for(timeout=120_000)    # the kernel is up
            page.locator(".jp-Notebook .jp-Cell").first.locator(".jp-InputPrompt").click()            # select the first cell
            page.keyboard.press("Escape")
            for _ in range(page.locator(".jp-Notebook .jp-Cell").count()): page.keyboard.press("Shift+Enter")   # run each, in order

            dashboard = page.locator(".clipexplore-dashboard").first
            dashboard.wait_for(timeout=180_000)
            image, status = dashboard.locator("img"), dashboard.locator(".widget-html-content")
            assert dashboard.locator("button", has_text="Stop").count() == 1 and dashboard.locator("button", has_text="Pause").count() == 1
            page.wait_for_function("el => el.innerText.includes('epoch')", arg=status.element_handle(), timeout=120_000)
            first_picture, first_status = image.get_attribute("src"), status.inner_text()
            # the picture and the numbers moved; both checked in one go, so a redraw between two reads cannot fool it
            page.wait_for_function("([img, el, src, text]) => img.src !== src && el.innerText !== text",
                                   arg=[image.element_handle(), status.element_handle(), first_picture, first_status], timeout=60_000)
            page.wait_for_function(STATE_IS, arg=[status.element_handle(), "done"], timeout=300_000)
            page.screenshot(path=str(Path(tempfile.gettempdir()) / "clipexplore_browser_dashboard.png"))

            steered = page.locator(".clipexplore-dashboard").nth(1)                   # a background run: the Stop button reaches the kernel
            steered.wait_for(timeout=120_000)
            steered_status = steered.locator(".widget-html-content")
            page.wait_for_function("el => el.innerText.includes('epoch')", arg=steered_status.element_handle(), timeout=120_000)
            steered.locator("button", has_text="Stop").click()
            page.wait_for_function(STATE_IS, arg=[steered_status.element_handle(), "stopped"], timeout=60_000)
            epoch = float(steered_status.inner_text().split("epoch")[1].split()[0])
            assert 0 < epoch < 100_000
        except Exception:
            page.screenshot(path=str(Path(tempfile.gettempdir()) / "clipexplore_browser_failure.png"))
            raise
