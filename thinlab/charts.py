"""Altair chart builders (pure functions from data to chart) and the offline rendering path.

Rendering: altair 6 writes Vega-Lite v6, which JupyterLab 4 does not draw natively, and its default
renderer loads vega from a CDN (blank offline). Importing this module registers and enables the
``"thinlab"`` renderer, whose output carries
  * ``application/vnd.vegalite.v5+json``: drawn natively (interactive, offline) by JupyterLab 4;
  * ``image/svg+xml``: the same chart rendered offline by vl-convert (Vega-Lite 5), used by static
    HTML (nbconvert) and any front end without a Vega renderer;
  * ``text/plain``: a one-line description.
All three are valid nbformat outputs, so papermill's executed notebooks validate.

Taught in: all lessons (first in 00_speech_commands)
"""
from __future__ import annotations

import contextlib

import altair as alt
import numpy as np

VL5_SCHEMA = "https://vega.github.io/schema/vega-lite/v5.20.1.json"
VL5_VERSION = "5.20"
_SVG = {"on": True}


def to_vl5(spec: dict) -> dict:
    """The chart's spec with its ``$schema`` set to Vega-Lite 5 (the builders here use only v5 features)."""
    return {**spec, "$schema": VL5_SCHEMA}


def mimebundle(spec: dict, *, svg: bool | None = None) -> dict:
    """The notebook output for a chart spec: Vega-Lite 5 JSON (+ offline SVG) (+ text)."""
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
    """Temporarily turn the SVG copy on or off (widgets redraw faster without it)."""
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
    """Average-pool a 2-D array so neither side exceeds ``max_side`` (for weight images)."""
    M = np.asarray(M, dtype=np.float64)
    fr, fc = max(1, -(-M.shape[0] // max_side)), max(1, -(-M.shape[1] // max_side))
    r, c = M.shape[0] // fr * fr, M.shape[1] // fc * fc
    return M[:r, :c].reshape(r // fr, fr, c // fc, fc).mean(axis=(1, 3))  # (r/fr, fr, c/fc, fc) → (r/fr, c/fc)


# ------------------------------------------------------------------ builders

def waveform(audio, *, sr: int = 16000, title: str = "waveform", width: int = 420, height: int = 120):
    """Line chart of a clip, min/max-decimated to ≤ 800 points. Taught in: 00_speech_commands"""
    a = np.asarray(audio, dtype=np.float32).ravel()
    n = max(1, len(a) // 400)
    a = a[: len(a) // n * n].reshape(-1, n)  # (points, n) samples per point
    t = np.arange(len(a)) * n / sr
    rows = [{"t": float(ti), "amp": float(v)} for ti, lo, hi in zip(t, a.min(1), a.max(1)) for v in (lo, hi)]
    return alt.Chart(alt.Data(values=rows), title=title).mark_line(strokeWidth=0.7).encode(
        x=alt.X("t:Q", title="time (s)"), y=alt.Y("amp:Q", title="amplitude")
    ).properties(width=width, height=height)


def heatmap(M, *, title: str = "", x: str = "column", y: str = "row", color: str = "value",
            scheme: str = "viridis", width: int = 300, height: int = 200, max_side: int = 64,
            domain_mid: float | None = None):
    """A matrix as an image (rows top to bottom), block-averaged to ≤ ``max_side`` per side.

    ``domain_mid=0`` uses a diverging colour scale centred on zero (weights).
    Taught in: all lessons
    """
    R = block_reduce(M, max_side)
    ii, jj = np.indices(R.shape)
    rows = [{y: int(i), x: int(j), color: float(v)} for i, j, v in zip(ii.ravel(), jj.ravel(), R.ravel())]
    scale = alt.Scale(scheme=scheme) if domain_mid is None else alt.Scale(scheme="redblue", domainMid=domain_mid,
                                                                          reverse=True)
    return alt.Chart(alt.Data(values=rows), title=title).mark_rect().encode(
        x=alt.X(f"{x}:O", axis=None), y=alt.Y(f"{y}:O", axis=None),
        color=alt.Color(f"{color}:Q", scale=scale, title=color),
    ).properties(width=width, height=height)


def spectrogram(S, *, title: str = "log-mel spectrogram", width: int = 420, height: int = 140):
    """Log-mel features (frames, n_mels) as an image, time left to right, low bands at the bottom."""
    S = np.asarray(S)
    return heatmap(S.T[::-1], title=title, x="frame", y="mel band", color="log-mel", scheme="magma",
                   width=width, height=height, max_side=128)


def confusion(cm, labels, *, title: str = "confusion matrix (rows: true)", width: int = 300):
    """Confusion matrix with counts, rows = true class. Taught in: 00_speech_commands"""
    cm = np.asarray(cm)
    rows = [{"true": labels[i], "predicted": labels[j], "count": int(cm[i, j])}
            for i in range(len(labels)) for j in range(len(labels))]
    base = alt.Chart(alt.Data(values=rows), title=title).encode(
        x=alt.X("predicted:N", sort=list(labels)), y=alt.Y("true:N", sort=list(labels)))
    rect = base.mark_rect().encode(color=alt.Color("count:Q", scale=alt.Scale(scheme="blues")))
    text = base.mark_text(fontSize=9).encode(text="count:Q")
    return (rect + text).properties(width=width, height=width)


def bars(rows, *, x: str, y: str, color: str | None = None, title: str = "", width: int = 360,
         height: int = 200, y_title: str | None = None, x_type: str = "N"):
    """Bar chart of row dicts (grouped by ``color`` with an xOffset when given)."""
    enc = {"x": alt.X(f"{x}:{x_type}", title=x, sort=None), "y": alt.Y(f"{y}:Q", title=y_title or y),
           "tooltip": [f"{x}:{x_type}", f"{y}:Q"] + ([f"{color}:N"] if color else [])}
    if color:
        enc["color"] = alt.Color(f"{color}:N")
        enc["xOffset"] = alt.XOffset(f"{color}:N")
    return alt.Chart(alt.Data(values=_values(rows)), title=title).mark_bar().encode(**enc).properties(
        width=width, height=height)


def lines(rows, *, x: str, y: str, color: str | None = None, title: str = "", width: int = 360,
          height: int = 220, x_scale: str = "linear", y_title: str | None = None, x_title: str | None = None,
          points: bool = True, error: str | None = None):
    """Line chart of row dicts, one line per ``color``; ``error`` names a ± column drawn as error bars."""
    data = alt.Data(values=_values(rows))
    enc = {"x": alt.X(f"{x}:Q", scale=alt.Scale(type=x_scale), title=x_title or x),
           "y": alt.Y(f"{y}:Q", title=y_title or y, scale=alt.Scale(zero=False)),
           "tooltip": [f"{x}:Q", f"{y}:Q"] + ([f"{color}:N"] if color else [])}
    if color:
        enc["color"] = alt.Color(f"{color}:N")
    chart = alt.Chart(data, title=title).mark_line(point=points).encode(**enc)
    if error:
        band = alt.Chart(data).transform_calculate(lo=f"datum.{y} - datum.{error}", hi=f"datum.{y} + datum.{error}")
        chart = chart + band.mark_errorbar().encode(
            x=f"{x}:Q", y=alt.Y("lo:Q", title=y_title or y), y2="hi:Q",
            **({"color": alt.Color(f"{color}:N")} if color else {}))
    return chart.properties(width=width, height=height)


def histogram(values, *, title: str = "weights", bins: int = 80, rules=(), width: int = 360, height: int = 160,
              x_title: str = "value"):
    """Histogram of ``values`` (binned here with numpy) with vertical rules at ``rules`` (e.g. thresholds)."""
    v = np.asarray(values, dtype=np.float64).ravel()
    counts, edges = np.histogram(v, bins=bins)
    rows = [{"lo": float(a), "hi": float(b), "count": int(c)} for a, b, c in zip(edges[:-1], edges[1:], counts)]
    chart = alt.Chart(alt.Data(values=rows), title=title).mark_bar().encode(
        x=alt.X("lo:Q", title=x_title), x2="hi:Q", y=alt.Y("count:Q", scale=alt.Scale(type="symlog")),
        y2=alt.datum(0))  # with x2 set, a bar needs y2 too or Vega-Lite draws it as a thin horizontal mark
    if len(rules):
        rule_rows = [{"at": float(r)} for r in rules]
        chart = chart + alt.Chart(alt.Data(values=rule_rows)).mark_rule(color="crimson", strokeDash=[4, 3]).encode(
            x="at:Q")
    return chart.properties(width=width, height=height)


def history(rows, *, title: str = "training"):
    """Train loss and validation accuracy per epoch (rows from :meth:`History.rows`)."""
    long = [{"epoch": r["epoch"], "metric": m, "value": r[m]} for r in rows for m in ("train_acc", "val_acc")
            if r[m] == r[m]]
    return lines(long, x="epoch", y="value", color="metric", title=title, y_title="accuracy")
