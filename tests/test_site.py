"""The course as an offline website (``make site``): built here from lesson 04 (charts, explorers and progress
bars; the cheapest lesson at CI size), which the builder executes first because its executed copy is
missing. The HTML is parsed: every chart of the executed notebook is an inline SVG, every explorer a
static widget with the "live in JupyterLab" note, no script or stylesheet is loaded from anywhere, ids
are unique, the index links the page and Binder. Then headless Chromium opens the site from a local
server and takes a screenshot (``build/site-screenshot.png``), asking no other host for anything.
"""
from __future__ import annotations

import contextlib
import functools
import html
import http.server
import re
import subprocess
import threading
import time
from html.parser import HTMLParser
from pathlib import Path

import nbformat
import pytest

from thinlab import course
from thinlab.classroom import site

LESSON = "04"
SCREENSHOT = course.REPO / "build" / "site-screenshot.png"

pytestmark = pytest.mark.slow


class Page(HTMLParser):
    """The tags of a page that matter here."""

    def __init__(self):
        super().__init__()
        self.depth_svg, self.svgs, self.scripts, self.links, self.srcs, self.ids = 0, 0, [], [], [], []
        self.widget_divs, self.ranges, self.anchors, self.styles, self._in_style = 0, [], [], [], False

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "svg":
            self.svgs += self.depth_svg == 0
            self.depth_svg += 1
        if tag == "script":
            self.scripts.append(a)
        if tag == "link":
            self.links.append(a)
        if tag == "style":
            self._in_style = True
        for key in ("src", "srcset", "data"):
            if a.get(key):
                self.srcs.append(a[key])
        if "id" in a:
            self.ids.append(a["id"])
        if tag == "div" and "widget" in (a.get("class") or "").split():
            self.widget_divs += 1
        if tag == "input" and a.get("type") == "range":
            self.ranges.append(a)
        if tag == "a":
            self.anchors.append(a.get("href", ""))

    def handle_startendtag(self, tag, attrs):
        self.handle_starttag(tag, attrs)
        if tag == "svg":
            self.depth_svg -= 1

    def handle_endtag(self, tag):
        if tag == "svg":
            self.depth_svg -= 1
        if tag == "style":
            self._in_style = False

    def handle_data(self, data):
        if self._in_style:
            self.styles.append(data)


def parse(path: Path) -> Page:
    p = Page()
    p.feed(path.read_text())
    return p


def expected_outputs(nb) -> tuple:
    """(charts, explorer widgets) the executed notebook shows, charts inside widgets included."""
    state = nb.metadata.get("widgets", {}).get(site.WIDGET_STATE, {}).get("state", {})

    def charts_in(outputs) -> int:
        n = 0
        for o in outputs:
            data = o.get("data", {})
            if "image/svg+xml" in data or site.VL5 in data:
                n += 1
            elif site.WIDGET_VIEW in data:
                n += charts_in_widget(data[site.WIDGET_VIEW]["model_id"])
        return n

    def charts_in_widget(mid: str) -> int:
        st = state.get(mid, {}).get("state", {})
        kids = [c[len("IPY_MODEL_"):] for c in st.get("children", [])]
        return charts_in(st.get("outputs", [])) + sum(charts_in_widget(k) for k in kids)

    outs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    views = [o["data"][site.WIDGET_VIEW]["model_id"] for o in outs if site.WIDGET_VIEW in o.get("data", {})]
    explorers = [v for v in views if not site._is_progress(v, state)]
    return charts_in(outs), len(explorers)


@pytest.fixture(scope="module")
def built(tmp_path_factory, lesson_cache):
    executed = tmp_path_factory.mktemp("executed")
    out = tmp_path_factory.mktemp("site")
    log = []
    index = site.build(out, only=LESSON, executed_dir=executed, log=log.append)
    assert any("executed copy missing; running it at CI size" in line for line in log), log
    nb = nbformat.read(executed / course.lesson(LESSON).notebook, as_version=4)
    return out, index, nb


