"""Chart templates for the explorers: altair charts over *named* datasets, and the rows that fill them.

Building an altair chart from a few thousand row dicts costs about half a second (altair's
per-row object model), too slow for a slider. So an explorer builds its chart once over named
datasets (``alt.Data(name=...)``), validates it once, and a slider move only supplies the rows:
``{**spec, "datasets": {name: rows}}``. Everything here is pure: data in, chart or rows out.

Taught in: 01_pruning … 06_pipeline (the explorers)
"""
from __future__ import annotations

import altair as alt
import numpy as np

from thinlab.charts import index_ticks, log_axis, wrap_title

#: the most rows / columns an image shows
IMAGE_SIDE = 64
#: kept / pruned colours of a mask image: dark on light, readable at any sparsity (and in grey print)
MASK_COLORS = {"kept": "#1f3b73", "pruned": "#e6e6e6"}
_INDEX_AXIS = dict(labelAngle=0, ticks=False, domain=False, labelOverlap="greedy", labelFontSize=9,
                   titleFontSize=10, titleFontWeight="normal", titlePadding=2)


# ------------------------------------------------------------------ rows

def matrix_rows(M) -> list[dict]:
    """``{"row", "column", "value"}`` for every entry of a small 2-D array (row-major)."""
    M = np.asarray(M, dtype=np.float64)
    ii, jj = np.indices(M.shape)  # (r, c) each
    return [{"row": i, "column": j, "value": v}
            for i, j, v in zip(ii.ravel().tolist(), jj.ravel().tolist(), M.ravel().tolist())]


def mask_rows(W, mask) -> list[dict]:
    """``{"row", "column", "value", "state"}`` per entry: the weight and whether it is ``"kept"`` or ``"pruned"``."""
    W, mask = np.asarray(W, dtype=np.float64), np.asarray(mask, dtype=bool)
    ii, jj = np.indices(W.shape)  # (r, c) each
    return [{"row": i, "column": j, "value": v, "state": "kept" if k else "pruned"}
            for i, j, v, k in zip(ii.ravel().tolist(), jj.ravel().tolist(), W.ravel().tolist(), mask.ravel().tolist())]


def crop(W, side: int = IMAGE_SIDE) -> np.ndarray:
    """The top-left ``side`` x ``side`` corner of ``W``: real weights, not averages."""
    return np.asarray(W)[:side, :side]


def weight_range(M, *, q: float = 0.99) -> float:
    """A robust colour range ``a`` for weights shown on ``[-a, a]``: the ``q`` quantile of |M| (the
    few larger values are clamped), so heavy tails do not wash the image out."""
    a = float(np.quantile(np.abs(np.asarray(M, dtype=np.float64)), q))
    return a if a > 0 else float(np.abs(M).max()) or 1.0


def histogram_rows(values, *, bins: int = 80) -> list[dict]:
    """``{"lo", "hi", "count"}`` per bin of a numpy histogram of ``values``."""
    counts, edges = np.histogram(np.asarray(values, dtype=np.float64).ravel(), bins=bins)
    return [{"lo": a, "hi": b, "count": c} for a, b, c in zip(edges[:-1].tolist(), edges[1:].tolist(),
                                                              counts.tolist())]


def rule_rows(positions) -> list[dict]:
    """``{"at"}`` rows for vertical rules (thresholds, quantisation levels, the current rank)."""
    return [{"at": float(p)} for p in np.ravel(positions)]


# ------------------------------------------------------------------ templates

def _size(shape, side: int) -> tuple[int, int]:
    """(width, height) in pixels of an image of ``shape``, longest side ``side`` pixels."""
    rows, cols = shape
    scale = side / max(rows, cols)
    return max(40, round(cols * scale)), max(40, round(rows * scale))


def _index_axes(shape):
    """The x (column) and y (row) encodings of a matrix image of ``shape``: a few index labels, rows top down."""
    rows, cols = shape
    return (alt.X("column:O", title="column", axis=alt.Axis(values=index_ticks(cols, k=4), **_INDEX_AXIS)),
            alt.Y("row:O", title="row", axis=alt.Axis(values=index_ticks(rows, k=4), **_INDEX_AXIS)))


def image(name: str, *, shape, title: str, domain, scheme: str = "redblue", color_title: str = "weight",
          side: int = 150, legend: bool = True) -> alt.Chart:
    """A matrix image over dataset ``name`` (rows from :func:`matrix_rows`), rows top to bottom, index axes.

    ``domain`` fixes the colour scale (e.g. ``[-a, a]`` for weights, ``[0, 1]`` for a density) so
    images drawn at different slider values compare; values outside are clamped. ``legend=False``
    hides the colour legend (show it on one of several images drawn on the same range).
    """
    width, height = _size(shape, side)
    x, y = _index_axes(shape)
    scale = alt.Scale(scheme=scheme, domain=[float(d) for d in domain], clamp=True, reverse=scheme == "redblue")
    color = alt.Color("value:Q", scale=scale, title=color_title,
                      legend=alt.Legend(gradientLength=max(60, height - 20), gradientThickness=10) if legend else None)
    return alt.Chart(alt.Data(name=name), title=wrap_title(title)).mark_rect().encode(
        x=x, y=y, color=color,
        tooltip=["row:O", "column:O", alt.Tooltip("value:Q", format=".4g")],
    ).properties(width=width, height=height)


