"""Altair chart builders (pure functions from data to chart) and the offline rendering path.

Rendering: altair 6 writes Vega-Lite v6, which JupyterLab 4 does not draw natively, and its default
renderer loads vega from a CDN (blank offline). Importing this module registers and enables the
``"thinlab"`` renderer, whose output carries
  * ``application/vnd.vegalite.v5+json``: drawn natively (interactive, offline) by JupyterLab 4;
  * ``image/svg+xml``: the same chart rendered offline by vl-convert (Vega-Lite 5), used by static
    HTML (nbconvert) and any front end without a Vega renderer;
  * ``text/plain``: a one-line description.
All three are valid nbformat outputs, so papermill's executed notebooks validate.

Lessons need no raw altair: builders ``lines``, ``bars``, ``scatter``, ``histogram``, ``heatmap``,
``image_grid``, ``categorical_heatmap``, ``small_multiples``, ``waterfall`` (``log_x=``/``log_y=`` for log
axes); overlays ``rules`` (labelled reference lines) and ``band`` (a shaded interval); composition
``layer(a, b, ...)`` (or ``a + b``) and ``grid([a, b, ...], columns=N)`` (or ``a | b``). ``lint(chart)``
lists what breaks the house style (≤ 10 colours, no symlog without enough ticks, explicit log ticks,
heatmap axes, labelled reference rules, no overlapping tick labels, nothing clipped: titles wrapped to the
chart's width, legends and category labels kept whole); ``svg_problems(svg)`` checks a rendered static SVG
for text that is cut.

Taught in: all lessons (first in 00_speech_commands)
"""
from __future__ import annotations

import contextlib
import re

import altair as alt
import numpy as np

VL5_SCHEMA = "https://vega.github.io/schema/vega-lite/v5.20.1.json"
VL5_VERSION = "5.20"
_SVG = {"on": True}


def to_vl5(spec: dict) -> dict:
    """The chart's spec with its ``$schema`` set to Vega-Lite 5 (the builders here use only v5 features).

    Taught in: all lessons (the renderer; the classroom site uses it directly)
    """
    return {**spec, "$schema": VL5_SCHEMA}


def mimebundle(spec: dict, *, svg: bool | None = None) -> dict:
    """The notebook output for a chart spec: Vega-Lite 5 JSON (+ offline SVG) (+ text).

    Taught in: all lessons (the renderer)
    """
    import vl_convert

    spec5 = to_vl5(spec)
    bundle = {"application/vnd.vegalite.v5+json": spec5,
              "text/plain": f"<thinlab chart: {spec.get('title') or spec.get('mark') or 'layered'}>"}
    if _SVG["on"] if svg is None else svg:
        bundle["image/svg+xml"] = vl_convert.vegalite_to_svg(spec5, vl_version=VL5_VERSION)
    return bundle


def _renderer(spec: dict, **_metadata):
    return mimebundle(spec)


@contextlib.contextmanager
def svg_fallback(enabled: bool):
    """Temporarily turn the SVG copy on or off (widgets redraw faster without it).

    Taught in: all lessons with sliders (widgets)
    """
    old = _SVG["on"]
    _SVG["on"] = enabled
    try:
        yield
    finally:
        _SVG["on"] = old


def enable() -> None:
    """Enable the offline ``thinlab`` renderer (done on import). Taught in: 00_speech_commands"""
    alt.renderers.register("thinlab", _renderer)
    alt.renderers.enable("thinlab")
    alt.data_transformers.disable_max_rows()


enable()


# ------------------------------------------------------------------ house style
#
# Every builder below follows the rules that :func:`lint` checks: at most 10 colours in one colour scale,
# no symlog scale, log axes with explicit ticks at 1·10^k (plus 2·10^k and 5·10^k when the axis spans under
# two decades), thinned until their labels fit the axis, and ``labelOverlap``; heatmaps with titled axes and
# ticks that fit; reference rules with a text label; titles wrapped to the chart's width (at most
# ``TITLE_WIDTH`` characters a line); legend and category labels with limits that keep them whole.

MAX_COLORS = 10
TITLE_WIDTH = 60
MAX_LOG_TICKS = 8
#: estimated width of one character: a tick / legend label at the default 10 px font, a 13 px bold title
CHAR_PX = 6.0
TITLE_CHAR_PX = 7.0
_DASHES = [[1, 0], [5, 3], [2, 2], [8, 3, 2, 3], [1, 3]]
_SHAPES = ["circle", "square", "triangle-up", "diamond", "cross", "triangle-down", "triangle-left", "triangle-right"]
#: log-axis tick labels (``labelExpr``): "1", "20", "5k", "10M" when every tick is >= 1; else "1e-4", "0.02", "0.5",
#: "1e4". :func:`tick_label` recognises exactly these two strings (the lint's label widths rest on it), so every
#: log axis takes them from here (:func:`log_axis`).
LABEL_SI = "format(datum.value, '~s')"
LABEL_SMALL = ("datum.value >= 1e4 || datum.value < 1e-2 ? replace(format(datum.value, '.0e'), '+', '') "
               ": format(datum.value, '~g')")
#: Vega-Lite 5's defaults where a spec says nothing: plot size, band step, label limits, label font, the spacing
#: of concatenated / faceted panels
_DEFAULT_SIZE = 300
_DEFAULT_STEP = 20
_DEFAULT_SPACING = 20
_AXIS_LABEL_LIMIT = 180
_LEGEND_LABEL_LIMIT = 160
_LEGEND_TITLE_LIMIT = 180
_LABEL_FONT = 10
_LEGEND_TITLE_FONT = 11


# ------------------------------------------------------------------ helpers

def _values(rows) -> list[dict]:
    """Plain JSON-able row dicts from a list of dicts or a pandas DataFrame."""
    if hasattr(rows, "to_dict"):
        rows = rows.to_dict(orient="records")
    out = []
    for r in rows:
        out.append({k: (v.item() if isinstance(v, np.generic) else v) for k, v in r.items()})
    return out


