"""Quantisation bits explorer: a bits slider and a method menu over one layer's quantisers.

Per move: the weight histogram with the quantisation levels drawn as rules, the MSE and SNR
of the quantised weights, their honest bytes (codes packed at their width + scales / codebook /
α / fraction bits + shape) and the factor against float32, and the accuracy when an
``evaluate`` is given.

Methods (``thinlab.quant``):

=============  =================================================  ============
``uniform``    symmetric per-tensor uniform, min/max range          2 … 8 bits
``omse``       symmetric uniform with the OMSE clipping range       2 … 8 bits
``kmeans``     k-means codebook of 2**bits shared values            1 … 8 bits
``fixed``      W/F two's-complement fixed point, best F             2 … 8 bits
``multibit``   greedy multi-bit binarisation Σ α_i·b_i, b_i = ±1    1 … 8 bits
=============  =================================================  ============

Each (method, bits) is quantised once and memoised (its numbers and levels; the dequantised
weight is handed to ``evaluate`` on the first visit and not kept).

Taught in: 04_quantization (also 05_fp16, 06_pipeline)
"""
from __future__ import annotations

import math

import ipywidgets as widgets
import numpy as np

from thinlab._validate import check_int
from thinlab.nn import methods
from thinlab.quant import (best_frac_bits, code_range, dequantize, fixed_point, fixed_point_bytes,
                           kmeans_bytes, kmeans_dequantize, kmeans_quantize, multibit_bytes, multibit_dequantize,
                           multibit_quantize, omse_clip, quantize_uniform, quantized_bytes)
from thinlab.size import dense_bytes, format_factor

from . import plots
from .base import Explorer, Frame, check_weight, fmt_bytes

_SHOWN = ("uniform_sym", "omse", "kmeans", "fixed", "multibit")   # the quantisers the menu offers
#: registered quantiser → (menu label, fewest bits it takes), from :mod:`thinlab.nn.methods`
METHODS = {n: (methods.get(n).label, methods.get(n).bits[0]) for n in _SHOWN}
MAX_BITS = 8


def _uniform(W, n_bits: int, clip=None) -> dict:
    q = quantize_uniform(W, n_bits=n_bits, symmetric=True, clip=clip)
    lo, hi = code_range(n_bits=n_bits, symmetric=True)
    scale = float(q.scale)
    detail = f"scale {scale:.4g}, codes {lo} … {hi}" + ("" if clip is None else f", clipped at ±{clip:.4g}")
    return {"deq": dequantize(q), "levels": np.arange(lo, hi + 1) * scale, "bytes": quantized_bytes(q),
            "detail": detail, "extra": {"scale": scale, **({} if clip is None else {"clip": float(clip)})}}


def _omse(W, n_bits: int) -> dict:
    return _uniform(W, n_bits, clip=omse_clip(W, n_bits=n_bits, symmetric=True))


def _kmeans(W, n_bits: int) -> dict:
    res = kmeans_quantize(W, n_clusters=2 ** n_bits)
    return {"deq": kmeans_dequantize(res), "levels": res.codebook.astype(np.float64), "bytes": kmeans_bytes(res),
            "detail": f"{len(res.codebook)} shared values, {res.n_iter} Lloyd iterations",
            "extra": {"codebook": res.codebook.tolist()}}


def _fixed(W, n_bits: int) -> dict:
    F = best_frac_bits(W, word_bits=n_bits)
    k = np.arange(-(2 ** (n_bits - 1)), 2 ** (n_bits - 1))
    return {"deq": fixed_point(W, word_bits=n_bits, frac_bits=F), "levels": np.ldexp(k.astype(np.float64), -F),
            "bytes": fixed_point_bytes(W.shape, word_bits=n_bits),
            "detail": f"W/F = {n_bits}/{F}: step 2^{-F} = {2.0 ** -F:.4g}, "
                      f"range [{-(2 ** (n_bits - 1)) * 2.0 ** -F:.4g}, {(2 ** (n_bits - 1) - 1) * 2.0 ** -F:.4g}]",
            "extra": {"frac_bits": F}}


def _multibit(W, n_bits: int) -> dict:
    mb = multibit_quantize(W, n_bits=n_bits)
    a = mb.alphas.astype(np.float64)
    signs = 1.0 - 2.0 * ((np.arange(2 ** n_bits)[:, None] >> np.arange(n_bits)[None, :]) & 1)  # (2**n, n) ±1
    alphas = ", ".join(f"{x:.3g}" for x in a[:4]) + (", …" if n_bits > 4 else "")
    return {"deq": multibit_dequantize(mb), "levels": np.unique(signs @ a), "bytes": multibit_bytes(mb),
            "detail": f"α = {alphas}", "extra": {"alphas": a.tolist()}}


_QUANTIZERS = {"uniform_sym": _uniform, "omse": _omse, "kmeans": _kmeans, "fixed": _fixed, "multibit": _multibit}