def mask_image(name: str, *, shape, title: str, side: int = 150) -> alt.Chart:
    """A pruning mask over dataset ``name`` (rows from :func:`mask_rows`): each square one weight, kept dark,
    pruned light (:data:`MASK_COLORS`), so a few survivors stand out at 99 % sparsity as well as holes at 10 %."""
    width, height = _size(shape, side)
    x, y = _index_axes(shape)
    scale = alt.Scale(domain=list(MASK_COLORS), range=list(MASK_COLORS.values()))
    color = alt.Color("state:N", title=None, scale=scale,
                      legend=alt.Legend(orient="bottom", symbolType="square"))
    return alt.Chart(alt.Data(name=name), title=wrap_title(title)).mark_rect().encode(
        x=x, y=y, color=color,
        tooltip=["row:O", "column:O", "state:N", alt.Tooltip("value:Q", format=".4g", title="weight")],
    ).properties(width=width, height=height)


def labelled_rules(name: str, *, label: str, color: str = "crimson") -> alt.LayerChart:
    """Dashed vertical rules at dataset ``name`` (:func:`rule_rows`), the rightmost one labelled ``label``
    at the top (one label, however many rules: quantisation levels, ± a threshold)."""
    rule = alt.Chart(alt.Data(name=name)).mark_rule(color=color, strokeDash=[4, 3]).encode(x="at:Q")
    text = alt.Chart(alt.Data(name=name)).transform_joinaggregate(right="max(at)").transform_filter(
        "datum.at == datum.right").mark_text(align="left", baseline="top", dx=3, fontSize=10, color=color).encode(
        x="at:Q", y=alt.value(2), text=alt.value(label))
    return alt.layer(rule, text)


def histogram(hist: str, rules: str, *, title: str, max_count: int, x_title: str = "weight", width: int = 260,
              height: int = 150, rule_color: str = "crimson", rule_label: str = "threshold") -> alt.LayerChart:
    """Histogram bars over dataset ``hist`` (:func:`histogram_rows`), rules at dataset ``rules``.

    Counts on a log axis (ticks 1, 10, 100, …; empty bins left out, bars from 0.5, so one weight is a
    short bar), as in :func:`thinlab.charts.histogram`, so the tails stay visible. ``max_count``: the
    tallest bin, which fixes the axis.
    """
    scale, axis = log_axis(1, max(2, int(max_count)), floor=0.5, clamp=True, title="count (log)")
    bars = alt.Chart(alt.Data(name=hist)).transform_filter("datum.count > 0").mark_rect(color="#4c78a8").encode(
        x=alt.X("lo:Q", title=x_title), x2="hi:Q",  # rects: x and y both ranged
        y=alt.Y("count:Q", scale=scale, axis=axis), y2=alt.datum(0.5),
        tooltip=[alt.Tooltip("lo:Q", format=".3g"), alt.Tooltip("hi:Q", format=".3g"), "count:Q"])
    return alt.layer(bars, labelled_rules(rules, label=rule_label, color=rule_color),
                     title=wrap_title(title)).properties(width=width, height=height)


def curve(name: str, marker: str, *, x: str, y: str, title: str, color: str | None = None,
          x_title: str | None = None, y_title: str | None = None, y_range=None, width: int = 200,
          height: int = 150, marker_label: str = "now") -> alt.LayerChart:
    """Line(s) over dataset ``name`` (one per ``color``) with a vertical rule at dataset ``marker``.

    ``y_range=(lo, hi)``: a log y axis over that range (both > 0) with readable ticks; else linear.
    """
    if y_range is None:
        y_enc = alt.Y(f"{y}:Q", title=y_title or y, scale=alt.Scale(zero=False))
    else:
        scale, axis = log_axis(*y_range, clamp=True, title=y_title or y)
        y_enc = alt.Y(f"{y}:Q", scale=scale, axis=axis)
    enc = {"x": alt.X(f"{x}:Q", title=x_title or x), "y": y_enc,
           "tooltip": [alt.Tooltip(f"{x}:Q", format=".4g"), alt.Tooltip(f"{y}:Q", format=".4g")]}
    if color:
        enc["color"] = alt.Color(f"{color}:N", title=None, legend=alt.Legend(orient="bottom"))
    lines = alt.Chart(alt.Data(name=name)).mark_line().encode(**enc)
    return alt.layer(lines, labelled_rules(marker, label=marker_label),
                     title=wrap_title(title)).properties(width=width, height=height)


def scatter(name: str, *, x: str, y: str, title: str, x_title: str | None = None,
            y_title: str | None = None, width: int = 180, height: int = 150) -> alt.Chart:
    """Points over dataset ``name``."""
    return alt.Chart(alt.Data(name=name), title=wrap_title(title)).mark_circle(size=18).encode(
        x=alt.X(f"{x}:Q", title=x_title or x), y=alt.Y(f"{y}:Q", title=y_title or y),
        tooltip=[f"{x}:Q", f"{y}:Q"]).properties(width=width, height=height)


def row_of(*panels) -> alt.HConcatChart:
    """Panels side by side, each with its own colour scale (images of one weight on one fixed range get the
    same colours; pass ``legend=False`` to all but one)."""
    return alt.hconcat(*panels, spacing=16).resolve_scale(color="independent")
