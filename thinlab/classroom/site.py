"""The executed course as an offline website: ``make site`` (``python -m thinlab.course site``) → build/site/.

* ``index.html``: the lesson table (title, library modules, exercises, how each page was executed,
  an "open on Binder" link);
* ``<lesson>.html``: one page per executed lesson: the markdown, the code, its outputs; every chart
  as inline SVG (the executed notebook's offline ``image/svg+xml``, or drawn here by vl-convert from
  the Vega-Lite spec), every widget as its last static state with a note that it is live in JupyterLab.

Source: the executed notebooks in ``build/lessons/`` (``make lessons`` writes them, at full size or with
``FAST=1``). A lesson whose executed copy is missing, or was executed from an older version of its
notebook, is executed first at CI size (``course.run_lesson(key, fast=True, data=DATA)``, synthetic
data by default) into ``build/lessons/``. Each page says which parameters it ran with.

Nothing on a page loads from anywhere: no script or stylesheet URL (one small inline stylesheet),
images and audio as data: URLs, charts as inline SVG (with their ids made unique per chart).

Taught in: the classroom tools, not a lesson
"""
from __future__ import annotations

import html
import itertools
import json
import re
from pathlib import Path

from thinlab._io import atomic_file
from thinlab.classroom import exercises as ex

#: the README's Binder badge, opened at one notebook (kept in step with README.md by tests/test_site.py)
BINDER = "https://mybinder.org/v2/gh/thinlab/thinlab/HEAD?urlpath=lab/tree/lessons"
VL5 = "application/vnd.vegalite.v5+json"
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
WIDGET_STATE = "application/vnd.jupyter.widget-state+json"
WIDGET_NOTE = ("Interactive in JupyterLab: this is the widget's last state when the notebook ran. Open the lesson "
               "on Binder or run <code>make lab</code> to move it.")
_SVG_COUNTER = itertools.count(1)

CSS = """
body{font:16px/1.55 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0;color:#1d1f21;background:#fff}
header{background:#12344d;color:#fff;padding:.8em 1.5em;display:flex;gap:1.2em;align-items:center;flex-wrap:wrap}
header a{color:#fff} header .brand{font-weight:700;font-size:1.15em;text-decoration:none}
main{max-width:62em;margin:0 auto;padding:1em 1.5em 4em}
a.binder{background:#f5a623;color:#111;padding:.25em .7em;border-radius:4px;text-decoration:none;font-weight:600}
.ran{background:#eef4f8;border-left:4px solid #12344d;padding:.5em .8em;font-size:.9em}
.cell{margin:1em 0}
.input pre{background:#f6f8fa;border:1px solid #e1e4e8;border-radius:4px;padding:.6em .8em;overflow-x:auto;
 font-size:.88em;line-height:1.4}
.output{margin:.3em 0 .3em 1.2em;overflow-x:auto}
.output pre{margin:.2em 0;font-size:.85em;white-space:pre-wrap}
.output pre.stderr{color:#8a6d00} .output pre.error{color:#b00020;background:#fff3f3;padding:.4em}
.chart svg{max-width:100%;height:auto}
.widget{border:1px dashed #8aa4b8;border-radius:6px;padding:.6em .8em;margin:.4em 0}
.widget .note{font-size:.85em;color:#47606f;margin-bottom:.4em}
.w-box{display:flex;flex-direction:column;gap:.3em} .w-hbox{display:flex;flex-direction:row;gap:.8em;flex-wrap:wrap}
.w-progress .w-hbox{align-items:center;font-size:.8em;color:#47606f;gap:.4em}
.w-control{display:flex;gap:.6em;align-items:center;font-size:.9em} .w-control input[type=range]{width:14em}
table{border-collapse:collapse;font-size:.9em} th,td{border:1px solid #d0d7de;padding:.25em .6em;text-align:left}
h1 .anchor-link,h2 .anchor-link,h3 .anchor-link{visibility:hidden;margin-left:.3em;text-decoration:none}
h1:hover .anchor-link,h2:hover .anchor-link,h3:hover .anchor-link{visibility:visible}
nav.pager{display:flex;justify-content:space-between;margin-top:3em}
"""


