"""Browser tests: explorers in real JupyterLab, in headless Chromium, with no network.

JupyterLab is started on 127.0.0.1 (a free port, a token, a temporary root dir, settings and
runtime dirs).

* ``test_explorer_in_jupyterlab``: a notebook that displays an explorer is opened in headless
  Chromium through selenium and run from the Run menu; the test waits for the widget and its Vega
  chart, reads the chart's SVG and the readout, moves the slider with the keyboard and asserts both
  changed, and that the page asked nothing of any host but 127.0.0.1 (Chrome's performance log). A
  screenshot goes to /tmp/thinlab_browser.png.
* ``test_executed_lesson_opens_with_static_explorers``: lesson 04 is executed at CI size by the
  course runner (headless, as ``make lessons`` does), then opened in JupyterLab *without running
  it*, as a student opens a saved notebook: no raw ``VBox(`` text may appear anywhere in the page,
  and the explorer's static image (with its "run the notebook" note) must be drawn. Screenshot:
  /tmp/thinlab_browser_lesson.png.

Chromium and chromedriver come from Debian (``chromium``, ``chromium-driver``); when missing they
are installed with apt-get (needs root), else the test fails saying how to install them.

The helpers take the notebook as a parameter, so a real lesson can replace the tiny one here.
"""
from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import urlparse

import nbformat
import pytest

pytestmark = [pytest.mark.browser, pytest.mark.slow]

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
SCREENSHOT = Path("/tmp/thinlab_browser.png")
LESSON_SCREENSHOT = Path("/tmp/thinlab_browser_lesson.png")
#: the whole test must finish within this many seconds (installing Chromium excepted)
BUDGET = 120
#: the executed-lesson test: its browser part (the lesson's CI run before it is the lesson's own cost)
LESSON_BUDGET = 90
#: the lesson opened as saved (the cheapest CI run with an explorer, as in tests/test_site.py: the bits explorer)
LESSON = "04"
LOCAL_HOSTS = {"127.0.0.1", "localhost"}

#: the notebook the test runs: an explorer on a random layer (a lesson can replace it)
EXPLORER_CELLS = [
    "import numpy as np\nfrom thinlab.widgets import prune_explorer",
    "W = np.random.default_rng(0).normal(size=(64, 48)).astype(np.float32)\n"
    "explorer = prune_explorer(W, sparsity=0.5, evaluate=lambda w: float(np.count_nonzero(w)) / w.size)\n"
    "explorer",
]


class Deadline:
    """A shared time budget: every wait takes what is left of it."""

    def __init__(self, seconds: float):
        self.start = time.monotonic()
        self.end = self.start + seconds

    def mark(self, what: str) -> None:
        """Print how long the test has run (visible with ``pytest -s`` or on failure)."""
        print(f"[{time.monotonic() - self.start:5.1f} s] {what}", flush=True)

    def left(self) -> float:
        return max(0.0, self.end - time.monotonic())

    def wait(self, what: str, check, *, limit: float = 60.0, every: float = 0.25):
        """Poll ``check()`` until it returns something truthy; fail after ``limit`` s or the budget."""
        end = time.monotonic() + min(limit, self.left())
        last_error = None
        while True:
            try:
                got = check()
                if got:
                    self.mark(what)
                    return got
            except Exception as exc:  # the page is still changing under us
                last_error = exc
            if time.monotonic() >= end:
                pytest.fail(f"timed out waiting for {what}" + (f" (last error: {last_error!r})" if last_error else ""))
            time.sleep(every)


# ------------------------------------------------------------------ setup helpers

def ensure_chromium() -> None:
    """Install Debian's chromium + chromium-driver if missing, or fail with how to do it."""
    if os.access(CHROMIUM, os.X_OK) and os.access(CHROMEDRIVER, os.X_OK):
        return
    how = "install them with: sudo apt-get update && sudo apt-get install -y chromium chromium-driver"
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        pytest.fail(f"the browser test needs {CHROMIUM} and {CHROMEDRIVER} (Debian packages chromium and "
                    f"chromium-driver), and cannot install them here (not root, or no apt-get); {how}")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for cmd in (["apt-get", "update"], ["apt-get", "install", "-y", "--no-install-recommends", "chromium",
                                        "chromium-driver"]):
        try:
            done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)
        except subprocess.TimeoutExpired:
            pytest.fail(f"`{' '.join(cmd)}` took over 15 minutes; {how}")
        if done.returncode != 0:
            pytest.fail(f"`{' '.join(cmd)}` failed ({done.returncode}):\n{done.stderr[-2000:]}\n{how}")
    if not (os.access(CHROMIUM, os.X_OK) and os.access(CHROMEDRIVER, os.X_OK)):
        pytest.fail(f"apt-get installed chromium but {CHROMIUM} or {CHROMEDRIVER} is still missing; {how}")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def write_notebook(path: Path, cells: list[str]) -> Path:
    """A notebook of code ``cells`` with the python3 kernel, so JupyterLab starts it without asking."""
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in cells])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, path)
    return path