def test_lesson_page_has_every_chart_as_inline_svg_and_nothing_remote(built):
    out, index, nb = built
    l = course.lesson(LESSON)
    page = parse(out / site.page_name(l))
    n_charts, n_explorers = expected_outputs(nb)
    assert n_charts >= 5 and n_explorers >= 1, "lesson 04 should show charts and an explorer"
    assert page.svgs == n_charts, f"{page.svgs} inline SVGs for {n_charts} charts"
    assert page.scripts == [], "a static page needs no script"
    assert not [a for a in page.links if "stylesheet" in (a.get("rel") or "")], "styles are inline"
    assert not [s for s in page.srcs if not s.startswith("data:")], "only data: URLs as sources"
    assert not any(re.search(r"@import|url\(\s*['\"]?https?:", s) for s in page.styles)
    assert len(page.ids) == len(set(page.ids)), "ids must be unique across the page's charts"
    assert page.widget_divs == n_explorers and page.ranges and all("disabled" in r for r in page.ranges)
    text = (out / site.page_name(l)).read_text()
    assert text.count("Interactive in JupyterLab") == n_explorers
    assert "Executed at CI size (FAST parameters)" in text
    assert site.binder_url(l) in text
    for cell in nb.cells:  # every printed number of the run is on the page
        for o in cell.get("outputs", []):
            if o.get("output_type") == "stream" and o.get("name") == "stdout":
                first = o["text"].strip().splitlines()[:1]
                if first:
                    assert html.escape(first[0]) in text, first[0]


def test_index_lists_the_lesson_with_page_and_binder_links(built):
    out, index, _ = built
    l = course.lesson(LESSON)
    page = parse(index)
    assert site.page_name(l) in page.anchors and site.binder_url(l) in page.anchors
    assert page.scripts == [] and not [s for s in page.srcs if not s.startswith("data:")]
    readme = (course.REPO / "README.md").read_text()
    assert site.BINDER in readme, "the site's Binder links must follow the README's badge"


def test_make_site_runs_the_site_command():
    done = subprocess.run(["make", "-n", "site"], cwd=course.REPO, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "-m thinlab.course site" in done.stdout


@contextlib.contextmanager
def serve(folder: Path):
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(folder))
    handler.log_message = lambda *a, **k: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.browser
def test_site_in_headless_chromium(built, tmp_path):
    from test_browser import chromium, ensure_chromium, page_requests

    ensure_chromium()
    out, _, nb = built
    n_charts, n_explorers = expected_outputs(nb)
    l = course.lesson(LESSON)
    with serve(out) as base, chromium(tmp_path / "profile") as driver:
        driver.get(f"{base}/index.html")
        link = driver.find_element("css selector", f'a[href="{site.page_name(l)}"]')
        link.click()
        end = time.monotonic() + 60
        while driver.execute_script("return document.readyState") != "complete" or \
                site.page_name(l) not in driver.current_url:
            assert time.monotonic() < end, "the lesson page did not load"
            time.sleep(0.2)
        drawn = driver.execute_script(
            "return [...document.querySelectorAll('main svg')].filter(s => !s.parentElement.closest('svg'))"
            ".map(s => { const r = s.getBoundingClientRect(); return [r.width, r.height, "
            "s.querySelectorAll('path, rect, text').length]; });")
        assert len(drawn) == n_charts and all(w > 50 and h > 20 and marks > 3 for w, h, marks in drawn), drawn
        driver.execute_script("document.querySelector('.widget').scrollIntoView()")
        assert driver.find_element("css selector", ".widget .note").is_displayed()
        SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
        driver.save_screenshot(str(SCREENSHOT))
        local, elsewhere = page_requests(driver)
    assert local >= 2 and elsewhere == [], f"the site asked other hosts for: {elsewhere[:5]}"
    assert SCREENSHOT.stat().st_size > 20_000
