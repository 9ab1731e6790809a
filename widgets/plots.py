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

from thinlab.charts import block_reduce

#: the most rows / columns an image shows
IMAGE_SIDE = 64


# ------------------------------------------------------------------ rows

def matrix_rows(M) -> list[dict]:
    """``{"row", "column", "value"}`` for every entry of a small 2-D array (row-major)."""
    M = np.asarray(M, dtype=np.float64)
    ii, jj = np.indices(M.shape)  # (r, c) each
    return [{"row": i, "column": j, "value": v}
            for i, j, v in zip(ii.ravel().tolist(), jj.ravel().tolist(), M.ravel().tolist())]


def crop(W, side: int = IMAGE_SIDE) -> np.ndarray:
    """The top-left ``side`` x ``side`` corner of ``W``: real weights, not averages."""
    return np.asarray(W)[:side, :side]


def weight_range(M, *, q: float = 0.99) -> float:
    """A robust colour range ``a`` for weights shown on ``[-a, a]``: the ``q`` quantile of |M| (the
    few larger values are clamped), so heavy tails do not wash the image out."""
    a = float(np.quantile(np.abs(np.asarray(M, dtype=np.float64)), q))
    return a if a > 0 else float(np.abs(M).max()) or 1.0


def block_shape(shape, side: int = IMAGE_SIDE) -> tuple[int, int]:
    """Shape of ``block_reduce(M, side)`` for M of ``shape`` (without computing it)."""
    return tuple(n // -(-n // side) for n in shape)


def block_rows(M, side: int = IMAGE_SIDE) -> list[dict]:
    """Rows of ``M`` block-averaged to at most ``side`` per side (e.g. the kept density of a mask)."""
    return matrix_rows(block_reduce(M, side))


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


def image(name: str, *, shape, title: str, domain, scheme: str = "redblue", color_title: str = "weight",
          side: int = 200) -> alt.Chart:
    """A matrix image over dataset ``name`` (rows from :func:`matrix_rows`), rows top to bottom.

    ``domain`` fixes the colour scale (e.g. ``[-a, a]`` for weights, ``[0, 1]`` for a density) so
    images drawn at different slider values compare; values outside are clamped.
    """
    width, height = _size(shape, side)
    scale = alt.Scale(scheme=scheme, domain=[float(d) for d in domain], clamp=True, reverse=scheme == "redblue")
    return alt.Chart(alt.Data(name=name), title=title).mark_rect().encode(
        x=alt.X("column:O", axis=None), y=alt.Y("row:O", axis=None),
        color=alt.Color("value:Q", scale=scale, title=color_title),
        tooltip=["row:O", "column:O", alt.Tooltip("value:Q", format=".4g")],
    ).properties(width=width, height=height)


def histogram(hist: str, rules: str, *, title: str, x_title: str = "weight", width: int = 300,
              height: int = 160, rule_color: str = "crimson") -> alt.LayerChart:
    """Histogram bars over dataset ``hist`` (:func:`histogram_rows`), rules at dataset ``rules``.

    Counts on a symlog axis, as in :func:`thinlab.charts.histogram`, so the tails stay visible.
    """
    bars = alt.Chart(alt.Data(name=hist)).mark_rect(color="#4c78a8").encode(  # rects: x and y both ranged
        x=alt.X("lo:Q", title=x_title), x2="hi:Q",
        y=alt.Y("count:Q", scale=alt.Scale(type="symlog"), title="count"), y2=alt.datum(0))
    marks = alt.Chart(alt.Data(name=rules)).mark_rule(color=rule_color, strokeDash=[4, 3]).encode(x="at:Q")
    return alt.layer(bars, marks, title=title).properties(width=width, height=height)


def curve(name: str, marker: str, *, x: str, y: str, title: str, color: str | None = None,
          x_title: str | None = None, y_title: str | None = None, x_scale: str = "linear",
          y_scale: str = "linear", width: int = 260, height: int = 160) -> alt.LayerChart:
    """Line(s) over dataset ``name`` (one per ``color``) with a vertical rule at dataset ``marker``."""
    enc = {"x": alt.X(f"{x}:Q", title=x_title or x, scale=alt.Scale(type=x_scale)),
           "y": alt.Y(f"{y}:Q", title=y_title or y, scale=alt.Scale(type=y_scale, zero=False)),
           "tooltip": [alt.Tooltip(f"{x}:Q", format=".4g"), alt.Tooltip(f"{y}:Q", format=".4g")]}
    if color:
        enc["color"] = alt.Color(f"{color}:N", title=None, legend=alt.Legend(orient="bottom"))
    lines = alt.Chart(alt.Data(name=name)).mark_line().encode(**enc)
    rule = alt.Chart(alt.Data(name=marker)).mark_rule(color="crimson", strokeDash=[4, 3]).encode(x="at:Q")
    return alt.layer(lines, rule, title=title).properties(width=width, height=height)


def scatter(name: str, *, x: str, y: str, title: str, x_title: str | None = None,
            y_title: str | None = None, width: int = 220, height: int = 160) -> alt.Chart:
    """Points over dataset ``name``."""
    return alt.Chart(alt.Data(name=name), title=title).mark_circle(size=18).encode(
        x=alt.X(f"{x}:Q", title=x_title or x), y=alt.Y(f"{y}:Q", title=y_title or y),
        tooltip=[f"{x}:Q", f"{y}:Q"]).properties(width=width, height=height)


def row_of(*panels) -> alt.HConcatChart:
    """Panels side by side, each with its own colour scale."""
    return alt.hconcat(*panels, spacing=24).resolve_scale(color="independent")