@contextlib.contextmanager
def jupyter_lab(root: Path, state: Path, deadline: Deadline):
    """JupyterLab on 127.0.0.1 serving ``root``; yields ``(base_url, token)`` and always stops it."""
    port, token = free_port(), os.urandom(16).hex()
    dirs = {name: state / name for name in ("config", "data", "runtime", "settings", "workspaces")}
    for d in dirs.values():
        d.mkdir(parents=True, exist_ok=True)
    # no news feed, no update check: the server makes no outside requests either
    quiet = {"LabApp": {"news_url": None, "check_for_updates_class": "jupyterlab.NeverCheckForUpdate"}}
    for name in ("jupyter_server_config.json", "jupyter_lab_config.json"):
        (dirs["config"] / name).write_text(json.dumps(quiet))
    # and no "get Jupyter news?" toast over the page
    notes = dirs["settings"] / "@jupyterlab" / "apputils-extension"
    notes.mkdir(parents=True, exist_ok=True)
    (notes / "notification.jupyterlab-settings").write_text(json.dumps({"fetchNews": "false",
                                                                         "checkForUpdates": False}))
    # every cell in the DOM (not only those in view), so the page's text is the whole notebook's
    tracker = dirs["settings"] / "@jupyterlab" / "notebook-extension"
    tracker.mkdir(parents=True, exist_ok=True)
    (tracker / "tracker.jupyterlab-settings").write_text(json.dumps({"windowingMode": "none"}))
    env = {**os.environ, "JUPYTER_CONFIG_DIR": str(dirs["config"]), "JUPYTER_DATA_DIR": str(dirs["data"]),
           "JUPYTER_RUNTIME_DIR": str(dirs["runtime"]), "JUPYTERLAB_SETTINGS_DIR": str(dirs["settings"]),
           "JUPYTERLAB_WORKSPACES_DIR": str(dirs["workspaces"]), "OPENBLAS_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "jupyter", "lab", "--no-browser", "--ServerApp.ip=127.0.0.1",
           f"--ServerApp.port={port}", "--ServerApp.port_retries=0", f"--IdentityProvider.token={token}",
           f"--ServerApp.root_dir={root}"]
    if os.geteuid() == 0:
        cmd.append("--allow-root")
    log = (state / "jupyter.log").open("w")
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    base = f"http://127.0.0.1:{port}"

    def up():
        if proc.poll() is not None:
            pytest.fail(f"jupyter lab exited ({proc.returncode}):\n{(state / 'jupyter.log').read_text()[-3000:]}")
        with urllib.request.urlopen(f"{base}/api/status?token={token}", timeout=2) as r:
            return r.status == 200

    try:
        deadline.wait("jupyter lab to answer on 127.0.0.1", up, limit=60)
        yield base, token
    finally:
        try:  # shuts the kernels down too (they run in their own process groups)
            req = urllib.request.Request(f"{base}/api/shutdown?token={token}", method="POST")
            urllib.request.urlopen(req, timeout=5).close()
            proc.wait(timeout=15)
        except (OSError, urllib.error.URLError, subprocess.TimeoutExpired):
            pass
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)
        log.close()
        print(f"[jupyter lab stopped at {time.strftime('%X')}]", flush=True)


