"""SVD rank explorer: a rank slider over one layer's truncated SVD.

Per move: the rank-k weight image beside the original (both the top-left 64 x 64 weights, same
colour scale), the singular-value spectrum with the rank marked, the relative Frobenius error
(the dropped tail ``sqrt(Σ_{i>k} s_i²) / ‖W‖_F``), the bytes of the factors A (Q, k) and
B (k, R), the factor, and the accuracy when an ``evaluate`` is given.

Precomputed once: one SVD ``W = U · diag(s) · Vᵀ``. The image of rank k needs only the first 64
rows of U and columns of Vᵀ; the full rank-k weight is built only for ``evaluate`` (memoised).

Taught in: 02_svd
"""
from __future__ import annotations

import math

import ipywidgets as widgets
import numpy as np

from thinlab._validate import check_int
from thinlab.lowrank import lowrank_bytes
from thinlab.size import dense_bytes, format_factor

from . import plots
from .base import Explorer, Frame, check_weight, fmt_bytes, one_blas_thread


class RankExplorer(Explorer):
    """See :func:`rank_explorer`."""

    name = "rank explorer"

    def __init__(self, W, *, evaluate=None, rank: int | None = None, dtype="float32",
                 baseline: float | None = None):
        W = check_weight(W)
        full = min(W.shape)
        rank = max(1, full // 8) if rank is None else rank
        self._check_rank = lambda k: check_int(k, name="rank", low=1, high=full,
                                               hint=f"W of shape {W.shape} has ranks 1 … min(Q, R) = {full}")
        rank = self._check_rank(rank)
        self.W, self.dtype = W, dtype
        with one_blas_thread():
            U, s, Vt = np.linalg.svd(W.astype(np.float64), full_matrices=False)  # (Q, K), (K,), (K, R)
        self._U, self.s, self._Vt = U, s, Vt
        s2 = s ** 2
        self._tail = np.append(np.cumsum(s2[::-1])[::-1][1:], 0.0)  # tail[k - 1] = Σ_{i>k} s_i², as ranks_sweep
        self._energy = np.cumsum(s2) / s2.sum() if s2.sum() else np.ones_like(s2)
        self._norm = math.sqrt(s2.sum())
        self.dense_bytes = dense_bytes(W.shape, dtype=dtype)
        self.break_even_rank = W.shape[0] * W.shape[1] / (W.shape[0] + W.shape[1])
        corner = plots.crop(W)
        self._corner_rows = plots.matrix_rows(corner)
        self._Uc, self._Vc = U[: corner.shape[0]], Vt[:, : corner.shape[1]]  # (c, K), (K, c)
        a = plots.weight_range(corner)
        self._spectrum = [{"i": i, "s": v} for i, v in enumerate(np.maximum(s, 1e-12 * (s[0] or 1)).tolist(), 1)]
        slider = widgets.IntSlider(value=rank, min=1, max=full, step=1, description="rank",
                                   layout=widgets.Layout(width="420px"))
        shown = [r["s"] for r in self._spectrum]
        template = plots.row_of(
            plots.image("original", shape=corner.shape, domain=[-a, a], title="W (top-left corner)", legend=False),
            plots.image("approx", shape=corner.shape, domain=[-a, a], title=["rank-k W", "(same corner)"]),
            plots.curve("spectrum", "rank", x="i", y="s", x_title="index i", y_title="singular value s_i",
                        y_range=(min(shown), max(shown)), title=["spectrum: keep", "left of the line"],
                        marker_label="rank k"))
        super().__init__(slider=slider, template=template, evaluate=evaluate, baseline=baseline)

    def reconstruct(self, rank: int) -> np.ndarray:
        """The rank-``rank`` weight ``U_k · diag(s_k) · V_kᵀ`` (Q, R) at W's dtype (= A·B of ``truncated_svd``)."""
        k = self._check_rank(rank)
        return ((self._U[:, :k] * self.s[:k]) @ self._Vt[:k]).astype(self.W.dtype)

    def compute(self, value) -> Frame:
        k = self._check_rank(value)
        error = math.sqrt(self._tail[k - 1])
        nbytes = lowrank_bytes(self.W.shape, k, dtype=self.dtype)
        Q, R = self.W.shape
        state = {"rank": k, "error": error, "relative_error": error / self._norm if self._norm else 0.0,
                 "energy": float(self._energy[k - 1]), "bytes": nbytes, "dense_bytes": self.dense_bytes,
                 "size_fraction": nbytes / self.dense_bytes, "factor": format_factor(nbytes / self.dense_bytes)}
        verdict = "smaller than dense" if nbytes < self.dense_bytes else "no smaller than dense"
        rows = [("rank", f"{k} of {min(Q, R)}: A ({Q}, {k}) · B ({k}, {R})"),
                ("error", f"‖W − A·B‖ / ‖W‖ = {state['relative_error']:.4f}  "
                          f"(energy kept {state['energy']:.1%})"),
                ("bytes", f"{fmt_bytes(nbytes)} vs dense {fmt_bytes(self.dense_bytes)}  → {state['factor']}"),
                ("break-even", f"rank < Q·R/(Q+R) = {self.break_even_rank:.1f}: now {verdict}")]
        approx = (self._Uc[:, :k] * self.s[:k]) @ self._Vc[:k]  # (c, k) · (k, c): the corner only
        datasets = {"original": self._corner_rows, "approx": plots.matrix_rows(approx),
                    "spectrum": self._spectrum, "rank": plots.rule_rows([k + 0.5])}
        return Frame(key=k, state=state, rows=rows, datasets=datasets,
                     title=f"rank {k}: relative error {state['relative_error']:.3f}, {state['factor']}",
                     weight=lambda: self.reconstruct(k))


def rank_explorer(W, *, evaluate=None, rank: int | None = None, dtype="float32",
                  baseline: float | None = None) -> RankExplorer:
    """Slide the rank of one layer's truncated SVD and watch the weights, the spectrum and the bytes.

    Parameters
    ----------
    W : ndarray of float, shape (Q, R) = (in, out), finite
    evaluate : callable (Q, R) ndarray → float, optional
        Accuracy of the model with this layer's weight replaced by the rank-k one; memoised per rank.
    rank : int in [1, min(Q, R)], the starting rank (default min(Q, R) // 8)
    dtype : storage dtype of the factors (bytes are counted at it), default float32
    baseline : float, optional, the dense model's accuracy, printed beside the rank-k one

    Returns
    -------
    RankExplorer with ``.widget``, ``.slider``, ``.update(rank)``, ``.readout``, ``.chart``, ``.spec``,
    ``.reconstruct(rank)``, ``.s`` (singular values) and ``.state`` (``rank``, ``error``,
    ``relative_error``, ``energy``, ``bytes``, ``size_fraction``, ``factor``, ``accuracy`` if evaluated).

    Taught in: 02_svd
    """
    return RankExplorer(W, evaluate=evaluate, rank=rank, dtype=dtype, baseline=baseline)