class BitsExplorer(Explorer):
    """See :func:`bits_explorer`."""

    name = "bits explorer"

    def __init__(self, W, *, method: str = "uniform", evaluate=None, n_bits: int = 4,
                 baseline: float | None = None):
        W = check_weight(W)
        method = methods.get(method, need="quantize").name   # a registered name or alias ("uniform")
        if method not in METHODS:
            raise ValueError(f"method={method!r}; the explorer shows {tuple(METHODS)}")
        self.max_bits = max(2, min(MAX_BITS, int(math.log2(W.size))))  # k-means needs 2**bits ≤ W.size
        n_bits = check_int(n_bits, name="n_bits", low=METHODS[method][1], high=self.max_bits,
                           hint=f"{method} takes {METHODS[method][1]} … {self.max_bits} bits here")
        self.W = W
        self._w64 = W.astype(np.float64)
        self._power = float(np.sum(self._w64 ** 2))
        self.dense_bytes = dense_bytes(W.shape, dtype="float32")
        self._results: dict = {}
        lo, hi = float(W.min()), float(W.max())
        pad = 0.02 * (hi - lo) or 1e-6
        self._view = (lo - pad, hi + pad)  # levels drawn only within the histogram's range
        self._hist = plots.histogram_rows(W)
        self.method = widgets.Dropdown(options=[(label, key) for key, (label, _) in METHODS.items()], value=method,
                                       description="method", layout=widgets.Layout(width="260px"))
        slider = widgets.IntSlider(value=n_bits, min=METHODS[method][1], max=self.max_bits, step=1,
                                   description="bits", layout=widgets.Layout(width="360px"))
        template = plots.row_of(plots.histogram("hist", "levels", title="weights and the quantisation levels",
                                                max_count=max(r["count"] for r in self._hist), width=560,
                                                height=180, rule_color="darkorange",
                                                rule_label="levels"))
        super().__init__(slider=slider, template=template, controls=[self.method], evaluate=evaluate,
                         baseline=baseline)

    def _on_control(self, change) -> None:
        """Method changed: move the slider's minimum to what the method allows, then redraw once."""
        self._hold = True
        try:
            self.slider.min = METHODS[self.method.value][1]  # clamps the value up if needed
        finally:
            self._hold = False
        super()._on_control(change)

    def quantize(self, n_bits: int, method: str | None = None) -> dict:
        """Quantise ``W`` (not memoised): ``deq`` (float32, W's shape), ``levels``, ``bytes``, ``detail``."""
        return _QUANTIZERS[self.method.value if method is None else method](self.W, n_bits)

    def compute(self, value) -> Frame:
        method = self.method.value
        b = check_int(value, name="n_bits", low=METHODS[method][1], high=self.max_bits,
                      hint=f"{method} takes {METHODS[method][1]} … {self.max_bits} bits here")
        key = (method, b)
        deq = None
        if key not in self._results:
            res = self.quantize(b, method)
            deq = res.pop("deq").astype(self.W.dtype, copy=False)
            err = float(np.sum((self._w64 - deq) ** 2))
            self._results[key] = {**res, "mse": err / self.W.size,
                                  "snr_db": 10 * math.log10(self._power / err) if err > 0 else math.inf}
        r = self._results[key]
        state = {"method": method, "n_bits": b, "n_levels": int(len(r["levels"])), "mse": r["mse"],
                 "snr_db": r["snr_db"], "bytes": r["bytes"], "dense_bytes": self.dense_bytes,
                 "size_fraction": r["bytes"] / self.dense_bytes,
                 "factor": format_factor(r["bytes"] / self.dense_bytes), **r["extra"]}
        snr = "∞" if math.isinf(r["snr_db"]) else f"{r['snr_db']:.1f}"
        rows = [("method", f"{METHODS[method][0]}, {b} bits: {r['detail']}"),
                ("levels", f"{state['n_levels']} distinct values"),
                ("error", f"MSE {r['mse']:.3g}, SNR {snr} dB"),
                ("bytes", f"{fmt_bytes(r['bytes'])} vs float32 {fmt_bytes(self.dense_bytes)}  → {state['factor']}")]
        lo, hi = self._view
        levels = r["levels"][(r["levels"] >= lo) & (r["levels"] <= hi)]
        return Frame(key=key, state=state, rows=rows,
                     datasets={"hist": self._hist, "levels": plots.rule_rows(levels)},
                     title=f"{METHODS[method][0]}, {b} bits: SNR {snr} dB, {state['factor']}",
                     weight=lambda: deq if deq is not None else
                     self.quantize(b, method)["deq"].astype(self.W.dtype, copy=False))


def bits_explorer(W, *, method: str = "uniform", evaluate=None, n_bits: int = 4,
                  baseline: float | None = None) -> BitsExplorer:
    """Slide the bits of one layer's quantisation (and pick the method) and watch levels, error and bytes.

    Parameters
    ----------
    W : ndarray of float, shape (Q, R) = (in, out), finite
    method : ``"uniform"``, ``"omse"``, ``"kmeans"``, ``"fixed"`` or ``"multibit"`` (also a menu)
    evaluate : callable (Q, R) ndarray → float, optional
        Accuracy with this layer's weight replaced by the dequantised one; memoised per
        (method, bits).
    n_bits : the starting bits (≥ 2 for uniform, omse and fixed; ≤ 8)
    baseline : float, optional, the float32 model's accuracy

    Returns
    -------
    BitsExplorer with ``.widget``, ``.slider``, ``.method`` (menu), ``.update(n_bits)``, ``.readout``,
    ``.chart``, ``.spec``, ``.quantize(n_bits, method)`` and ``.state`` (``method``, ``n_bits``,
    ``n_levels``, ``mse``, ``snr_db``, ``bytes``, ``size_fraction``, ``factor``, the method's
    ``scale`` / ``clip`` / ``codebook`` / ``frac_bits`` / ``alphas``, ``accuracy`` if evaluated).

    Taught in: 04_quantization
    """
    return BitsExplorer(W, method=method, evaluate=evaluate, n_bits=n_bits, baseline=baseline)