def _pygments_css() -> str:
    from pygments.formatters import HtmlFormatter

    return HtmlFormatter(style="default").get_style_defs(".highlight")


def highlight(code: str) -> str:
    from pygments import highlight as _hl
    from pygments.formatters import HtmlFormatter
    from pygments.lexers import PythonLexer

    return _hl(code, PythonLexer(), HtmlFormatter(cssclass="highlight"))


def markdown(text: str) -> str:
    from nbconvert.filters.markdown_mistune import markdown2html_mistune

    return strip_active(markdown2html_mistune(text))


def strip_active(fragment: str) -> str:
    """Remove what a static offline page must not hold: scripts, stylesheet links, remote sources."""
    fragment = re.sub(r"(?is)<script\b.*?</script\s*>", "", fragment)
    fragment = re.sub(r"(?is)<script\b[^>]*/?>", "", fragment)
    fragment = re.sub(r"(?is)<link\b[^>]*>", "", fragment)
    fragment = re.sub(r"(?is)@import\s+url\([^)]*\)\s*;?", "", fragment)
    return re.sub(r"""(?is)\b(src|srcset)\s*=\s*(["'])\s*(https?:)?//[^"']*\2""", r'\1=""', fragment)


def inline_svg(svg: str) -> str:
    """An SVG document as an inline element whose ids cannot clash with another chart's on the page."""
    svg = re.sub(r"(?s)<\?xml.*?\?>|<!DOCTYPE.*?>", "", svg).strip()
    prefix = f"c{next(_SVG_COUNTER)}-"
    ids = set(re.findall(r'\bid="([^"]+)"', svg))
    for i in sorted(ids, key=len, reverse=True):
        esc = re.escape(i)
        svg = re.sub(rf'\bid="{esc}"', f'id="{prefix}{i}"', svg)
        svg = re.sub(rf"url\(#{esc}\)", f"url(#{prefix}{i})", svg)
        svg = re.sub(rf'href="#{esc}"', f'href="#{prefix}{i}"', svg)
    return strip_active(svg)


def _text(value) -> str:
    return "".join(value) if isinstance(value, list) else str(value)


def render_output(out: dict, widgets: dict) -> str:
    from nbconvert.filters.ansi import strip_ansi

    kind = out.get("output_type")
    if kind == "stream":
        cls = "stderr" if out.get("name") == "stderr" else "stdout"
        return f'<pre class="{cls}">{html.escape(strip_ansi(_text(out.get("text", ""))))}</pre>'
    if kind == "error":
        tb = strip_ansi("\n".join(out.get("traceback", []))) or f"{out.get('ename')}: {out.get('evalue')}"
        return f'<pre class="error">{html.escape(tb)}</pre>'
    data = out.get("data", {})
    if WIDGET_VIEW in data:
        return render_widget(data[WIDGET_VIEW].get("model_id", ""), widgets, data)
    if "image/svg+xml" in data:
        return f'<div class="chart">{inline_svg(_text(data["image/svg+xml"]))}</div>'
    if VL5 in data or "application/vnd.vegalite.v4+json" in data:
        import vl_convert

        from thinlab import charts

        spec = data.get(VL5) or data["application/vnd.vegalite.v4+json"]
        spec = json.loads(spec) if isinstance(spec, str) else spec
        svg = vl_convert.vegalite_to_svg(charts.to_vl5(spec), vl_version=charts.VL5_VERSION)
        return f'<div class="chart">{inline_svg(svg)}</div>'
    if "text/html" in data:
        return f'<div class="html">{strip_active(_text(data["text/html"]))}</div>'
    for mime in ("image/png", "image/jpeg", "image/gif"):
        if mime in data:
            b64 = _text(data[mime]).replace("\n", "")
            return f'<img alt="figure" src="data:{mime};base64,{b64}">'
    if "text/markdown" in data:
        return markdown(_text(data["text/markdown"]))
    if "text/plain" in data:
        return f"<pre>{html.escape(strip_ansi(_text(data['text/plain'])))}</pre>"
    return ""