@contextlib.contextmanager
def chromium(profile: Path):
    """Headless Chromium through chromedriver, with the performance (network) log on."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for arg in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-dev-shm-usage",
                "--window-size=1400,1000", f"--user-data-dir={profile}"):
        opts.add_argument(arg)
    opts.set_capability("goog:loggingPrefs", {"performance": "ALL", "browser": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)
    try:
        driver.set_page_load_timeout(60)
        driver.set_script_timeout(30)
        yield driver
    finally:
        driver.quit()
        print(f"[chromium closed at {time.strftime('%X')}]", flush=True)


# ------------------------------------------------------------------ page helpers

def open_and_run(driver, base: str, token: str, notebook: str, deadline: Deadline) -> None:
    """Open ``notebook`` (relative to the server root) in JupyterLab and run all its cells (Run menu)."""
    from selenium.webdriver.common.by import By

    driver.get(f"{base}/lab/tree/{notebook}?token={token}")
    deadline.wait("the notebook to open", lambda: driver.find_elements(By.CSS_SELECTOR, ".jp-NotebookPanel .jp-Cell"))
    # run only once the kernel is up: earlier, JupyterLab asks which kernel to start
    deadline.wait("the kernel to be idle", lambda: driver.find_elements(
        By.XPATH, "//*[contains(@class, 'jp-StatusBar')]//*[contains(text(), '| Idle')]"), limit=60)
    def click_menu_item():
        menu = [m for m in driver.find_elements(By.CSS_SELECTOR, ".lm-MenuBar-item") if m.text.strip() == "Run"]
        menu[0].click()
        items = [i for i in driver.find_elements(By.CSS_SELECTOR, ".lm-Menu-item .lm-Menu-itemLabel")
                 if i.text.strip() == "Run All Cells"]
        if not items:
            menu[0].click()  # close it, try again
            return False
        items[0].click()
        return True

    deadline.wait("Run ▸ Run All Cells", click_menu_item, limit=20)


def readout_text(driver) -> str:
    return driver.execute_script(
        "const t = document.querySelector('.jp-OutputArea-output table.thinlab-readout');"
        "return t ? t.innerText : '';")


def chart_svg(driver) -> str:
    """The SVG markup of the Vega chart in the widget's Output ('' while it is not drawn)."""
    return driver.execute_script(
        "const s = document.querySelector('.jp-OutputArea-output .jp-RenderedVegaCommon5 svg.marks');"
        "return s ? s.outerHTML : '';")


def page_requests(driver) -> tuple[int, list[str]]:
    """(number of requests to 127.0.0.1, URLs requested from any other host), from Chrome's performance log."""
    local, bad = 0, []
    for entry in driver.get_log("performance"):
        msg = json.loads(entry["message"])["message"]
        if msg["method"] not in ("Network.requestWillBeSent", "Network.webSocketCreated"):
            continue
        url = msg["params"].get("request", {}).get("url") or msg["params"].get("url", "")
        parsed = urlparse(url)
        if parsed.scheme in ("data", "blob", "about", "chrome", "devtools") or not parsed.scheme:
            continue
        if parsed.hostname in LOCAL_HOSTS:
            local += 1
        else:
            bad.append(url)
    return local, bad


# ------------------------------------------------------------------ the test

def test_explorer_in_jupyterlab(tmp_path):
    ensure_chromium()
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    deadline = Deadline(BUDGET)
    root = tmp_path / "root"
    root.mkdir()
    notebook = write_notebook(root / "explorer.ipynb", EXPLORER_CELLS).name
    with jupyter_lab(root, tmp_path / "jupyter", deadline) as (base, token), \
            chromium(tmp_path / "chrome") as driver:
        try:
            open_and_run(driver, base, token, notebook, deadline)
            deadline.wait("the widget's slider", lambda: driver.find_elements(
                By.CSS_SELECTOR, ".jp-OutputArea-output .widget-slider .noUi-handle"), limit=90)
            svg_before = deadline.wait("the Vega chart (SVG) in the widget", lambda: chart_svg(driver), limit=60)
            text_before = deadline.wait("the readout", lambda: readout_text(driver), limit=30)
            assert "sparsity" in text_before and "0.50" in text_before, text_before
            assert "<rect" in svg_before or "<path" in svg_before

            handle = driver.find_element(By.CSS_SELECTOR, ".jp-OutputArea-output .widget-slider .noUi-handle")
            handle.click()
            for _ in range(5):  # 5 steps of 0.01: sparsity 0.50 → 0.55
                handle.send_keys(Keys.ARROW_RIGHT)
            deadline.wait("the readout to show the new sparsity", lambda: "0.55" in readout_text(driver), limit=30)
            text_after = readout_text(driver)
            svg_after = deadline.wait("the chart to be redrawn", lambda: (s := chart_svg(driver)) != svg_before and s,
                                      limit=30)
            assert text_after != text_before
            assert svg_after != svg_before
            assert "0.55" in driver.find_element(By.CSS_SELECTOR, ".jp-OutputArea-output .widget-readout").text
            driver.execute_script("document.querySelector('.jp-OutputArea-output .jp-RenderedVegaCommon5')"
                                  ".scrollIntoView({block: 'center'});")
            time.sleep(0.5)
            driver.save_screenshot(str(SCREENSHOT))
            local, bad = page_requests(driver)
            deadline.mark("screenshot taken, network log read")
            assert local > 10, f"the performance log saw only {local} requests to JupyterLab: is it recording?"
            assert not bad, f"the page requested outside hosts (charts must render offline): {bad[:10]}"
        except BaseException:
            with contextlib.suppress(Exception):
                driver.save_screenshot(str(SCREENSHOT))
            with contextlib.suppress(Exception):
                errors = [e["message"] for e in driver.get_log("browser") if e["level"] == "SEVERE"]
                print("browser console errors:", *errors[:20], sep="\n  ")
            print("jupyter log tail:\n", (tmp_path / "jupyter" / "jupyter.log").read_text()[-3000:])
            raise


