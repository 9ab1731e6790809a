"""Pruning ratio explorer: a sparsity slider over one layer's magnitude pruning.

Per move: the weight histogram with the ± threshold drawn, the mask of the top-left 64 x 64
weights (each square one weight: kept dark, pruned light, readable at any sparsity), the bytes
of CSR / bitmask storage against dense with CSR's break-even density, and the accuracy when an
``evaluate`` is given.

Precomputed once: the stable order of |W| (so every sparsity's mask is a slice of it, equal to
:func:`thinlab.prune.magnitude_mask`'s, ties pruned lower flat index first), the histogram and the
bytes-vs-sparsity curves.

Taught in: 01_pruning
"""
from __future__ import annotations

import ipywidgets as widgets
import numpy as np

from thinlab._validate import check_sparsity
from thinlab.prune import csr_break_even_density, csr_bytes, masked_bytes, n_pruned
from thinlab.size import dense_bytes, format_factor

from . import plots
from .base import Explorer, Frame, check_weight, fmt_bytes


class PruneExplorer(Explorer):
    """See :func:`prune_explorer`."""

    name = "prune explorer"

    def __init__(self, W, *, evaluate=None, sparsity: float = 0.5, max_sparsity: float = 0.99,
                 step: float = 0.01, dtype="float32", baseline: float | None = None):
        W = check_weight(W)
        sparsity = check_sparsity(sparsity)
        max_sparsity = check_sparsity(max_sparsity, name="max_sparsity")
        if sparsity > max_sparsity:
            raise ValueError(f"sparsity={sparsity} is above max_sparsity={max_sparsity}; "
                             "raise max_sparsity or start lower")
        self.W, self.dtype = W, dtype
        absw = np.abs(W).ravel()  # (N,)
        self._order = np.argsort(absw, kind="stable")  # smallest first, lower index first on ties
        self._sorted = absw[self._order]
        self._zeros = int(W.size - np.count_nonzero(W))
        self.dense_bytes = dense_bytes(W.shape, dtype=dtype)
        self.break_even = csr_break_even_density(W.shape, value_dtype=dtype)
        self._hist = plots.histogram_rows(W)
        self._corner = plots.crop(W)
        grid = np.linspace(0.0, max_sparsity, 100)
        self._curves = [{"sparsity": s, "bytes": b, "format": name}
                        for s in grid.tolist() for name, b in
                        (("dense", self.dense_bytes),
                         ("CSR", csr_bytes(W.shape, self._nnz(s), value_dtype=dtype)),
                         ("bitmask", masked_bytes(W.shape, self._nnz(s), value_dtype=dtype)))]
        slider = widgets.FloatSlider(value=sparsity, min=0.0, max=max_sparsity, step=step, readout_format=".2f",
                                     description="sparsity", layout=widgets.Layout(width="420px"))
        template = plots.row_of(
            plots.histogram("hist", "threshold", title="weights, pruned between the red lines", rule_label="|w| cut",
                            max_count=max(r["count"] for r in self._hist)),
            plots.mask_image("mask", shape=self._corner.shape, title=["mask of the", "top-left weights"]),
            plots.curve("bytes", "at", x="sparsity", y="bytes", color="format", title="bytes vs sparsity",
                        y_title="bytes", marker_label="now"))
        super().__init__(slider=slider, template=template, evaluate=evaluate, baseline=baseline)

    def _nnz(self, sparsity: float) -> int:
        """Nonzeros left: existing zeros are the smallest magnitudes, so they go first."""
        return self.W.size - max(n_pruned(self.W.size, sparsity=sparsity), self._zeros)

    def mask(self, sparsity: float) -> np.ndarray:
        """Bool mask (True = kept) of ``W``'s shape; equals ``magnitude_mask(W, sparsity=sparsity)``."""
        keep = np.ones(self.W.size, dtype=bool)
        keep[self._order[: n_pruned(self.W.size, sparsity=sparsity)]] = False
        return keep.reshape(self.W.shape)  # (N,) → (Q, R)

    def compute(self, value) -> Frame:
        s = check_sparsity(value)
        n_drop = n_pruned(self.W.size, sparsity=s)
        threshold = float(self._sorted[n_drop - 1]) if n_drop else 0.0
        nnz = self._nnz(s)
        density = nnz / self.W.size
        csr = csr_bytes(self.W.shape, nnz, value_dtype=self.dtype)
        bitmask = masked_bytes(self.W.shape, nnz, value_dtype=self.dtype)
        mask = self.mask(s)
        state = {"sparsity": s, "n_pruned": n_drop, "nnz": nnz, "density": density, "threshold": threshold,
                 "dense_bytes": self.dense_bytes, "csr_bytes": csr, "masked_bytes": bitmask,
                 "csr_factor": format_factor(csr / self.dense_bytes),
                 "masked_factor": format_factor(bitmask / self.dense_bytes),
                 "break_even_density": self.break_even}
        verdict = "CSR saves bytes" if density <= self.break_even else "CSR costs more than dense"
        rows = [("sparsity", f"{s:.2f}: {n_drop:,} of {self.W.size:,} weights pruned, |w| ≤ {threshold:.4g}"),
                ("dense", fmt_bytes(self.dense_bytes)),
                ("CSR", f"{fmt_bytes(csr)}  → {state['csr_factor']}"),
                ("values + bitmask", f"{fmt_bytes(bitmask)}  → {state['masked_factor']}"),
                ("break-even", f"density {density:.3f} vs CSR break-even {self.break_even:.3f}: {verdict}")]
        datasets = {"hist": self._hist, "threshold": plots.rule_rows([-threshold, threshold] if n_drop else []),
                    "mask": plots.mask_rows(self._corner, plots.crop(mask)), "bytes": self._curves,
                    "at": plots.rule_rows([s])}
        W = self.W
        return Frame(key=round(s, 9), state=state, rows=rows, datasets=datasets,
                     title=f"sparsity {s:.2f}: CSR {state['csr_factor']}, bitmask {state['masked_factor']}",
                     weight=lambda: np.where(mask, W, W.dtype.type(0)))


def prune_explorer(W, *, evaluate=None, sparsity: float = 0.5, max_sparsity: float = 0.99, step: float = 0.01,
                   dtype="float32", baseline: float | None = None) -> PruneExplorer:
    """Slide the sparsity of one layer's magnitude pruning and watch its histogram, mask and bytes.

    Parameters
    ----------
    W : ndarray of float, shape (Q, R) = (in, out), finite
    evaluate : callable (Q, R) ndarray → float, optional
        Accuracy of the model with this layer's weight replaced by the pruned one; memoised per
        sparsity. It must not train.
    sparsity : float in [0, max_sparsity], the starting value
    max_sparsity, step : the slider's range and step
    dtype : storage dtype of the values (bytes are counted at it), default float32
    baseline : float, optional, the dense model's accuracy, printed beside the pruned one

    Returns
    -------
    PruneExplorer with ``.widget`` (display it, or the explorer itself), ``.slider``,
    ``.update(sparsity)``, ``.readout``, ``.chart``, ``.spec`` and ``.state`` (``sparsity``,
    ``n_pruned``, ``nnz``, ``threshold``, ``csr_bytes``, ``masked_bytes``, ``dense_bytes``,
    ``break_even_density``, factors, ``accuracy`` if evaluated).

    Taught in: 01_pruning
    """
    return PruneExplorer(W, evaluate=evaluate, sparsity=sparsity, max_sparsity=max_sparsity, step=step,
                         dtype=dtype, baseline=baseline)