def render_widget(model_id: str, widgets: dict, data: dict) -> str:
    """A widget's last state as static HTML, with a note that it is live in JupyterLab (a progress bar, such
    as tqdm's, is shown as it ended, without the note)."""
    body = _widget(model_id, widgets, depth=0) if model_id in widgets else \
        f"<pre>{html.escape(_text(data.get('text/plain', 'a widget')))}</pre>"
    if _is_progress(model_id, widgets):
        return f'<div class="w-progress">{body}</div>'
    return f'<div class="widget"><div class="note">{WIDGET_NOTE}</div>{body}</div>'


def _is_progress(model_id: str, widgets: dict) -> bool:
    """A box of labels around a progress bar, and nothing a reader could move."""
    st = widgets.get(model_id, {}).get("state", {})
    kids = [widgets.get(c[len("IPY_MODEL_"):], {}).get("model_name", "") for c in st.get("children", [])
            if isinstance(c, str)]
    return any(k.endswith("ProgressModel") for k in kids) and all(
        k.endswith(("ProgressModel", "HTMLModel", "LabelModel")) for k in kids)


def _widget(model_id: str, widgets: dict, depth: int) -> str:
    model = widgets.get(model_id)
    if model is None or depth > 20:
        return ""
    name, st = model.get("model_name", ""), model.get("state", {})
    desc = html.escape(str(st.get("description", "")))
    children = [c[len("IPY_MODEL_"):] for c in st.get("children", []) if isinstance(c, str)]
    if children:
        cls = "w-hbox" if name.startswith("HBox") else "w-box"
        return f'<div class="{cls}">' + "".join(_widget(c, widgets, depth + 1) for c in children) + "</div>"
    if name == "OutputModel":
        return "".join(render_output(o, widgets) for o in st.get("outputs", []))
    if name in ("HTMLModel", "HTMLMathModel"):
        return f'<div class="w-html">{strip_active(str(st.get("value", "")))}</div>'
    if name.endswith("ProgressModel"):
        return (f'<progress value="{st.get("value", 0)}" max="{st.get("max", 100)}"></progress>'
                if st.get("bar_style") != "danger" else '<progress value="0" max="1"></progress> (stopped)')
    if name == "LabelModel":
        return f"<div>{html.escape(str(st.get('value', '')))}</div>"
    if "Slider" in name:
        value = st.get("value")
        labels = st.get("_options_labels")
        if labels is not None:  # a SelectionSlider: its value is an index into the labels
            idx = st.get("index", 0) or 0
            shown, lo, hi, step, pos = (labels[idx] if idx < len(labels) else ""), 0, max(0, len(labels) - 1), 1, idx
        else:
            lo, hi, step, pos = st.get("min", 0), st.get("max", 100), st.get("step", 1), value
            shown = value
        if isinstance(pos, list):  # a range slider
            pos, shown = pos[0], f"{value[0]} – {value[1]}"
        return (f'<label class="w-control">{desc} <input type="range" disabled min="{lo}" max="{hi}" '
                f'step="{step}" value="{pos}"> <b>{html.escape(str(shown))}</b></label>')
    if "_options_labels" in st:  # dropdowns, toggle buttons, radio buttons
        labels, idx = st.get("_options_labels", []), st.get("index")
        shown = labels[idx] if isinstance(idx, int) and 0 <= idx < len(labels) else ""
        return f'<div class="w-control">{desc} <b>{html.escape(str(shown))}</b></div>'
    if "value" in st:  # checkboxes, text fields, progress bars
        return f'<div class="w-control">{desc} <b>{html.escape(str(st["value"]))}</b></div>'
    if name == "ButtonModel":
        return f'<button disabled>{desc}</button>'
    return f'<div class="w-control">[{html.escape(name)}]</div>' if not name.endswith(("LayoutModel", "StyleModel")) \
        else ""