def executed_lesson(root: Path, key: str) -> Path:
    """Execute lesson ``key`` at CI size into ``root`` with the course runner (headless, synthetic data, no
    download) and check its saved outputs; returns the executed notebook."""
    from thinlab import course
    from thinlab.widgets.base import NOTE

    t0 = time.monotonic()
    course.run_lesson(key, fast=True, data="synthetic", out_dir=root, progress=False, extra={"DOWNLOAD": False})
    path = root / course.lesson(key).notebook
    print(f"[lesson {key} executed at CI size in {time.monotonic() - t0:.0f} s]", flush=True)
    nb = nbformat.read(path, as_version=4)
    outs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    assert not [o for o in outs if o.output_type == "error"]
    shown = [o.data for o in outs if "application/vnd.jupyter.widget-view+json" in o.get("data", {})]
    # the only widgets left are explorers (progress bars are text when headless), each with its note and image
    assert shown, f"lesson {key} displays no explorer"
    for data in shown:
        assert NOTE in data["text/plain"] and "VBox(" not in data["text/plain"], data["text/plain"][:200]
        assert "<img" in data.get("text/html", "") and "data:image/png;base64," in data["text/html"]
    return path


def test_executed_lesson_opens_with_static_explorers(tmp_path, lesson_cache):
    """A saved, executed lesson opened (not run) in JupyterLab: no ``VBox(`` text, the explorer's image shown."""
    ensure_chromium()
    root = tmp_path / "root"
    root.mkdir()
    open_saved(root, executed_lesson(root, LESSON).name, tmp_path)


def open_saved(root: Path, notebook: str, tmp_path: Path) -> None:
    """Open ``root/notebook`` in JupyterLab without running it; check the page as a reader sees it."""
    from selenium.webdriver.common.by import By

    from thinlab.widgets.base import NOTE

    n_cells = len(nbformat.read(root / notebook, as_version=4).cells)
    deadline = Deadline(LESSON_BUDGET)
    with jupyter_lab(root, tmp_path / "jupyter", deadline) as (base, token), \
            chromium(tmp_path / "chrome") as driver:
        try:
            driver.get(f"{base}/lab/tree/{notebook}?token={token}")
            deadline.wait(f"all {n_cells} cells in the page", lambda: len(driver.find_elements(
                By.CSS_SELECTOR, ".jp-NotebookPanel .jp-Notebook .jp-Cell")) >= n_cells, limit=60)
            img = deadline.wait("the explorer's static image", lambda: driver.execute_script(
                "const i = document.querySelector('.jp-OutputArea-output img.thinlab-static-chart,"
                " .jp-OutputArea-output img[src^=\"data:image/png\"]');"
                "if (!i) return null; i.scrollIntoView({block: 'center'});"
                "return i.complete && i.naturalWidth > 0 ? i : null;"), limit=30)
            time.sleep(0.5)
            box = img.rect
            assert box["width"] > 200 and box["height"] > 100, f"the static image is drawn {box}"
            assert img.is_displayed()
            text = driver.execute_script("return document.querySelector('.jp-NotebookPanel .jp-Notebook').textContent")
            assert len(text) > 2000, "the notebook's text did not load"
            assert "VBox(" not in text, "raw widget repr text in the opened lesson: " + \
                text[max(0, text.index("VBox(") - 200):text.index("VBox(") + 100]
            assert NOTE in text, "the explorer's note is not shown"
            assert "Error displaying widget" not in text
            driver.save_screenshot(str(LESSON_SCREENSHOT))
            deadline.mark("checked the page; screenshot taken")
        except BaseException:
            with contextlib.suppress(Exception):
                driver.save_screenshot(str(LESSON_SCREENSHOT))
            print("jupyter log tail:\n", (tmp_path / "jupyter" / "jupyter.log").read_text()[-3000:])
            raise
