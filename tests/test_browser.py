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


@contextmanager
def lab_server(root):
    "A JupyterLab server on localhost serving the folder `root`; yields its base URL and token; stops it and its kernels after."
    port, token = free_port(), "clipexplore-test"
    env = {k: v for k, v in os.environ.items() if k != "IN_TEST"}                   # the kernel must see a front end
    server = subprocess.Popen([sys.executable, "-m", "jupyter", "lab", "--no-browser", f"--port={port}", "--ip=127.0.0.1",
                               f"--ServerApp.token={token}", f"--ServerApp.root_dir={root}", "--allow-root",
                               "--LabApp.news_url=", "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate"],
                              env=env, stdout=subprocess.DEVNULL, stderr=open(root / "server.log", "w"), start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(120):
            try:
                urllib.request.urlopen(f"{url}/api/status?token={token}", timeout=2); break
            except OSError: time.sleep(0.5)
        else: pytest.fail("JupyterLab did not start:\n" + (root / "server.log").read_text()[-3000:])
        yield url, token
    finally:
        os.killpg(server.pid, signal.SIGTERM)                                        # the server and its kernels
        try: server.wait(timeout=20)
        except subprocess.TimeoutExpired: os.killpg(server.pid, signal.SIGKILL)


@pytest.fixture
def jupyterlab(tmp_path):
    "JupyterLab serving a notebook that trains CoOp in the cell with a displayed Dashboard."
    import nbformat
    nbformat.write(live_notebook(epochs=150), tmp_path / "live.ipynb")
    with lab_server(tmp_path) as served: yield served


@contextmanager
def chromium_page(width=1500, height=1000):
    "A page of headless Chromium driven by Playwright; the browser closes after."
    chromium = browser_or_skip()
    from playwright.sync_api import sync_playwright
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=CHROMIUM_FLAGS)
        try: yield browser.new_page(viewport=dict(width=width, height=height))
        finally: browser.close()


def open_notebook(page, served, name):
    "Open notebook `name` in JupyterLab and wait until its kernel is idle."
    url, token = served
    page.goto(f"{url}/lab/tree/{name}?token={token}")
    page.wait_for_selector(".jp-Notebook .jp-Cell", timeout=90_000)
    page.locator(".jp-StatusBar-TextItem", has_text="Idle").first.wait_for(timeout=120_000)


@pytest.mark.browser
def test_dashboard_renders_and_updates_in_jupyterlab(jupyterlab):
    with chromium_page() as page:
        try:
            open_notebook(page, jupyterlab, "live.ipynb")
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

        except Exception:
            page.screenshot(path=str(Path(tempfile.gettempdir()) / "clipexplore_browser_failure.png"))
            raise


def _step(status_text):
    "The step count in a status line ('training  epoch 3.20  step 16  loss ...')."
    return int(status_text.split("step")[1].split()[0])


@pytest.fixture
def coop_notebook(tmp_path):
    "JupyterLab serving a copy of nbs/11_coop.ipynb whose main training runs long enough to steer (the only change)."
    import nbformat
    nb = nbformat.read(Path(__file__).parents[1] / "nbs" / "11_coop.ipynb", as_version=4)
    main = [c for c in nb.cells if c.cell_type == "code" and "await dashboard.train(" in c.source]
    assert len(main) == 1 and 'recipe="toy"' in main[0].source, "11_coop's main training cell changed: update this test"
    main[0].source = main[0].source.replace('recipe="toy"', 'recipe="toy", epochs=20_000')
    nbformat.write(nb, tmp_path / "11_coop.ipynb")
    with lab_server(tmp_path) as served: yield served


@pytest.mark.browser
def test_student_runs_all_of_11_coop_then_pauses_and_stops(coop_notebook):
    "A student's path: open 11_coop, Run All Cells, watch the dashboard update, Pause (the steps freeze), Stop (the status says so)."
    with chromium_page() as page:
        try:
            open_notebook(page, coop_notebook, "11_coop.ipynb")
            page.locator(".lm-MenuBar-itemLabel", has_text="Run").first.click()
            page.locator(".lm-Menu-itemLabel", has_text="Run All Cells").first.click()

            dashboard = page.locator(".clipexplore-dashboard").first
            dashboard.wait_for(timeout=240_000)
            status, image = dashboard.locator(".widget-html-content").element_handle(), dashboard.locator("img").element_handle()
            placeholder = image.get_attribute("src")
            page.wait_for_function(STATE_IS, arg=[status, "training"], timeout=120_000)
            page.wait_for_function("el => el.innerText.includes('step')", arg=status, timeout=120_000)
            seen = [status.inner_text()]
            for _ in range(3):                                        # three updates of the numbers while it trains
                page.wait_for_function("([el, text]) => el.innerText !== text && el.innerText.includes('step')",
                                       arg=[status, seen[-1]], timeout=60_000)
                seen.append(status.inner_text())
            assert _step(seen[-1]) > _step(seen[0])
            page.wait_for_function("([img, src]) => img.src !== src", arg=[image, placeholder], timeout=120_000)   # a picture, drawn live
            assert dashboard.locator("button", has_text="Pause").is_enabled() and dashboard.locator("button", has_text="Stop").is_enabled()

            dashboard.locator("button", has_text="Pause").click()
            page.wait_for_function(STATE_IS, arg=[status, "paused"], timeout=60_000)
            page.wait_for_timeout(1_000)                              # the batch under way may still end and report
            held = _step(status.inner_text())
            page.wait_for_timeout(3_000)
            assert _step(status.inner_text()) == held and status.inner_text().split()[0] == "paused"

            dashboard.locator("button", has_text="Stop").click()
            page.wait_for_function(STATE_IS, arg=[status, "stopped"], timeout=60_000)
            assert 0 < _step(status.inner_text()) <= held + 1
            page.screenshot(path=str(Path(tempfile.gettempdir()) / "clipexplore_browser_11_coop.png"))
        except Exception:
            page.screenshot(path=str(Path(tempfile.gettempdir()) / "clipexplore_browser_failure.png"))
            raise