def lesson_page(nb, lesson, *, prev=None, next_=None, binder: str = BINDER) -> str:
    """The HTML page of one executed lesson notebook."""
    widgets = nb.metadata.get("widgets", {}).get(WIDGET_STATE, {}).get("state", {})
    parts = []
    for cell in nb.cells:
        tags = cell.get("metadata", {}).get("tags", [])
        if cell.cell_type == "markdown":
            parts.append(f'<div class="cell md">{markdown(ex.source(cell))}</div>')
        elif cell.cell_type == "code":
            label = " (parameters injected by the run)" if "injected-parameters" in tags else ""
            outs = "".join(render_output(o, widgets) for o in cell.get("outputs", []))
            parts.append(f'<div class="cell code"><div class="input">{label and f"<small>{label}</small>"}'
                         f'{highlight(ex.source(cell))}</div>'
                         + (f'<div class="output">{outs}</div>' if outs else "") + "</div>")
    pm = nb.metadata.get("papermill", {})
    params = pm.get("parameters", {})
    size = "CI size (FAST parameters)" if params.get("FAST") else "full size"
    shown = ", ".join(f"{k}={v!r}" for k, v in params.items() if k not in ("RESULTS",))
    took = f" in {pm['duration']:.0f} s" if isinstance(pm.get("duration"), (int, float)) else ""
    when = f" on {str(pm.get('end_time', ''))[:10]}" if pm.get("end_time") else ""
    ran = (f'<p class="ran">Executed at {size}{took}{when}, with {html.escape(shown) or "its defaults"}. '
           "The numbers below come from that run; run the notebook yourself for your own.</p>")
    pager = '<nav class="pager">' + (f'<a href="{page_name(prev)}">← {prev.key} {html.escape(prev.title)}</a>' if prev
                                     else "<span></span>") + \
            (f'<a href="{page_name(next_)}">{next_.key} {html.escape(next_.title)} →</a>' if next_ else "") + "</nav>"
    return _page(f"{lesson.key} · {lesson.title}", ran + "".join(parts) + pager, binder=binder_url(lesson, binder))


def page_name(lesson) -> str:
    return Path(lesson.notebook).stem + ".html"


def binder_url(lesson, base: str = BINDER) -> str:
    """The lesson opened in JupyterLab on Binder (``base``: the README's badge URL, or a fork's)."""
    return f"{base.rstrip('/')}/{lesson.notebook}"


def _page(title: str, body: str, *, binder: str | None = None) -> str:
    link = f'<a class="binder" href="{html.escape(binder)}">Open on Binder</a>' if binder else ""
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
            f"<title>{html.escape(title)} · thinlab</title><style>{CSS}{_pygments_css()}</style></head><body>"
            f'<header><a class="brand" href="index.html">thinlab</a><span>{html.escape(title)}</span>{link}</header>'
            f"<main>{body}</main></body></html>\n")