def block_reduce(M: np.ndarray, max_side: int = 64) -> np.ndarray:
    """Average-pool a 2-D array so neither side exceeds ``max_side`` (for weight images). Taught in: all lessons"""
    M = np.asarray(M, dtype=np.float64)
    fr, fc = max(1, -(-M.shape[0] // max_side)), max(1, -(-M.shape[1] // max_side))
    r, c = M.shape[0] // fr * fr, M.shape[1] // fc * fc
    return M[:r, :c].reshape(r // fr, fr, c // fc, fc).mean(axis=(1, 3))  # (r/fr, fr, c/fc, fc) → (r/fr, c/fc)


def wrap_title(text, width: int = TITLE_WIDTH):
    """``text`` unchanged if it fits in ``width`` characters, else a list of lines (Vega-Lite draws one per line).

    Taught in: all lessons (every builder's ``title=`` goes through it)
    """
    if text is None or isinstance(text, (list, tuple)) or len(str(text)) <= width:
        return list(text) if isinstance(text, tuple) else text
    lines, line = [], ""
    for word in str(text).split(" "):
        if line and len(line) + 1 + len(word) > width:
            lines.append(line)
            line = word
        else:
            line = f"{line} {word}" if line else word
    return lines + [line]


def title_chars(width_px) -> int:
    """How many title characters fit on one line of a chart ``width_px`` wide (at most ``TITLE_WIDTH``).

    Taught in: all lessons (every builder wraps its title to its width)
    """
    if not isinstance(width_px, (int, float)) or width_px <= 0:
        return TITLE_WIDTH
    return int(max(8, min(TITLE_WIDTH, width_px // TITLE_CHAR_PX)))


def _chart_title(title, width_px=None):
    """A chart title wrapped to ``width_px``, or nothing for "" / None (an empty title in a layer would hide
    its siblings')."""
    return wrap_title(title, title_chars(width_px)) if title else alt.Undefined


def _label_px(labels, font: float = 10) -> float:
    """Estimated pixel width of the longest of ``labels`` at a ``font`` px font."""
    return max([len(str(s)) for s in labels] or [0]) * CHAR_PX * font / 10


def _limit(labels, *, default: int, cap: int = 320, font: float = 10) -> int:
    """A ``labelLimit`` that keeps the longest of ``labels`` whole (at least Vega's ``default``, at most ``cap``)."""
    return int(min(cap, max(default, np.ceil(_label_px(labels, font)) + 4)))


def _legend(labels, title) -> alt.Legend:
    """A legend whose label and title limits keep ``labels`` and ``title`` whole (up to 320 px)."""
    return alt.Legend(labelLimit=_limit(labels, default=_LEGEND_LABEL_LIMIT),
                      titleLimit=_limit([title] if title else [], default=_LEGEND_TITLE_LIMIT, font=_LEGEND_TITLE_FONT))


def _part(node, key):
    """``key`` of a Vega-Lite spec dict or of an altair chart object; None when unset."""
    v = node.get(key) if isinstance(node, dict) else getattr(node, "_kwds", {}).get(key)
    return None if v is alt.Undefined else v


def _spacing(node) -> float:
    """The px between the panels of a concat / facet ``node`` (across columns); Vega-Lite's 20 when unset."""
    sp = _part(node, "spacing")
    sp = sp.get("column") if isinstance(sp, dict) else sp
    return sp if isinstance(sp, (int, float)) else _DEFAULT_SPACING


def _width_of(node, inherited=None) -> float | None:
    """The pixel width of a chart (an altair chart or its Vega-Lite spec dict, however nested), or None when unknown.

    hconcat: the panels' widths plus the spacing between them; concat with ``columns``: the widest panel of each
    column plus the spacing; vconcat: the widest row; facet: the inner spec's width × ``columns`` (1 when unset)
    plus the spacing; a unit or layer: its own ``width``, else ``inherited`` (the width of the layer it sits in),
    else (a layer) its widest child. The builders wrap titles to it and :func:`lint` (rule 8) checks titles with it.
    """
    if not isinstance(node, dict) and not hasattr(node, "_kwds"):
        return None
    concat = _part(node, "concat")
    kids = _part(node, "hconcat") or concat
    if kids:
        ws = [_width_of(k) for k in kids]
        if any(w is None for w in ws):
            return None
        cols = _part(node, "columns") if concat else None
        if isinstance(cols, int) and 0 < cols < len(ws):
            ws = [max(ws[i::cols]) for i in range(cols)]     # a grid: each column as wide as its widest panel
        return sum(ws) + _spacing(node) * (len(ws) - 1)
    rows = _part(node, "vconcat")
    if rows:
        ws = [_width_of(k) for k in rows]
        return None if any(w is None for w in ws) else max(ws)
    if _part(node, "facet") is not None and _part(node, "spec") is not None:
        inner = _width_of(_part(node, "spec"))
        if inner is None:
            return None
        cols = _part(node, "columns") or 1
        return inner * cols + _spacing(node) * (cols - 1)
    w = _part(node, "width")
    if isinstance(w, (int, float)):
        return float(w)
    if isinstance(inherited, (int, float)):
        return float(inherited)
    layers = _part(node, "layer")
    if layers:
        ws = [_width_of(k) for k in layers]
        return None if any(w is None for w in ws) else max(ws)
    return None


def _num(v) -> float | None:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return f if np.isfinite(f) else None


def log_ticks(lo: float, hi: float, *, max_ticks: int = MAX_LOG_TICKS) -> tuple[list[float], list[float]]:
    """Tick values and domain for a log axis covering ``[lo, hi]`` (both > 0).

    The domain is widened to whole powers of ten (at least one decade). Ticks sit at 10^k, every
    ``step``-th power so there are at most ``max_ticks``; when ``[lo, hi]`` spans under two decades
    (and the widened domain at most two) they also sit at 2·10^k and 5·10^k. Returns ``(ticks, [domain_lo, domain_hi])``, e.g.
    ``log_ticks(3, 40) → ([1, 2, 5, 10, 20, 50, 100], [1, 100])``, ``log_ticks(2e-9, 6e4)`` gives
    ``[1e-9, 1e-7, ..., 1e5]``.
    Taught in: 02_svd, 04_quantization, 05_fp16_transfer, 06_pipeline, 07_deploy (every log axis)
    """
    lo, hi = float(lo), float(hi)
    if not (lo > 0 and hi > 0):
        raise ValueError(f"a log axis needs positive values, got [{lo}, {hi}]")
    lo, hi = min(lo, hi), max(lo, hi)
    k0 = int(np.floor(np.log10(lo) + 1e-9))
    k1 = max(int(np.ceil(np.log10(hi) - 1e-9)), k0 + 1)
    decades = k1 - k0
    step = max(1, -(-decades // (max_ticks - 1)))     # ceil(decades / step) + 1 <= max_ticks
    k1 = k0 + step * -(-decades // step)                # end on a tick
    mult = (1, 2, 5) if hi / lo < 100 * (1 + 1e-9) and decades <= 2 else (1,)   # data under two decades
    ticks = [float(f"{m}e{k}") for k in range(k0, k1 + 1, step) for m in mult if m == 1 or k < k1]
    return ticks, [float(f"1e{k0}"), float(f"1e{k1}")]


def _labels_collide(gap, a: str, b: str, *, channel: str = "x", angle=0, font: float = _LABEL_FONT,
                    margin: float = 1.0) -> bool:
    """Whether neighbouring tick labels ``a`` and ``b`` (their text), ``gap`` px apart along a ``channel`` axis,
    drawn at ``angle`` degrees in a ``font`` px font, overlap. Side by side (x) their estimated half widths
    (``CHAR_PX`` per character of a 10 px label) plus 2 px must fit the gap; stacked (y) their height, font + 1 px;
    a rotated label needs only its projection. ``margin`` scales those spare pixels (2: twice as much room).
    The one estimate behind the builders' tick choices and :func:`lint`'s rule 7."""
    theta = np.deg2rad(float(angle or 0))
    w = (len(a) + len(b)) / 2 * font * CHAR_PX / 10
    along, across = gap * abs(np.cos(theta)), gap * abs(np.sin(theta))
    h = font + margin
    if channel == "y":
        ok = along >= h - 1e-9 or across >= w - 1e-9
    else:
        ok = along >= w + 2 * margin - 1e-9 or across >= h - 1e-9
    return not ok


def _log_label(ticks) -> str:
    """The ``labelExpr`` of a log axis with ``ticks``: :data:`LABEL_SI` when every tick is >= 1, else
    :data:`LABEL_SMALL`."""
    return LABEL_SI if ticks and min(ticks) >= 1 else LABEL_SMALL


def _ticks_fit(ticks, dom, *, length, channel, expr) -> bool:
    """Whether the labels of ``ticks`` on a log axis of ``length`` px over ``dom`` keep clear of each other."""
    if not length or len(ticks) < 2:
        return True
    axis = {"labelExpr": expr}
    span = np.log10(dom[1]) - np.log10(dom[0]) or 1.0
    pos = [(np.log10(t) - np.log10(dom[0])) / span * length for t in ticks]
    labels = [tick_label(t, axis) for t in ticks]
    return not any(_labels_collide(abs(p1 - p0), t0, t1, channel=channel)
                   for (p0, t0), (p1, t1) in zip(zip(pos, labels), zip(pos[1:], labels[1:])))


def fit_log_ticks(ticks, dom, *, length, channel: str = "x", expr: str | None = None) -> list[float]:
    """``ticks`` thinned until their labels fit an axis ``length`` px long: first the 2·10^k and 5·10^k
    ticks go, then every second power of ten, and so on (the first power always stays).

    Taught in: all lessons (every log axis)
    """
    expr = expr or _log_label(ticks)
    ticks = list(ticks)
    if _ticks_fit(ticks, dom, length=length, channel=channel, expr=expr):
        return ticks
    powers = [t for t in ticks if abs(np.log10(t) - round(np.log10(t))) < 1e-9]
    for stride in range(1, len(powers) + 1):
        kept = powers[::stride]
        if len(kept) < 2 or _ticks_fit(kept, dom, length=length, channel=channel, expr=expr):
            return kept
    return powers[:1]


def log_axis(lo: float, hi: float, *, floor: float | None = None, domain=None, clamp: bool | None = None,
             length: float | None = None, channel: str = "x", **axis):
    """``(scale, axis)`` of a log x/y axis for data over ``[lo, hi]`` (both > 0), the one recipe of every log
    axis (the builders here and the explorers' charts).

    Ticks from :func:`log_ticks`, kept inside the domain; labels :data:`LABEL_SI` ("1", "20", "5k") when every
    tick is >= 1, else :data:`LABEL_SMALL` ("1e-4", "0.02", "0.5"); ``labelOverlap``. ``floor``: the domain
    starts there (bars of a log histogram start at 0.5); ``domain=(lo, hi)``: the domain itself. ``clamp``:
    values outside the domain drawn at its edge (default: when there is a ``floor``). ``length``: the axis
    in px, so the ticks are thinned (:func:`fit_log_ticks`) until their labels keep clear of each other on
    ``channel``; without it they are not thinned. ``axis``: more ``alt.Axis`` properties (``title=``, ``grid=``).
    ``scale, ax = log_axis(1, 4000, floor=0.5, title="count (log)")`` → ``alt.Y("count:Q", scale=scale, axis=ax)``.
    Taught in: all lessons (every log axis; the explorers' histograms and curves)
    """
    ticks, dom = log_ticks(lo, hi)
    if domain is not None:
        dom = [float(domain[0]), float(domain[1])]
    elif floor is not None:
        dom[0] = float(floor)
    ticks = [t for t in ticks if dom[0] * (1 - 1e-9) <= t <= dom[1] * (1 + 1e-9)]
    expr = _log_label(ticks)
    if length and ticks:
        ticks = fit_log_ticks(ticks, dom, length=length, channel=channel, expr=expr)
    ax = alt.Axis(values=ticks, labelExpr=expr, labelOverlap="greedy", labelFlush=False, **axis)
    return alt.Scale(type="log", domain=dom, nice=False, clamp=floor is not None if clamp is None else clamp), ax


def _log_scale_axis(vals, *, floor: float | None = None, domain=None, axis_extra=None, length=None,
                    channel: str = "x"):
    """(scale, axis) for a builder's log channel holding ``vals`` (positive floats): :func:`log_axis` with a
    grid; ``floor``: values below it are drawn at it, so the ticks start there; ``length``: the axis in px, so
    the ticks can be thinned until their labels do not collide."""
    vals = [v for v in vals if v is not None and v > 0]
    if domain is not None:
        lo, hi = domain
    elif vals:
        lo, hi = min(vals), max(vals)
    else:
        lo, hi = 1.0, 10.0
    if floor is not None:
        lo = min(floor, lo) if domain is not None else floor
        hi = max(hi, floor * 10 ** 0.5)
    return log_axis(lo, hi, floor=floor, domain=domain, length=length, channel=channel,
                    **{"grid": True, **(axis_extra or {})})


def _log_rows(rows: list[dict], fields, floor: float | None):
    """Rows fit for a log axis on ``fields``: values below ``floor`` are set to ``floor``; without a floor,
    rows with a missing, zero or negative value are dropped. Returns (rows, n_clamped)."""
    out, clamped = [], 0
    for r in rows:
        r = dict(r)
        ok = True
        for f in fields:
            v = _num(r.get(f))
            if floor is not None and (v is None or v < floor):
                if v is None and r.get(f) is not None:
                    ok = False
                r[f] = floor
                clamped += 1
            elif v is None or v <= 0:
                ok = False
        if ok:
            out.append(r)
    return out, clamped


def _distinct(rows, field) -> list:
    return list(dict.fromkeys(r.get(field) for r in rows if field in r))


def _auto_group(name) -> str:
    """The family of a series name: the text before the first ':' (else the first word)."""
    s = str(name)
    return s.split(":", 1)[0].strip() if ":" in s else s.split(" ", 1)[0]


def _grouped(rows, field, group):
    """``(rows, colour_field)`` keeping one colour scale at ≤ MAX_COLORS values.

    ``field`` with ≤ 10 distinct values is its own colour. Otherwise the colour becomes ``group`` (a field
    naming each row's family) or, with no ``group``, the family from the name (text before ':' or the first
    word) stored in ``f"{field} family"``; if even that gives more than 10, the 9 largest families stay
    and the rest become "other"."""
    names = _distinct(rows, field)
    if len(names) <= MAX_COLORS:
        return rows, field
    if group is not None:
        fams = _distinct(rows, group)
        if len(fams) > MAX_COLORS:
            raise ValueError(f"group={group!r} has {len(fams)} values; at most {MAX_COLORS} colours are readable")
        return rows, group
    key = f"{field} family"
    fam = {n: _auto_group(n) for n in names}
    counts = {}
    for r in rows:
        counts[fam.get(r.get(field))] = counts.get(fam.get(r.get(field)), 0) + 1
    if len(counts) > MAX_COLORS:
        keep = set(sorted(counts, key=lambda k: -counts[k])[:MAX_COLORS - 1])
        fam = {n: (f if f in keep else "other") for n, f in fam.items()}
    return [dict(r, **{key: fam.get(r.get(field))}) for r in rows], key


def _color(field, *, sort=None, scheme=None, title=None, rows=None):
    kw = {"sort": sort} if sort is not None else {}
    scale = alt.Scale(scheme=scheme) if scheme else alt.Undefined
    title = title if title is not None else field
    return alt.Color(f"{field}:N", scale=scale, title=title, legend=_legend(_distinct(rows or [], field), title), **kw)


def _dash_enc(rows, dash, order=None):
    domain = list(order) if order is not None else _distinct(rows, dash)
    rng = [_DASHES[i % len(_DASHES)] for i in range(len(domain))]
    return alt.StrokeDash(f"{dash}:N", scale=alt.Scale(domain=domain, range=rng), title=dash,
                          legend=_legend(domain, dash))


def _tooltip(rows, fields):
    out = []
    for f in dict.fromkeys(f for f in fields if f):
        v = next((r[f] for r in rows if f in r and r[f] is not None), None)
        out.append(alt.Tooltip(f"{f}:{'Q' if _num(v) is not None and not isinstance(v, (str, bool)) else 'N'}"))
    return out


def _pos(channel, field, typ, *, log, rows, title, floor=None, domain=None, zero=False, sort=None,
         axis_extra=None, axis=True, length=None):
    """An X/Y (or XOffset-free) positional encoding, log or linear; ``length``: the axis in px (thins log
    ticks, sizes category labels)."""
    cls = {"x": alt.X, "y": alt.Y}[channel]
    kw = {}
    if sort is not None or typ in ("N", "O"):
        kw["sort"] = sort
    if not axis:
        kw["axis"] = None
    if log:
        scale, ax = _log_scale_axis([_num(r.get(field)) for r in rows], floor=floor, domain=domain,
                                    axis_extra=axis_extra, length=length, channel=channel)
        return cls(f"{field}:{typ}", scale=scale, title=title, **({"axis": ax} if axis else kw))
    if typ == "Q":
        kw["scale"] = alt.Scale(zero=zero, **({"domain": list(domain)} if domain is not None else {}))
    extra = dict(axis_extra or {})
    if typ in ("N", "O"):        # category labels: keep them whole
        extra.setdefault("labelLimit", _limit(_distinct(rows, field), default=_AXIS_LABEL_LIMIT))
    if axis and extra:
        kw["axis"] = alt.Axis(**extra)
    return cls(f"{field}:{typ}", title=title, **kw)


def _log_flags(log_x, log_y, x_scale=None, y_scale=None):
    return bool(log_x or x_scale == "log"), bool(log_y or y_scale == "log")


def _floor_title(title, clamped, floor):
    return f"{title} (< {floor:g} drawn at {floor:g})" if clamped and floor is not None else title


# ------------------------------------------------------------------ composition

def layer(*charts, width: int | None = None, height: int | None = None, title: str | None = None):
    """Draw charts on top of each other (shared axes): data + :func:`rules` + :func:`band`.

    ``layer(band(lo, hi, label="float32 ± 2 SE"), rules([acc], label="float32"), lines(...))``; the same
    as ``a + b + c``, except that children drawn at different sizes are accepted (``a + b`` raises
    "inconsistent values for width"): the first child's size is used unless ``width``/``height`` are
    given. ``title`` sets the whole layer's title.
    Taught in: 02_svd, 03_deepthin, 04_quantization, 05_fp16_transfer, 06_pipeline
    """
    charts = [c.copy(deep=True) for c in charts]
    sizes = {"width": width, "height": height}
    for c in charts:                # the first child's size wins; altair refuses differing child sizes
        for k in sizes:
            v = getattr(c, k, alt.Undefined)
            if v is not alt.Undefined:
                sizes[k] = v if sizes[k] is None else sizes[k]
                setattr(c, k, alt.Undefined)
    for ch in ("x", "y"):          # one axis title: the first child's; altair would join them all ("bytes, at")
        named = [c for c in charts if _axis_title(c, ch)]
        for c in named[1:]:
            _blank_axis_title(c, ch)
    chart = alt.layer(*charts)
    props = {k: v for k, v in sizes.items() if v is not None}
    if title is not None:
        props["title"] = wrap_title(title, title_chars(sizes["width"]))
    return chart.properties(**props) if props else chart


overlay = layer


def _encodings(chart):
    """The encoding objects of a chart and of every layer inside it."""
    if getattr(chart, "layer", alt.Undefined) is not alt.Undefined:
        return [e for c in chart.layer for e in _encodings(c)]
    enc = getattr(chart, "encoding", alt.Undefined)
    return [] if enc is alt.Undefined else [enc]


def _axis_title(chart, ch) -> bool:
    for enc in _encodings(chart):
        e = getattr(enc, ch, alt.Undefined)
        if e is not alt.Undefined and not isinstance(e, dict) and getattr(e, "field", alt.Undefined) is not alt.Undefined:
            if e._kwds.get("scale", alt.Undefined) is None or e._kwds.get("axis", alt.Undefined) is None:
                continue            # pixel positions (label heights) and hidden axes have no title to show
            t = e._kwds.get("title", alt.Undefined)
            if t is alt.Undefined or t:
                return True
    return False


def _blank_axis_title(chart, ch) -> None:
    for enc in _encodings(chart):
        e = getattr(enc, ch, alt.Undefined)
        if e is not alt.Undefined and not isinstance(e, dict) and getattr(e, "field", alt.Undefined) is not alt.Undefined:
            e._kwds["title"] = ""


def grid(charts, *, columns: int = 3, title: str | None = None, spacing: int = 16):
    """Charts side by side, ``columns`` per row, rows stacked (replaces ``alt.hconcat`` / ``alt.vconcat``).

    ``grid([hist_a, hist_b, hist_c, hist_d], columns=2)`` → a 2 × 2 grid; ``grid([a, b])`` → a | b.
    Each panel keeps its own scales and legends.
    Taught in: 01_pruning, 02_svd, 03_deepthin, 04_quantization, 06_pipeline, 07_deploy
    """
    charts = list(charts)
    if not charts:
        raise ValueError("grid() needs at least one chart")
    rows = [alt.hconcat(*charts[i:i + columns], spacing=spacing) for i in range(0, len(charts), columns)]
    out = rows[0] if len(rows) == 1 else alt.vconcat(*rows, spacing=spacing)
    return out.properties(title=_chart_title(title, _width_of(out))) if title else out


def rules(values, *, axis: str = "y", label=None, color: str = "gray", dash: bool = True,
          label_color: str | None = None, font_size: int = 10):
    """Reference lines at ``values`` with a text label each, to layer on a chart (``chart + rules(...)``).

    ``axis="y"``: horizontal lines at y = value (a baseline accuracy, speedup 1), labelled at the right end
    above the line. ``axis="x"``: vertical lines at x = value (targets on a bytes axis, float16 limits),
    labelled at the top, staggered over three heights so neighbours do not collide.
    ``label`` is one string for every rule or one per value (None: no text, which :func:`lint` rule 6
    refuses: every reference line says what it marks). Rules outside the other
    layers' axis domain are clipped. On a log axis, give values > 0.
    Example: ``lines(...) + rules([1.0], axis="x", label="dense bytes", color="crimson")``.
    Taught in: 01_pruning, 02_svd, 03_deepthin, 04_quantization, 05_fp16_transfer, 06_pipeline
    """
    vals = [float(v) for v in np.atleast_1d(np.asarray(values, dtype=np.float64))]
    if label is None or isinstance(label, str):
        labels = [label] * len(vals)
    else:
        labels = [None if s is None else str(s) for s in label]
        if len(labels) != len(vals):
            raise ValueError(f"{len(labels)} labels for {len(vals)} rules")
    rows = [{"at": v, "label": s or "", "px": 8 + 12 * (i % 3)} for i, (v, s) in enumerate(zip(vals, labels))]
    ch = {"x": alt.X, "y": alt.Y}[axis]
    rule = alt.Chart(alt.Data(values=rows)).mark_rule(
        color=color, clip=True, **({"strokeDash": [4, 3]} if dash else {})).encode(
        **{axis: ch("at:Q", title="")}, tooltip=[alt.Tooltip("at:Q"), alt.Tooltip("label:N")])
    if not any(labels):
        return rule
    style = dict(color=label_color or color, fontSize=font_size, clip=False)
    if axis == "x":
        text = alt.Chart(alt.Data(values=rows)).mark_text(align="left", dx=3, baseline="middle", **style).encode(
            x=alt.X("at:Q", title=""), y=alt.Y("px:Q", scale=None, title=""), text="label:N")
    else:
        text = alt.Chart(alt.Data(values=rows)).mark_text(align="right", dx=-3, dy=-5, **style).encode(
            y=alt.Y("at:Q", title=""), x=alt.value("width"), text="label:N")
    return alt.layer(rule, text)


_rules = rules  # histogram() has a parameter named ``rules``


def band(lo: float, hi: float, *, axis: str = "y", label: str | None = None, color: str = "lightgray",
         opacity: float = 0.5):
    """A shaded interval [lo, hi] to layer under a chart, e.g. a baseline ± 2 standard errors.

    ``layer(band(acc - 2 * se, acc + 2 * se, label="float32 ± 2 SE"), rules([acc]), lines(...))``.
    ``axis="y"``: a horizontal band (label at the right, just below the band, clear of a :func:`rules` label); ``axis="x"``: vertical.
    Taught in: 04_quantization
    """
    rows = [{"lo": float(lo), "hi": float(hi), "label": label or ""}]
    ch, ch2 = ({"x": alt.X, "y": alt.Y}[axis], {"x": alt.X2, "y": alt.Y2}[axis])
    rect = alt.Chart(alt.Data(values=rows)).mark_rect(color=color, opacity=opacity).encode(
        **{axis: ch("lo:Q", title=""), f"{axis}2": ch2("hi:Q")})
    if not label:
        return rect
    if axis == "y":
        text = alt.Chart(alt.Data(values=rows)).mark_text(align="right", baseline="top", dx=-3, dy=3, color="gray",
                                                          fontSize=10).encode(
            y=alt.Y("lo:Q", title=""), x=alt.value("width"), text="label:N")
    else:
        text = alt.Chart(alt.Data(values=rows)).mark_text(align="left", dx=3, dy=10, color="gray",
                                                          fontSize=10).encode(
            x=alt.X("lo:Q", title=""), y=alt.value(0), text="label:N")
    return alt.layer(rect, text)


# ------------------------------------------------------------------ builders

def waveform(audio, *, sr: int = 16000, title: str = "waveform", width: int = 420, height: int = 120):
    """Line chart of a clip, min/max-decimated to ≤ 800 points. Taught in: 00_speech_commands"""
    a = np.asarray(audio, dtype=np.float32).ravel()
    n = max(1, len(a) // 400)
    a = a[: len(a) // n * n].reshape(-1, n)  # (points, n) samples per point
    t = np.arange(len(a)) * n / sr
    rows = [{"t": float(ti), "amp": float(v)} for ti, lo, hi in zip(t, a.min(1), a.max(1)) for v in (lo, hi)]
    return alt.Chart(alt.Data(values=rows), title=_chart_title(title, width)).mark_line(strokeWidth=0.7).encode(
        x=alt.X("t:Q", title="time (s)"), y=alt.Y("amp:Q", title="amplitude")
    ).properties(width=width, height=height)


def index_ticks(n: int, step: int = 1, k: int = 6, *, length: float | None = None, channel: str = "x") -> list[int]:
    """≤ ``k`` round tick values (multiples of 1, 2, 5 × 10^j, from 0) for the ``n`` entries (or blocks of ``step``
    entries: values among 0, step, 2·step, ...) of a matrix axis; with ``length`` (the axis in px) neighbouring
    labels also keep clear of each other on ``channel`` (twice the spare room rule 7 of :func:`lint` asks for).
    ``index_ticks(300) → [0, 50, 100, 150, 200, 250]``; ``index_ticks(64, k=4) → [0, 20, 40, 60]``.
    Taught in: all lessons (heatmap axes; the explorers' matrix images)
    """
    total = n * step
    widest = str(max(0, total - 1))                               # every label taken as wide as the widest

    def fits(gap):
        return not length or not _labels_collide(gap, widest, widest, channel=channel, margin=2)

    series = [m * 10 ** j for j in range(8) for m in (1, 2, 5)]
    for c in series + [step * m for m in series]:                # round indices first, then whole blocks
        if c % step == 0 and -(-total // c) <= k and (c < total or n == 1) and \
                fits(c / step * length / n if length else 0):
            return list(range(0, total, c))
    for count in range(min(n, k), 0, -1):                        # no round step fits: evenly spaced blocks
        idx = [int(round(i)) for i in np.linspace(0, n - 1, count)]
        if count == 1 or fits(min(np.diff(idx)) * length / n if length else 0):
            return [i * step for i in idx]
    return [0]


def heatmap(M, *, title: str = "", x: str = "column", y: str = "row", color: str = "value",
            scheme: str = "viridis", width: int = 300, height: int = 200, max_side: int = 64,
            domain_mid: float | None = None, domain=None, origin: str = "upper", legend: bool = True):
    """A matrix as an image, block-averaged to ≤ ``max_side`` per side, with labelled axes.

    Axes are titled ``x`` / ``y`` and labelled with the original row/column index of each block's first
    entry (a few ticks only). ``origin="upper"``: row 0 at the top (a matrix); ``"lower"``: row 0 at the
    bottom (a spectrogram). ``domain_mid=0`` uses a diverging colour scale centred on zero (weights);
    ``domain=[lo, hi]`` fixes the colour range (so several images compare; see :func:`image_grid`);
    ``legend=False`` hides the colour legend.
    Taught in: all lessons
    """
    A = np.asarray(M, dtype=np.float64)
    R = block_reduce(A, max_side)
    fr, fc = max(1, -(-A.shape[0] // max_side)), max(1, -(-A.shape[1] // max_side))
    ii, jj = np.indices(R.shape)
    rows = [{y: int(i) * fr, x: int(j) * fc, color: float(v)} for i, j, v in zip(ii.ravel(), jj.ravel(), R.ravel())]
    kw = {"domain": [float(d) for d in domain]} if domain is not None else {}
    scale = (alt.Scale(scheme=scheme, **kw) if domain_mid is None
             else alt.Scale(scheme="redblue", domainMid=domain_mid, reverse=True, **kw))
    ax = dict(labelAngle=0, labelOverlap="greedy", ticks=False, domain=False)
    return alt.Chart(alt.Data(values=rows), title=_chart_title(title, width)).mark_rect().encode(
        x=alt.X(f"{x}:O", title=x, axis=alt.Axis(values=index_ticks(R.shape[1], fc, length=width, channel="x"), **ax)),
        y=alt.Y(f"{y}:O", title=y, sort="descending" if origin == "lower" else "ascending",
                axis=alt.Axis(values=index_ticks(R.shape[0], fr, length=height, channel="y"), **ax)),
        color=alt.Color(f"{color}:Q", scale=scale, title=color,
                        legend=alt.Legend(titleLimit=_limit([color], default=_LEGEND_TITLE_LIMIT,
                                                          font=_LEGEND_TITLE_FONT)) if legend else None),
        tooltip=[f"{y}:O", f"{x}:O", alt.Tooltip(f"{color}:Q", format=".3g")],
    ).properties(width=width, height=height)


def image_grid(matrices, *, titles=None, columns: int = 4, color: str = "value", domain_mid: float | None = None,
               shared_scale: bool = True, scheme: str = "viridis", width: int = 150, height: int = 150,
               max_side: int = 64, x: str = "column", y: str = "row", title: str | None = None):
    """Several matrices as :func:`heatmap` images side by side, ``columns`` per row, one colour range.

    ``matrices``: a dict ``{title: matrix}`` or a list (then ``titles`` names them). With
    ``shared_scale=True`` every image uses the same colour domain (symmetric about ``domain_mid`` when
    given), so colours compare across images (one legend).
    ``image_grid({"W": W[:32, :32], "rank 8": (A @ B)[:32, :32]}, color="weight", domain_mid=0)``.
    Taught in: 02_svd, 03_deepthin
    """
    if isinstance(matrices, dict):
        titles, mats = list(matrices), list(matrices.values())
    else:
        mats = list(matrices)
        titles = list(titles) if titles is not None else [""] * len(mats)
    dom = None
    if shared_scale and mats:
        red = [block_reduce(m, max_side) for m in mats]
        lo, hi = min(float(r.min()) for r in red), max(float(r.max()) for r in red)
        if domain_mid is not None:
            a = max(abs(lo - domain_mid), abs(hi - domain_mid)) or 1.0
            lo, hi = domain_mid - a, domain_mid + a
        dom = [lo, hi]
    imgs = [heatmap(m, title=t, x=x, y=y, color=color, scheme=scheme, width=width, height=height,
                    max_side=max_side, domain_mid=domain_mid, domain=dom,
                    legend=True)
            for i, (m, t) in enumerate(zip(mats, titles))]
    return grid(imgs, columns=columns, title=title)


def categorical_heatmap(rows, *, x: str, y: str, color: str, text: str | None = None, scheme: str = "set2",
                        cell: int = 32, title: str = "", color_sort=None):
    """Cells coloured by a category (≤ 10 values), optionally printing ``text`` in each cell.

    ``rows``: one dict per cell with integer ``x``/``y`` positions (``y`` = row, top to bottom), the
    nominal ``color`` field and the optional ``text`` field. ``cell`` is the side of a cell in pixels.
    E.g. where each entry of W comes from in W_aux:
    ``categorical_heatmap(rows, x="column", y="row", color="W_aux row", text="t")``.
    Taught in: 03_deepthin
    """
    rows = _values(rows)
    cats = _distinct(rows, color)
    if len(cats) > MAX_COLORS:
        raise ValueError(f"{color!r} has {len(cats)} categories; at most {MAX_COLORS} colours are readable")
    nx, ny = len(_distinct(rows, x)), len(_distinct(rows, y))
    ax = alt.Axis(labelAngle=0, ticks=False, domain=False)
    base = alt.Chart(alt.Data(values=rows), title=_chart_title(title, cell * nx)).encode(
        x=alt.X(f"{x}:O", title=x, axis=ax), y=alt.Y(f"{y}:O", title=y, axis=ax))
    chart = base.mark_rect(stroke="white").encode(color=_color(color, sort=color_sort, scheme=scheme, rows=rows),
                                                  tooltip=_tooltip(rows, [y, x, color, text]))
    if text:
        chart = chart + base.mark_text(fontSize=12).encode(text=f"{text}:N")
    return chart.properties(width=cell * nx, height=cell * ny)


def spectrogram(S, *, title: str = "log-mel spectrogram", width: int = 420, height: int = 140):
    """Log-mel features (frames, n_mels) as an image, time left to right, low bands at the bottom.

    Taught in: 00_speech_commands
    """
    S = np.asarray(S)
    return heatmap(S.T, title=title, x="frame", y="mel band", color="log-mel", scheme="magma",
                   width=width, height=height, max_side=128, origin="lower")


def confusion(cm, labels, *, title: str = "confusion matrix (rows: true)", width: int = 300):
    """Confusion matrix with counts, rows = true class. Taught in: 00_speech_commands"""
    cm = np.asarray(cm)
    rows = [{"true": labels[i], "predicted": labels[j], "count": int(cm[i, j])}
            for i in range(len(labels)) for j in range(len(labels))]
    lim = _limit(labels, default=_AXIS_LABEL_LIMIT)
    base = alt.Chart(alt.Data(values=rows), title=_chart_title(title, width)).encode(
        x=alt.X("predicted:N", sort=list(labels), axis=alt.Axis(labelLimit=lim)),
        y=alt.Y("true:N", sort=list(labels), axis=alt.Axis(labelLimit=lim)))
    rect = base.mark_rect().encode(color=alt.Color("count:Q", scale=alt.Scale(scheme="blues")))
    text = base.mark_text(fontSize=9).encode(text="count:Q")
    return (rect + text).properties(width=width, height=width)


def bars(rows, *, x: str, y: str, color: str | None = None, title: str = "", width: int = 360,
         height: int = 200, y_title: str | None = None, x_type: str = "N", log_y: bool = False,
         horizontal: bool = False, color_sort=None, offset: bool = True, label_angle: int | None = None,
         x_title: str | None = None, x_sort=None, y_domain=None, group: str | None = None,
         tooltip=None, mark_color: str | None = None):
    """Bar chart of row dicts: category ``x``, value ``y``.

    ``color``: a field; bars of one ``x`` sit side by side (``offset=True``, an xOffset) or one bar per
    ``x`` coloured by its ``color`` (``offset=False``). More than 10 colour values are grouped into
    families (see :func:`scatter`'s ``group``). ``color_sort``: the colour (and offset) order.
    ``log_y=True``: a log value axis with ticks at powers of ten; bars start at the axis floor and
    rows with a value ≤ 0 are dropped. ``horizontal=True``: categories down the y axis, values along x
    (``x``/``y`` keep their meaning: category / value). ``x_type="O"`` for ordered categories (ranks);
    ``x_sort``: the category order (default: order of the rows); ``label_angle=0``: upright labels.
    Example (07): ``bars(sizes, x="variant", y="bytes", color="runtime", offset=False, log_y=True,
    horizontal=True)``.
    Taught in: all lessons (00_speech_commands to 07_deploy)
    """
    rows = _values(rows)
    if log_y:
        rows, _ = _log_rows(rows, [y], None)
    if color:
        rows, color = _grouped(rows, color, group)
    cat, val = ("y", "x") if horizontal else ("x", "y")
    extra = {"labelAngle": label_angle} if label_angle is not None else None
    lengths = {"x": width, "y": height}
    cat_enc = _pos(cat, x, x_type, log=False, rows=rows, title=x if x_title is None else x_title, sort=x_sort,
                   axis_extra=extra, length=lengths[cat])
    val_enc = _pos(val, y, "Q", log=log_y, rows=rows, title=y if y_title is None else y_title, domain=y_domain, zero=True,
                   length=lengths[val])
    enc = {cat: cat_enc, val: val_enc,
           "tooltip": tooltip or _tooltip(rows, [x, y, color])}
    if log_y:
        enc[f"{val}2"] = alt.datum(val_enc.to_dict()["scale"]["domain"][0])  # bars from the axis floor, not from 0
    if color:
        enc["color"] = _color(color, sort=color_sort, rows=rows)
        if offset:
            off = alt.YOffset if horizontal else alt.XOffset
            enc["yOffset" if horizontal else "xOffset"] = off(f"{color}:N", **({"sort": color_sort} if color_sort
                                                                                else {}))
    mark = {"color": mark_color} if mark_color else {}
    return alt.Chart(alt.Data(values=rows), title=_chart_title(title, width)).mark_bar(**mark).encode(**enc).properties(
        width=width, height=height)


def lines(rows, *, x: str, y: str, color: str | None = None, title: str = "", width: int = 360,
          height: int = 220, x_scale: str = "linear", y_title: str | None = None, x_title: str | None = None,
          points: bool = True, error: str | None = None, log_x: bool = False, log_y: bool = False,
          floor: float | None = None, dash=None, dash_order=None, x_type: str = "Q", x_sort=None,
          group: str | None = None, color_sort=None, mark_color: str | None = None, interpolate: str | None = None,
          x_domain=None, y_domain=None, zero: bool = False, tooltip=None):
    """Line chart of row dicts, one line per ``color`` value; ``error`` names a ± column drawn as error bars.

    Axes: ``log_x=True`` / ``log_y=True`` (or the older ``x_scale="log"``) give log axes with ticks at
    powers of ten (and 2·10^k, 5·10^k under two decades), labels "1e-4"/"0.5"/"10k" that cannot collide.
    On a log axis rows with a value ≤ 0 are dropped, unless ``floor`` is given: then y values below
    ``floor`` (zeros included) are drawn at ``floor`` (the axis bottom) and the y title says so; use it
    for a % axis that reaches 0, or to cut a spectrum's tail (02: ``floor=0.2 * median s``).
    ``x_type="N"``/``"O"``: categorical x in row order (pipeline stages); ``x_sort`` to reorder.
    ``dash``: a field whose values get solid / dashed strokes (first value solid; ``dash_order`` fixes
    the order), e.g. ``lines(spec, x="i", y="s_i", color="layer", dash="weights", log_y=True)``; or
    ``dash=True`` for one dashed line. ``color`` with more than 10 values is grouped into ≤ 10 colour
    families (``group=`` a family field; see :func:`scatter`), each series still its own line.
    ``mark_color``: one fixed colour (no legend); ``interpolate="step-after"`` for a Pareto front.
    ``x_domain``/``y_domain``: fix an axis range (e.g. to leave room for :func:`rules`).
    Taught in: all lessons
    """
    rows = _values(rows)
    log_x, log_y = _log_flags(log_x, log_y, x_scale)
    if error:
        rows = [dict(r, **{f"{y} − {error}": r[y] - r[error], f"{y} + {error}": r[y] + r[error]})
                if _num(r.get(y)) is not None and _num(r.get(error)) is not None else dict(r) for r in rows]
    y_fields = [y] + ([f"{y} − {error}", f"{y} + {error}"] if error else [])
    clamped = 0
    if log_y:
        rows, clamped = _log_rows(rows, [y], floor)
        if error:
            rows, _ = _log_rows(rows, y_fields[1:], floor or min(r[y] for r in rows) / 10 if rows else None)
    if log_x:
        rows, _ = _log_rows(rows, [x], None)
    series = None
    if color:
        rows, cfield = _grouped(rows, color, group)
        series, color = (color, cfield) if cfield != color else (None, color)
    y_vals = [{y: _num(r.get(f))} for r in rows for f in y_fields]
    yt = _floor_title(y if y_title is None else y_title, clamped, floor)
    enc = {"x": _pos("x", x, x_type, log=log_x, rows=rows, title=x if x_title is None else x_title, domain=x_domain, sort=x_sort,
                     length=width),
           "y": _pos("y", y, "Q", log=log_y, rows=y_vals, title=yt, floor=floor, domain=y_domain, zero=zero,
                     length=height),
           "tooltip": tooltip or _tooltip(rows, [x, y, series, color, error])}
    if color:
        enc["color"] = _color(color, sort=color_sort, rows=rows)
    if series:
        enc["detail"] = f"{series}:N"
    if isinstance(dash, str):
        enc["strokeDash"] = _dash_enc(rows, dash, dash_order)
    mark = {"point": points, "clip": True}
    if dash is True:
        mark["strokeDash"] = [4, 3]
    if mark_color:
        mark["color"] = mark_color
    if interpolate:
        mark["interpolate"] = interpolate
    data = alt.Data(values=rows)
    chart = alt.Chart(data, title=_chart_title(title, width)).mark_line(**mark).encode(**enc)
    if error:
        err = {"x": enc["x"], "y": alt.Y(f"{y_fields[1]}:Q", title=yt), "y2": alt.Y2(f"{y_fields[2]}:Q")}
        if color:
            err["color"] = enc["color"]
        chart = chart + alt.Chart(data).mark_errorbar(clip=True).encode(**err)
    return chart.properties(width=width, height=height)


def scatter(rows, *, x: str, y: str, color: str | None = None, shape: str | None = None, group: str | None = None,
            label: str | None = None, log_x: bool = False, log_y: bool = False, x_type: str = "Q",
            y_type: str = "Q", x_sort=None, y_sort=None, title: str = "", width: int = 360, height: int = 220,
            size: int = 60, mark_color: str | None = None, x_title: str | None = None, y_title: str | None = None,
            y_axis: bool = True, x_domain=None, y_domain=None, zero: bool = False, color_sort=None, tooltip=None):
    """Filled points, one per row: ``x`` against ``y``, coloured by ``color`` and shaped by ``shape``.

    At most 10 colours: when ``color`` has more than 10 distinct values, colour (and shape, if it was the
    same field) encodes ``group`` instead, a field naming each row's family (e.g. "quant" for
    "quant: int8"); without ``group`` the family is the text before ':' (else the first word) of the
    ``color`` value, and beyond 10 families the 9 largest stay and the rest read "other". The full
    ``color`` value stays in the tooltip (and in ``label`` text if you pass ``label=color``).
    ``label``: a field printed beside each point (offset right, alternately above/below, so labels of
    neighbouring points do not sit exactly on each other). ``log_x``/``log_y``: log axes as in
    :func:`lines` (rows with values ≤ 0 dropped). ``x_type``/``y_type="N"``: categorical axes
    (``y_sort`` = order); ``y_axis=False`` hides the y axis (a panel beside one that shows it).
    ``mark_color``: one fixed colour, e.g. ``scatter(skipped, x="step", y="log2 S", mark_color="crimson")``.
    Example (06): ``scatter(points, x="bytes", y="acc", color="method", shape="method", log_x=True,
    tooltip=["method", "detail", "bytes", "acc"])``.
    Taught in: 02_svd, 05_fp16_transfer, 06_pipeline, 07_deploy
    """
    rows = _values(rows)
    if log_x:
        rows, _ = _log_rows(rows, [x], None)
    if log_y:
        rows, _ = _log_rows(rows, [y], None)
    cfield = None
    if color:
        rows, cfield = _grouped(rows, color, group)
    sfield = shape
    if shape and shape == color:
        sfield = cfield
    elif shape and len(_distinct(rows, shape)) > len(_SHAPES):
        rows, sfield = _grouped(rows, shape, None)
    enc = {"x": _pos("x", x, x_type, log=log_x, rows=rows, title=x if x_title is None else x_title, domain=x_domain, zero=zero,
                     sort=x_sort, length=width),
           "y": _pos("y", y, y_type, log=log_y, rows=rows, title=y if y_title is None else y_title, domain=y_domain, zero=zero,
                     sort=y_sort, axis=y_axis, length=height),
           "tooltip": _tooltip(rows, tooltip or [label, color, cfield, shape, x, y])}
    if cfield:
        enc["color"] = _color(cfield, sort=color_sort, rows=rows)
    if sfield:
        enc["shape"] = alt.Shape(f"{sfield}:N", title=sfield, legend=_legend(_distinct(rows, sfield), sfield),
                                 **({"sort": color_sort} if color_sort is not None and sfield == cfield else {}))
    mark = {"filled": True, "size": size, "clip": x_domain is not None or y_domain is not None}
    if mark_color:
        mark["color"] = mark_color
    data = alt.Data(values=rows)
    chart = alt.Chart(data, title=_chart_title(title, width)).mark_point(**mark).encode(**enc)
    if label:
        lrows = [dict(r, _dy=(-7, 9, 1)[i % 3]) for i, r in enumerate(rows)]
        parts = []
        for dy in (-7, 9, 1):
            sub = [r for r in lrows if r["_dy"] == dy]
            if sub:
                parts.append(alt.Chart(alt.Data(values=sub)).mark_text(
                    align="left", dx=7, dy=dy, fontSize=9, color="#444", clip=mark["clip"]).encode(
                    x=enc["x"], y=enc["y"], text=f"{label}:N"))
        chart = alt.layer(chart, *parts)
    return chart.properties(width=width, height=height)


def waterfall(stages, *, stage: str = "stage", value: str = "bytes", label: str | None = None,
              title: str = "bytes after each stage", width: int = 300, height: int = 220,
              y_title: str = "bytes (log)", color: str = "steelblue"):
    """Bytes after each pipeline stage as a log-scale waterfall: one floating bar per stage.

    ``stages``: rows in pipeline order, each with a ``stage`` name and the ``value`` (bytes) after it;
    the first row is the start (dense model). The first bar rises from the axis floor to the starting
    value; every later bar spans from the previous stage's value to this one's, labelled above with
    ``label`` (a field) or, by default, the stage's factor "÷3.2" (or "×1.1" if it grew). Stages that
    grow the bytes are drawn in orange.
    Example (06): ``waterfall([{"stage": f"{i} {r['stage']}", "bytes": r["bytes"]} for i, r in enumerate(rows)],
    title=f"bytes after each stage ({total:.0f}x in all)")``.
    Taught in: 06_pipeline
    """
    st = _values(stages)
    vals = [float(r[value]) for r in st]
    if not vals or min(vals) <= 0:
        raise ValueError("waterfall() needs stages with positive values")
    _, dom = log_ticks(min(vals), max(vals))
    rows = []
    for i, r in enumerate(st):
        prev = vals[i - 1] if i else dom[0]
        if label and r.get(label) is not None:
            text = str(r[label])
        elif i == 0:
            text = f"{vals[0]:,.0f}"
        else:
            f = prev / vals[i]
            text = f"÷{f:.1f}" if f >= 1 else f"×{1 / f:.1f}"
        rows.append({stage: r[stage], "from": prev, "to": vals[i], "top": max(prev, vals[i]), "label": text,
                     "change": "grows" if i and vals[i] > prev else "shrinks", value: vals[i]})
    scale, ax = _log_scale_axis([dom[0], max(vals)], domain=dom, length=height, channel="y")
    base = alt.Chart(alt.Data(values=rows), title=_chart_title(title, width))
    x = alt.X(f"{stage}:N", sort=None, title=stage,
              axis=alt.Axis(labelAngle=-30, labelLimit=_limit([r[stage] for r in rows], default=140)))
    bar = base.mark_bar().encode(
        x=x, y=alt.Y("from:Q", scale=scale, axis=ax, title=y_title), y2="to:Q",
        color=alt.condition("datum.change == 'grows'", alt.value("darkorange"), alt.value(color)),  # no scale:
        # a colour scale here would be shared with a chart beside it in a grid (and hide its lines)
        tooltip=[f"{stage}:N", alt.Tooltip(f"{value}:Q", format=",.0f"), "label:N"])
    text = base.mark_text(dy=-6, fontSize=10).encode(x=x, y=alt.Y("top:Q", title=""), text="label:N")
    return (bar + text).properties(width=width, height=height)


def small_multiples(rows, *, x: str, y: str, facet: str, columns: int = 3, color: str | None = None,
                    kind: str = "line", log_x: bool = False, log_y: bool = False, x_type: str = "Q",
                    width: int = 200, height: int = 140, title: str = "", x_title: str | None = None,
                    y_title: str | None = None, independent_y: bool = False):
    """One small panel per value of ``facet`` (same axes, ``columns`` per row): lines or points.

    ``kind="line"`` or ``"point"``; ``color`` (≤ 10 values) colours series inside each panel; log axes as
    in :func:`lines`. E.g. five rows of W and the same rows at rank 1:
    ``small_multiples(row_lines, x="column", y="weight", color="row", facet="matrix", columns=2)``.
    ``independent_y=True`` gives each panel its own y range.
    Taught in: 02_svd
    """
    rows = _values(rows)
    if log_x:
        rows, _ = _log_rows(rows, [x], None)
    if log_y:
        rows, _ = _log_rows(rows, [y], None)
    enc = {"x": _pos("x", x, x_type, log=log_x, rows=rows, title=x if x_title is None else x_title, length=width),
           "y": _pos("y", y, "Q", log=log_y, rows=rows, title=y if y_title is None else y_title, length=height),
           "tooltip": _tooltip(rows, [facet, color, x, y])}
    if color:
        rows, cfield = _grouped(rows, color, None)
        enc["color"] = _color(cfield, rows=rows)
        if cfield != color:
            enc["detail"] = f"{color}:N"
    base = alt.Chart(alt.Data(values=rows))
    base = base.mark_line(clip=True) if kind == "line" else base.mark_point(filled=True, clip=True)
    chart = base.encode(**enc).properties(width=width, height=height).facet(
        facet=alt.Facet(f"{facet}:N", sort=None, title=None), columns=columns)
    if title:
        chart = chart.properties(title=_chart_title(title, _width_of(chart)))
    return chart.resolve_scale(y="independent") if independent_y else chart


def histogram(values, *, title: str = "weights", bins: int = 80, rules=(), width: int = 360, height: int = 160,
              x_title: str = "value", log_y: bool = True, log_x: bool = False, rule_labels=None):
    """Histogram of ``values`` (binned here with numpy) with vertical rules at ``rules`` (e.g. thresholds).

    ``log_y=True`` (default): counts on a log axis (ticks 1, 10, 100, ...) so the tails stay visible;
    empty bins are left out and bars start at 0.5, so a bin with one value is a short bar.
    ``log_y=False``: linear counts from 0. ``log_x=True``: log-spaced bins over the positive values
    (e.g. |gradients|), a log x axis. ``rule_labels``: one text per rule (see :func:`rules`); by default each
    rule is labelled with its value (3 significant digits), so no reference line goes unlabelled.
    Taught in: 01_pruning, 03_deepthin, 04_quantization
    """
    v = np.asarray(values, dtype=np.float64).ravel()
    if log_x:
        v = v[v > 0]
        edges = np.geomspace(v.min(), v.max() * (1 + 1e-9), bins + 1) if v.size else np.geomspace(1, 10, bins + 1)
        counts, edges = np.histogram(v, bins=edges)
    else:
        counts, edges = np.histogram(v, bins=bins)
    rows = [{"lo": float(a), "hi": float(b), "count": int(c)} for a, b, c in zip(edges[:-1], edges[1:], counts)
            if c or not log_y]
    if log_y:
        top = max([r["count"] for r in rows] or [1])
        scale, ax = _log_scale_axis([0.5, top], floor=0.5, length=height, channel="y")
        y = alt.Y("count:Q", scale=scale, axis=ax, title="count (log)")
        y2 = alt.datum(0.5)
    else:
        y, y2 = alt.Y("count:Q", title="count"), alt.datum(0)
    x = (_pos("x", "lo", "Q", log=True, rows=[{"lo": float(edges[0])}, {"lo": float(edges[-1])}], title=x_title,
              length=width)
         if log_x else alt.X("lo:Q", title=x_title))
    chart = alt.Chart(alt.Data(values=rows), title=_chart_title(title, width)).mark_bar().encode(
        x=x, x2="hi:Q", y=y, y2=y2,  # with x2 set, a bar needs y2 too or Vega-Lite draws a thin horizontal mark
        tooltip=[alt.Tooltip("lo:Q", format=".3g"), alt.Tooltip("hi:Q", format=".3g"), "count:Q"])
    if len(rules):
        if rule_labels is None:
            rule_labels = [f"{float(r):.3g}" for r in np.atleast_1d(np.asarray(rules, dtype=np.float64))]
        chart = chart + _rules(rules, axis="x", label=rule_labels, color="crimson")
    return chart.properties(width=width, height=height)


def history(rows, *, title: str = "training"):
    """Train and validation accuracy per epoch (rows from :meth:`History.rows`).

    Taught in: 00_speech_commands
    """
    long = [{"epoch": r["epoch"], "metric": m, "value": r[m]} for r in rows for m in ("train_acc", "val_acc")
            if r[m] == r[m]]
    return lines(long, x="epoch", y="value", color="metric", title=title, y_title="accuracy")


# ------------------------------------------------------------------ lint

_POSITIONAL = ("x", "y")
_COLOR_CHANNELS = ("color", "fill", "stroke")
_LEGEND_CHANNELS = ("color", "fill", "stroke", "shape", "strokeDash", "size", "opacity")


def _spec_of(chart) -> dict:
    return chart.to_dict() if hasattr(chart, "to_dict") else chart


def _rows_of(data, datasets) -> list | None:
    if not isinstance(data, dict):
        return None
    if isinstance(data.get("values"), list):
        return data["values"]
    if "name" in data and data["name"] in datasets:
        return datasets[data["name"]]
    return None


def _title_lines(t) -> list[str]:
    if isinstance(t, dict):
        t = t.get("text")
    if t is None:
        return []
    if isinstance(t, (list, tuple)):
        return [str(s) for s in t]
    return [str(t)]


def _mark_type(mark) -> str | None:
    return mark.get("type") if isinstance(mark, dict) else mark


def _mark_prop(mark, key):
    return mark.get(key) if isinstance(mark, dict) else None


def _si(v: float) -> str:
    """d3's ``format('~s')``: 1, 20, 5k, 1.5M, 500m."""
    if v == 0:
        return "0"
    e = int(np.floor(np.log10(abs(v)) / 3 + 1e-12)) * 3
    e = max(-24, min(24, e))
    prefix = {-24: "y", -21: "z", -18: "a", -15: "f", -12: "p", -9: "n", -6: "µ", -3: "m", 0: "", 3: "k", 6: "M",
              9: "G", 12: "T", 15: "P", 18: "E", 21: "Z", 24: "Y"}[e]
    return f"{float(f'{v / 10 ** e:.3g}'):g}{prefix}"


def _small(v: float) -> str:
    """The ``LABEL_SMALL`` label: "1e-4", "0.02", "0.5", "1e4"."""
    if v >= 1e4 or v < 1e-2:
        m, k = f"{v:.0e}".split("e")
        return f"{m}e{int(k)}"
    return f"{v:g}"


def tick_label(value, axis: dict | None = None, *, discrete: bool = False) -> str:
    """The text Vega draws for tick ``value`` on ``axis`` (an axis spec dict), for the label
    expressions and formats these builders use (else the value as ``{:,g}`` / ``str``; on a ``discrete``
    axis the value's plain text); the lint's estimate of label widths.

    Taught in: all lessons (the chart rules)
    """
    axis = axis or {}
    expr, fmt = axis.get("labelExpr"), axis.get("format")
    if isinstance(value, str) or isinstance(value, bool) or _num(value) is None:
        return str(value)
    v = float(value)
    if discrete and not expr and not fmt:     # a category: drawn as the value's text ("1184", "0.5")
        return str(int(v)) if v == int(v) else f"{v:g}"
    if expr == LABEL_SI or fmt == "~s":
        return _si(v)
    if expr == LABEL_SMALL:
        return _small(v)
    if isinstance(fmt, str) and fmt:
        try:
            return format(v, fmt.replace("~", ""))
        except ValueError:
            pass
    return f"{int(v):,}" if v == int(v) and abs(v) < 1e15 else f"{v:,g}"


def _font(axis: dict, key: str, default: float) -> float:
    f = axis.get(key)
    return float(f) if isinstance(f, (int, float)) else default


def lint(chart, *, max_colors: int = MAX_COLORS, title_width: int = TITLE_WIDTH) -> list[str]:
    """The course's chart rules that ``chart`` (an altair chart or its Vega-Lite spec dict) breaks; [] if none.

    Walks layer / hconcat / vconcat / concat / facet / repeat specs recursively, with data inline
    (``data.values``), named (top-level ``datasets``) or inherited from a parent, and sizes inherited
    from a parent layer. Label widths are estimated at ``CHAR_PX`` per character of a 10 px label
    (``TITLE_CHAR_PX`` for a 13 px bold title). The rules:
      1. at most ``max_colors`` colours: a nominal/ordinal colour (``color``/``fill``/``stroke``) field has
         at most that many distinct values in its data (or its scale's ``domain``), and so has the union of
         all of a chart's colour fields (they share one scale unless resolved independent);
      2. no ``symlog`` scale, unless its axis has explicit tick ``values`` (at least 4);
      3. every shown log-scale x/y axis has ``labelOverlap`` and explicit tick ``values``, at least two of them
         inside the domain;
      4. heatmaps (``rect`` marks with an x and a y field) have axes: not hidden (``axis: null``), labels on,
         and titles that are not empty;
      5. every chart, axis and legend title line is at most ``title_width`` characters;
      6. a reference line (``rule`` mark) carries a text label: a ``text`` mark beside it in its layer, with
         non-empty text;
      7. no overlapping tick labels: on an axis whose ticks are known (explicit ``values`` or categories),
         neighbouring labels are far enough apart for their estimated size at their angle;
      8. nothing clipped: a chart title fits the chart's width; legend labels, legend titles and
         category axis labels fit their ``labelLimit`` / ``titleLimit`` (Vega cuts longer ones with "…");
         text marks are not clipped at the plot edge (``clip: true``) unless the axis domain is fixed.
    Each problem is one string naming the rule number, the place in the spec, and what is wrong.
    ``assert not charts.lint(chart), charts.lint(chart)`` in a test checks a lesson's chart.
    Taught in: all lessons (tests run it on every chart a lesson draws)
    """
    spec = _spec_of(chart)
    datasets = spec.get("datasets", {}) if isinstance(spec, dict) else {}
    problems: list[str] = []
    colour_values: set = set()
    independent = {"on": False}

    def check_title(t, where, width_px=None, char_px=TITLE_CHAR_PX):
        for line in _title_lines(t):
            if len(line) > title_width:
                problems.append(f"rule 5 at {where}: title line of {len(line)} chars > {title_width}: {line[:40]!r}...")
            elif width_px is not None and len(line) * char_px > width_px + 1e-9:
                problems.append(f"rule 8 at {where}: title line {line[:40]!r} is ~{len(line) * char_px:.0f} px, wider "
                                f"than the chart's {width_px:.0f} px: wrap or shorten it")

    def distinct(rows, field):
        if rows is None or not field:
            return None
        return list(dict.fromkeys(r.get(field) for r in rows if isinstance(r, dict) and field in r))

    def categories(e, rows):
        """The category order of a discrete axis, or None when unknown."""
        vals = distinct(rows, e.get("field"))
        scale = e.get("scale") if isinstance(e.get("scale"), dict) else {}
        if isinstance(scale.get("domain"), list):
            return list(scale["domain"])
        if vals is None:
            return None
        sort = e.get("sort", "ascending")
        if isinstance(sort, list):
            return [v for v in sort if v in vals] + [v for v in vals if v not in sort]
        if sort is None:
            return vals
        try:
            out = sorted(vals, key=lambda v: (float(v) if _num(v) is not None and not isinstance(v, str) else float("inf"), str(v)))
        except TypeError:
            out = vals
        return out[::-1] if sort == "descending" else out

    def axis_length(ch, size, e, rows):
        """Pixel length of the x/y axis: the unit's width/height, a step × categories, or the default."""
        v = size.get("width" if ch == "x" else "height")
        discrete = e.get("type") in ("nominal", "ordinal")
        if isinstance(v, (int, float)):
            return float(v)
        cats = categories(e, rows) if discrete else None
        if isinstance(v, dict) and "step" in v and cats is not None:
            return float(v["step"]) * len(cats)
        if discrete:
            return _DEFAULT_STEP * len(cats) if cats is not None else None
        return float(_DEFAULT_SIZE)

    def check_ticks(ch, e, rows, size, where):
        """Rule 7 (overlapping tick labels) and rule 8 (category labels cut) for one x/y axis."""
        axis = e.get("axis", {})
        if axis is None or not e.get("field"):
            return
        axis = axis or {}
        if axis.get("labels") is False:
            return
        scale = e.get("scale") if isinstance(e.get("scale"), dict) else {}
        length = axis_length(ch, size, e, rows)
        if not length:
            return
        discrete = e.get("type") in ("nominal", "ordinal") and scale.get("type") in (None, "band", "point")
        fs = _font(axis, "labelFontSize", _LABEL_FONT)
        if discrete:
            cats = categories(e, rows)
            if not cats:
                return
            step = length / len(cats)
            shown = axis.get("values") if isinstance(axis.get("values"), list) else cats
            index = {str(c): i for i, c in enumerate(cats)}
            ticks = sorted((index[str(v)] * step, tick_label(v, axis, discrete=True)) for v in shown if str(v) in index)
            angle = axis.get("labelAngle", 270 if ch == "x" else 0)
            limit = axis.get("labelLimit", _AXIS_LABEL_LIMIT)
            cut = [t for _, t in ticks if isinstance(limit, (int, float)) and limit > 0 and _label_px([t], fs) > limit]
            if cut:
                problems.append(f"rule 8 at {where}.encoding.{ch}: category label {cut[0][:30]!r} (~"
                                f"{_label_px([cut[0]], fs):.0f} px) is cut at labelLimit {limit}")
        else:
            values = axis.get("values")
            if not isinstance(values, list) or not values:
                return                  # Vega chooses the ticks (and hides overlaps itself)
            vals = [float(v) for v in values if _num(v) is not None]
            dom = scale.get("domain") if isinstance(scale.get("domain"), list) else None
            if dom is None or len(dom) != 2 or _num(dom[0]) is None or _num(dom[1]) is None:
                data = [_num(r.get(e["field"])) for r in rows or [] if isinstance(r, dict)]
                data = [d for d in data if d is not None] + vals
                dom = [min(data), max(data)]
            lo, hi = float(dom[0]), float(dom[1])
            if scale.get("type") == "log":
                if lo <= 0 or hi <= 0:
                    return
                pos = lambda v: (np.log10(v) - np.log10(lo)) / (np.log10(hi) - np.log10(lo) or 1)  # noqa: E731
                vals = [v for v in vals if v > 0]
            else:
                pos = lambda v: (v - lo) / ((hi - lo) or 1)  # noqa: E731
            eps = 1e-9 * max(abs(lo), abs(hi), 1e-300)
            ticks = sorted((float(pos(v)) * length, tick_label(v, axis)) for v in vals if lo - eps <= v <= hi + eps)
            angle = axis.get("labelAngle", 0)
        for (p0, t0), (p1, t1) in zip(ticks, ticks[1:]):
            d = abs(p1 - p0)
            if _labels_collide(d, t0, t1, channel=ch, angle=angle, font=fs):
                problems.append(f"rule 7 at {where}.encoding.{ch}: tick labels {t0!r} and {t1!r} overlap "
                                f"({d:.0f} px apart on a {length:.0f} px axis): thin the ticks or use a compact "
                                "format (10k, 1e-4)")
                break

    def check_unit(node, rows, size, where, siblings):
        enc = node.get("encoding", {}) or {}
        mark = _mark_type(node.get("mark"))
        for ch, e in enc.items():
            if not isinstance(e, dict):
                continue
            scale = e.get("scale") if isinstance(e.get("scale"), dict) else {}
            if ch in _COLOR_CHANNELS and e.get("field") and e.get("type") in ("nominal", "ordinal"):
                dom = scale.get("domain")
                vals = dom if isinstance(dom, list) else distinct(rows, e["field"]) or []
                colour_values.update(str(v) for v in vals)
                if len({str(v) for v in vals}) > max_colors:
                    problems.append(f"rule 1 at {where}.encoding.{ch}: {len({str(v) for v in vals})} distinct colours "
                                    f"of {e['field']!r} (> {max_colors})")
            if ch in _POSITIONAL and scale.get("type") in ("log", "symlog") and e.get("axis", {}) is not None:
                axis = e.get("axis") or {}
                values = axis.get("values") if isinstance(axis.get("values"), list) else []
                dom = scale.get("domain") if isinstance(scale.get("domain"), list) and len(scale["domain"]) == 2 else None
                inside = [v for v in values if _num(v) is not None and (dom is None or (
                    _num(dom[0]) is not None and _num(dom[1]) is not None
                    and float(dom[0]) * (1 - 1e-9) <= float(v) <= float(dom[1]) * (1 + 1e-9)))]
                if scale["type"] == "symlog":
                    if len(inside) < 4:
                        problems.append(f"rule 2 at {where}.encoding.{ch}: symlog scale on {e.get('field')!r} with "
                                        f"{len(inside)} explicit ticks (< 4): use a log axis (lines(..., floor=...))")
                elif "labelOverlap" not in axis or len(inside) < 2:
                    problems.append(f"rule 3 at {where}.encoding.{ch}: log axis of {e.get('field')!r} needs "
                                    "labelOverlap and explicit tick values (at least 2 inside its domain)")
            heat = mark == "rect" and all(isinstance(enc.get(c), dict) and enc[c].get("field") for c in _POSITIONAL) \
                and "x2" not in enc and "y2" not in enc
            if heat and ch in _POSITIONAL:
                axis = e.get("axis", {})
                if axis is None:
                    problems.append(f"rule 4 at {where}.encoding.{ch}: heatmap with its {ch} axis hidden")
                elif (axis or {}).get("labels") is False:
                    problems.append(f"rule 4 at {where}.encoding.{ch}: heatmap {ch} axis without tick labels")
                elif ("title" in e and not e["title"] and not (axis or {}).get("title")) or \
                        ("title" in (axis or {}) and not axis["title"]):
                    problems.append(f"rule 4 at {where}.encoding.{ch}: heatmap {ch} axis without a title")
            if ch in _POSITIONAL:
                check_ticks(ch, e, rows, size, where)
            if isinstance(e.get("axis"), dict):
                check_title(e["axis"].get("title"), f"{where}.encoding.{ch}.axis")
            if "title" in e:
                check_title(e.get("title"), f"{where}.encoding.{ch}")
            if isinstance(e.get("legend"), dict):
                check_title(e["legend"].get("title"), f"{where}.encoding.{ch}.legend")
            if ch in _LEGEND_CHANNELS and e.get("legend", {}) is not None and e.get("field") \
                    and e.get("type") in ("nominal", "ordinal"):
                legend = e.get("legend") or {}
                dom = scale.get("domain")
                labels = [str(v) for v in (dom if isinstance(dom, list) else distinct(rows, e["field"]) or [])]
                limit = legend.get("labelLimit", _LEGEND_LABEL_LIMIT)
                fs = _font(legend, "labelFontSize", _LABEL_FONT)
                long = [s for s in labels
                        if isinstance(limit, (int, float)) and limit > 0 and _label_px([s], fs) > limit]
                if long:
                    problems.append(f"rule 8 at {where}.encoding.{ch}.legend: label {long[0][:30]!r} (~"
                                    f"{_label_px([long[0]], fs):.0f} px) is cut at labelLimit {limit}")
                title = legend.get("title", e.get("title", e.get("field")))
                tlimit = legend.get("titleLimit", _LEGEND_TITLE_LIMIT)
                for line in _title_lines(title):
                    if isinstance(tlimit, (int, float)) and tlimit > 0 and \
                            _label_px([line], _LEGEND_TITLE_FONT) > tlimit:
                        problems.append(f"rule 8 at {where}.encoding.{ch}.legend: title {line[:30]!r} is cut at "
                                        f"titleLimit {tlimit}")
        if mark == "text" and _mark_prop(node.get("mark"), "clip"):
            fixed = any(isinstance(enc.get(c), dict) and isinstance(enc[c].get("scale"), dict)
                        and isinstance(enc[c]["scale"].get("domain"), list) for c in _POSITIONAL)
            if not fixed:
                problems.append(f"rule 8 at {where}: text marks with clip=true are cut at the plot edge "
                                "(clip only when an axis domain is fixed)")
        if mark == "rule":
            texts = [s for s in siblings if isinstance(s, dict) and _mark_type(s.get("mark")) == "text"
                     and isinstance((s.get("encoding") or {}).get("text"), dict)]
            if not texts:
                problems.append(f"rule 6 at {where}: a reference line (rule) without a text label beside it "
                                "(charts.rules(..., label=...))")
            else:
                labelled = False
                for s in texts:
                    t = s["encoding"]["text"]
                    srows = _rows_of(s.get("data"), datasets)
                    srows = srows if srows is not None else rows
                    if "value" in t or "datum" in t or srows is None:
                        labelled = labelled or bool(t.get("value", t.get("datum", True)))
                    else:
                        labelled = labelled or any(str(r.get(t.get("field"), "")).strip() for r in srows
                                                   if isinstance(r, dict))
                if not labelled:
                    problems.append(f"rule 6 at {where}: the reference line's text label is empty")

    def walk(node, rows, size, where, siblings=()):
        if isinstance(node, list):
            for i, n in enumerate(node):
                walk(n, rows, size, f"{where}[{i}]", node)
            return
        if not isinstance(node, dict):
            return
        own = _rows_of(node.get("data"), datasets)
        rows = own if own is not None else rows
        size = dict(size)
        for k in ("width", "height"):
            if k in node:
                size[k] = node[k]
        res = node.get("resolve", {})
        if isinstance(res, dict) and (res.get("scale") or {}).get("color") == "independent":
            independent["on"] = True
        check_title(node.get("title"), f"{where}.title", _width_of(node, size.get("width")))
        if "mark" in node:
            check_unit(node, rows, size, where, siblings)
        if "layer" in node:
            walk(node["layer"], rows, size, f"{where}.layer")
        for key in ("hconcat", "vconcat", "concat"):
            if key in node:
                walk(node[key], rows, {}, f"{where}.{key}")
        if "spec" in node:
            walk(node["spec"], rows, {}, f"{where}.spec")

    walk(spec, None, {}, "chart")
    if not independent["on"] and len(colour_values) > max_colors and not any(p.startswith("rule 1") for p in problems):
        problems.append(f"rule 1 at chart: {len(colour_values)} colours across its layers / panels share one scale "
                        f"(> {max_colors}); group them or resolve the colour scales independently")
    return problems


# ------------------------------------------------------------------ the static SVG: is anything cut?

def _translate(transform: str | None) -> tuple[float, float, float]:
    """(dx, dy, rotation in degrees) of a Vega SVG ``transform`` ("translate(x,y) rotate(a) ...")."""
    dx = dy = rot = 0.0
    if transform:
        m = re.match(r"\s*translate\(\s*([-\d.e]+)[ ,]+([-\d.e]+)\s*\)", transform)
        if m:
            dx, dy = float(m.group(1)), float(m.group(2))
        r = re.search(r"rotate\(\s*([-\d.e]+)", transform)
        if r:
            rot = float(r.group(1))
    return dx, dy, rot


def svg_problems(svg: str, *, char_em: float = 0.4, tolerance: float = 3.0) -> list[str]:
    """Text a static SVG (as vl-convert writes it) shows cut: labels Vega shortened with "…", and text whose
    estimated box (``char_em`` × font size per character, a lower bound) reaches outside the SVG's
    ``viewBox`` or outside the clip rectangle of the group that holds it. [] if none.

    Taught in: all lessons (tests render every chart type and check it)
    """
    import xml.etree.ElementTree as ET

    root = ET.fromstring(svg)
    vb = [float(v) for v in root.get("viewBox", "0 0 0 0").replace(",", " ").split()]
    W, H = (vb[2], vb[3]) if len(vb) == 4 else (float(root.get("width", 0)), float(root.get("height", 0)))
    ns = "{http://www.w3.org/2000/svg}"
    clips = {}
    for cp in root.iter(f"{ns}clipPath"):
        r = cp.find(f"{ns}rect")
        if r is not None:
            clips[cp.get("id")] = tuple(float(r.get(k, 0)) for k in ("x", "y", "width", "height"))
    out = []

    def visit(el, ox, oy, clip):
        dx, dy, _ = _translate(el.get("transform")) if el.tag != f"{ns}text" else (0.0, 0.0, 0.0)
        ox, oy = ox + dx, oy + dy
        ref = re.match(r"url\(#([^)]+)\)", el.get("clip-path", "") or "")
        if ref and ref.group(1) in clips:
            x, y, w, h = clips[ref.group(1)]
            clip = (ox + x, oy + y, ox + x + w, oy + y + h)
        if el.tag == f"{ns}text":
            spans = el.findall(f"{ns}tspan")
            lines = ["".join(t.itertext()) for t in spans] if spans else ["".join(el.itertext())]
            text = max(lines, key=len)
            if not text.strip():
                return
            tx, ty, rot = _translate(el.get("transform"))
            x, y = ox + tx, oy + ty
            fs = float(re.sub(r"[^\d.]", "", el.get("font-size", "10")) or 10)
            step = sum(float(t.get("dy", 0) or 0) for t in spans[1:])           # the later lines go down
            w, h = len(text) * fs * char_em, fs * 0.7 + step
            anchor = el.get("text-anchor", "start")
            a0 = {"start": 0.0, "middle": -w / 2, "end": -w}.get(anchor, 0.0)
            if abs(rot % 180) == 90:
                box = (x - h / 2, y - (a0 + w) if rot % 360 == 270 else y + a0, x + h / 2,
                       y - a0 if rot % 360 == 270 else y + a0 + w)
            else:
                box = (x + a0, y - fs * 0.7, x + a0 + w, y - fs * 0.7 + h)
            if text.endswith("…"):
                out.append(f"text {text[:40]!r} was shortened with '…' (raise its labelLimit or shorten it)")
            limits = [("the SVG", (0.0, 0.0, W, H))] + ([("its clip rectangle", clip)] if clip else [])
            for name, (x0, y0, x1, y1) in limits:
                if box[0] < x0 - tolerance or box[1] < y0 - tolerance or box[2] > x1 + tolerance or \
                        box[3] > y1 + tolerance:
                    out.append(f"text {text[:40]!r} at ({box[0]:.0f}, {box[1]:.0f})–({box[2]:.0f}, {box[3]:.0f}) "
                               f"reaches outside {name} ({x0:.0f}, {y0:.0f})–({x1:.0f}, {y1:.0f})")
                    break
            return
        for child in el:
            visit(child, ox, oy, clip)

    visit(root, 0.0, 0.0, None)
    return out