def index_page(rows: list, binder: str = BINDER) -> str:
    lines = []
    for lesson, nb, n_ex in rows:
        pm = nb.metadata.get("papermill", {})
        size = "CI size" if pm.get("parameters", {}).get("FAST") else "full size"
        took = f", {pm['duration']:.0f} s" if isinstance(pm.get("duration"), (int, float)) else ""
        mods = ", ".join(f"<code>thinlab.{m}</code>" for m in lesson.modules)
        lines.append(f'<tr><td>{lesson.key}</td><td><a href="{page_name(lesson)}">{html.escape(lesson.title)}</a></td>'
                     f"<td>{mods}</td><td>{n_ex}</td><td>{size}{took}</td>"
                     f'<td><a class="binder" href="{html.escape(binder_url(lesson, binder))}">Binder</a></td></tr>')
    body = ("<h1>thinlab: learn neural-network compression by running it</h1>"
            "<p>The executed lessons of the course, on Google Speech Commands. Each page shows one run of the "
            "notebook: its code, printed numbers and charts. The sliders are live in JupyterLab only: open a lesson "
            "on Binder, or clone the repository and run <code>make lab</code>.</p>"
            "<table><thead><tr><th>lesson</th><th>title</th><th>library modules</th><th>exercises</th>"
            "<th>executed at</th><th>open</th></tr></thead><tbody>" + "".join(lines) + "</tbody></table>")
    return _page("the course", body)


def _stale(executed, lesson_nb) -> bool:
    """True when the executed notebook's code differs from the lesson's (or it never ran)."""
    def code(nb, skip_injected):
        return [ex.source(c) for c in nb.cells if c.cell_type == "code"
                and not (skip_injected and "injected-parameters" in c.get("metadata", {}).get("tags", []))]
    ran = any(c.get("execution_count") for c in executed.cells if c.cell_type == "code")
    return not ran or code(executed, True) != code(lesson_nb, False)


def build(out=None, only=None, *, data: str = "synthetic", executed_dir=None, binder: str = BINDER,
          log=print) -> Path:
    """Build the site into ``out`` (default build/site); returns the index page's path. ``binder``: the
    Binder URL that opens JupyterLab on the lessons folder (for a fork, its own)."""
    if not re.match(r"https?://", binder):
        raise ValueError(f"binder={binder!r}: expected the http(s) URL of the Binder badge, e.g. {BINDER}")
    import nbformat

    from thinlab import course

    out = Path(out or course.REPO / "build" / "site")
    executed_dir = Path(executed_dir or course.BUILD_DIR)
    lessons = list(course.LESSONS)
    if only:
        wanted = [k.strip() for k in (only.split(",") if isinstance(only, str) else only) if str(k).strip()]
        unknown = [k for k in wanted if k not in {l.key for l in lessons}]
        if unknown:
            raise ValueError(f"--only: no lesson {', '.join(map(repr, unknown))}; the lessons are "
                             f"{', '.join(l.key for l in lessons)}")
        lessons = [l for l in lessons if l.key in wanted]
    rows = []
    for l in lessons:
        source = nbformat.read(course.LESSON_DIR / l.notebook, as_version=4)
        path = executed_dir / l.notebook
        executed = nbformat.read(path, as_version=4) if path.is_file() else None
        if executed is None or _stale(executed, source):
            why = "missing" if executed is None else "older than the lesson"
            log(f"== lesson {l.key}: executed copy {why}; running it at CI size on {data} data into {executed_dir}")
            course.run_lesson(l.key, fast=True, data=data, out_dir=executed_dir, progress=False,
                              extra={"DOWNLOAD": False} if data == "synthetic" else None)
            executed = nbformat.read(path, as_version=4)
        rows.append((l, executed, len(ex.find_exercises(source))))
    out.mkdir(parents=True, exist_ok=True)
    for i, (l, nb, _) in enumerate(rows):
        prev = rows[i - 1][0] if i > 0 else None
        nxt = rows[i + 1][0] if i + 1 < len(rows) else None
        with atomic_file(out / page_name(l), "w") as f:
            f.write(lesson_page(nb, l, prev=prev, next_=nxt, binder=binder))
    with atomic_file(out / "index.html", "w") as f:
        f.write(index_page(rows, binder))
    for page in [out / "index.html"] + [out / page_name(l) for l, _, _ in rows]:
        page.chmod(0o644)  # a web page is for everyone to read (atomic_file's temporary files are private)
    log(f"site: {len(rows)} lesson page(s) and index.html in {out}")
    return out / "index.html"
