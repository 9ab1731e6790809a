"""The fused DeepThin product Y = X·W that never builds W.

Derivation. W[q, j] = flat[j·Q + q] and flat[t] = Σ_k X^f[t // n, k]·W^f[k, t mod n], so

    y_j = Σ_q x_q·flat[j·Q + q] = Σ_i Σ_k X^f[i, k] · c_k[i·n − j·Q],
    c_k[s] = Σ_b W^f[k, b]·x̃[b + s]       (x̃ = x, zero outside [0, Q)),

summed over the W_aux rows i that column j touches: i = i0_j + p with i0_j = (j·Q) // n,
p < P_j = ceil((o_j + Q) / n), o_j = (j·Q) mod n, i.e. shifts s = p·n − o_j ∈ (−n, Q). The
zero padding clips the first segment (b < o_j falls before x) and the last (b + s ≥ Q).

Cost. The c values depend on the column only through o_j, which takes n / gcd(n, Q) values:
columns sharing it share all their c's (see :func:`~thinlab.deepthin.solver.deepthin_size`
for why). Per input row the work is
  * correlation: r·n multiply-adds for each of the ≈ (n/g)·(Q/n + 1) distinct shifts, or
    r FFTs of length N ≈ Q + n when nearly every shift occurs;
  * combination: one multiply-add per (column, segment, k) ≈ (m + R)·r ≈ the parameters.
So the layout decides the speed:
  * n | Q (g = n): the correlation is one (B·Q/n, n) @ (n, r) product and the layer is two
    GEMMs, about the cost of reading its parameters – but this is the repeating-block layout
    the LCM rule forbids (at n = Q it is plain rank-r factorisation);
  * LCM rule, rank 1, n ≈ 1/α: every shift occurs but each costs only n, so the correlation
    is ≈ n·(Q + n) per row – far below the dense Q·R, above the (m + n) parameters;
  * LCM rule at the largest rank (n ≈ √(Q·R)): every column has its own alignment, the r
    correlations cost ≈ r·N·log N per row by FFT – far more than the parameters – and FFTs run
    at a fraction of GEMM speed, so at batch 32 the layer is slower than the dense product.
The figures for a TFKaldi-sized network are in ``benchmarks/bench_deepthin.py``.

The shuffled variant has no fused path: its permutation scatters every segment, so no two
weights share a partial dot product; use ``X @ reconstruct(..., perm=perm)``.

Taught in: 03_deepthin
"""
from __future__ import annotations

import numpy as np

from thinlab.deepthin import _plan
from thinlab.deepthin.relayout import _check_room, _checked_factors

METHODS = ("auto", "windows", "band", "fft")
#: largest band matrix (floats) the "band" method may precompute
BAND_LIMIT = 1 << 22


class FusedDeepThin:
    """Precomputed plan for ``Y = X @ reconstruct(Xf, Wf, Q=Q, R=R)`` without building W.

    Parameters
    ----------
    Xf : array (m, r)
    Wf : array (r, n)
    Q, R : int
        Shape of W (needs m·n ≥ Q·R).
    method : {"auto", "windows", "band", "fft"}
        How the segment dot products c_k[s] are computed:
        ``"windows"`` copies each class's input window out of a strided (Toeplitz) view of x and
        multiplies by W^f – few alignment classes; for n | Q the windows are x itself and the
        layer is two GEMMs, about the cost of its parameters. ``"band"`` multiplies two-block
        input windows by a precomputed banded Toeplitz copy of W^f – many classes, small n.
        ``"fft"`` correlates with FFTs – many classes, large n. ``"auto"`` picks the cheapest by
        a small cost model (:attr:`cost_ns_`).

    Attributes
    ----------
    method_ : str
        The method in use.
    n_classes_ : int
        A, number of distinct alignment offsets among the R columns (≤ n / gcd(n, Q)).
    rows_per_column_ : int
        P, most W_aux rows one column spans.
    cost_ns_ : dict
        Estimated ns per input row of each method (``inf``: band matrix too large).
    G_ : ndarray
        X^f re-indexed per class (see :func:`thinlab.deepthin._plan.gather_xf`).

    Calling ``plan(X)`` with X (B, Q) returns Y (B, R); with x (Q,) returns y (R,); float32.
    The plan snapshots the factors (``G_``, band, spectra): build a new one after changing them.

    Taught in: 03_deepthin
    """

    def __init__(self, Xf, Wf, *, Q: int, R: int, method: str = "auto"):
        self.Xf, self.Wf, self.Q, self.R = _checked_factors(Xf, Wf, Q, R)
        if method not in METHODS:
            raise ValueError(f"method={method!r} is not a fused method; use one of {METHODS}")
        self.method = method
        (m, r), n = self.Xf.shape, self.Wf.shape[1]
        _check_room(m, n, self.Q, self.R)
        plan = _plan.column_classes(self.Q, self.R, n)
        A, P, T = len(plan["offsets"]), plan["P"], plan["T"]
        self.n_classes_, self.rows_per_column_, self.offsets_ = A, P, plan["offsets"]
        self.aligned_ = self.Q % n == 0                              # n | Q: one class, offset 0
        N = _plan.next_fast_len(self.Q + n - 1)
        self.cost_ns_ = {k: _plan.estimate_ns(k, Q=self.Q, n=n, r=r, A=A, P=P, N=N) for k in METHODS[1:]}
        if self.aligned_:                                            # two small GEMMs, see __call__
            self.cost_ns_["windows"] = 0.05 * (self.Q * r + P * r * self.R)
        if 2 * n * A * r > BAND_LIMIT:
            self.cost_ns_["band"] = float("inf")
        self.method_ = min(self.cost_ns_, key=self.cost_ns_.get) if method == "auto" else method
        if self.method_ == "windows" and self.aligned_:              # column j = W_aux rows j·P … j·P + P − 1
            self.contract_, self.out_index_ = "gemm2", None
            G = self.Xf[: self.R * P].reshape(self.R, P * r)         # (R·P, r) → (R, P·r)
            self.G_ = np.ascontiguousarray(G.T)                      # (P·r, R)
            return
        if self.method_ == "fft":
            self.fft_ = _plan.fft_plan(self.Wf, plan, self.Q)
        elif self.method_ == "band":
            self.band_ = _plan.band_matrix(self.Wf, self.offsets_)  # (A·r, 2n)
        # combine: few columns per class → one einsum along the classes; many → a GEMM per class
        self.contract_ = "einsum" if T <= 4 else "matmul"
        self.G_ = _plan.gather_xf(self.Xf, plan, classes_last=self.contract_ == "einsum")
        out_index = plan["slot"] * A + plan["cls"] if self.contract_ == "einsum" else plan["cls"] * T + plan["slot"]
        self.out_index_ = None if np.array_equal(out_index, np.arange(A * T)) else out_index

    def _padded(self, X: np.ndarray) -> np.ndarray:
        """x̃ with n zeros before and zeros after: (B, (P + 1)·n), x at [n, n + Q)."""
        n, P = self.Wf.shape[1], self.rows_per_column_
        xp = np.zeros((X.shape[0], (P + 1) * n), dtype=np.float32)
        xp[:, n:n + self.Q] = X
        return xp

    def _fft_values(self, X: np.ndarray) -> np.ndarray:
        """c_k[p·n − o_a] for every (k, p, class a) by FFT correlation: (B, r, P, A)."""
        f, (B, (r, n)) = self.fft_, (X.shape[0], self.Wf.shape)
        N, L, g, P, A = f["N"], f["L"], f["g"], self.rows_per_column_, self.n_classes_
        buf = np.empty((B, r, L), dtype=np.float32)                  # c_k[s] at index s + n − 1
        buf[:, :, N:] = 0
        spec = np.fft.rfft(X, n=N)                                   # (B, N//2 + 1)
        np.fft.irfft(spec[:, None, :] * f["spectra"], n=N, out=buf[:, :, :N])
        if f["index"] is not None:                                   # some offsets never occur: gather
            return buf.reshape(B, r * L)[:, f["index"]]              # (B, r·L) → (B, r, P, A)
        view = buf[:, :, g - 1:g - 1 + P * n].reshape(B, r, P, A, g)     # (B, r, P·n) → (B, r, P, A, g)
        return view[..., 0]                                          # (B, r, P, A)

    def _gemm_values(self, X: np.ndarray) -> np.ndarray:
        """c_k[p·n − o_a] for every (class a, k, p) by windows or band GEMMs: (A, r·P, B)."""
        B, (r, n), P, A = X.shape[0], self.Wf.shape, self.rows_per_column_, self.n_classes_
        xp = self._padded(X)
        if self.method_ == "band":                                   # two-block windows, step n: (B, P, 2n)
            win = _window_view(xp, width=2 * n, step=n, count=P)
            Z = np.ascontiguousarray(win.transpose(1, 0, 2)).reshape(P * B, 2 * n)   # (P, B, 2n) → (P·B, 2n)
            return (self.band_ @ Z.T).reshape(A, r * P, B)           # (A·r, P·B) → (A, r·P, B)
        win = _window_view(xp, width=P * n, step=1, count=xp.shape[1] - P * n + 1)[:, n - self.offsets_]  # (B, A, P·n)
        C = win.reshape(B * A * P, n) @ self.Wf.T                    # (B, A, P·n) → (B·A·P, n); → (B·A·P, r)
        C = C.reshape(B, A, P, r).transpose(1, 3, 2, 0)              # (B, A, P, r) → (A, r, P, B)
        return np.ascontiguousarray(C).reshape(A, r * P, B)          # (A, r, P, B) → (A, r·P, B)

    def __call__(self, X) -> np.ndarray:
        """Y = X·W for X (B, Q) → (B, R), or x (Q,) → (R,); float32, a new array.

        Taught in: 03_deepthin
        """
        X = np.asarray(X)
        single = X.ndim == 1
        if X.ndim not in (1, 2) or X.shape[-1] != self.Q:
            raise ValueError(f"X must have shape (batch, {self.Q}) or ({self.Q},) for this layer's "
                             f"W of shape ({self.Q}, {self.R}), got {X.shape}")
        X = np.ascontiguousarray(X.reshape(-1, self.Q), dtype=np.float32)   # (Q,) → (1, Q)
        B, (r, n) = X.shape[0], self.Wf.shape
        P, A = self.rows_per_column_, self.n_classes_
        if self.contract_ == "gemm2":                                # n | Q: two GEMMs, ≈ the parameters' cost
            C = X.reshape(B * P, n) @ self.Wf.T                      # (B, Q) → (B·P, n); → (B·P, r)
            Y = C.reshape(B, P * r) @ self.G_                        # (B·P, r) → (B, P·r); @ (P·r, R) → (B, R)
            return Y[0] if single else Y
        if self.method_ == "fft":
            C = self._fft_values(X)                                  # (B, r, P, A)
            if self.contract_ == "matmul":
                C = np.ascontiguousarray(C.transpose(3, 1, 2, 0)).reshape(A, r * P, B)   # (A, r, P, B) → (A, r·P, B)
        else:
            C = self._gemm_values(X)                                 # (A, r·P, B)
            if self.contract_ == "einsum":
                C = C.reshape(A, r, P, B).transpose(3, 1, 2, 0)      # (A, r·P, B) → (A, r, P, B) → (B, r, P, A) view
        if self.contract_ == "einsum":                               # Y[b, t, a] = Σ_kp C[b, k, p, a]·G[t, k, p, a]
            Y = np.einsum("bkpa,tkpa->bta", C, self.G_).reshape(B, -1)   # (B, T, A) → (B, T·A)
        else:                                                        # Y[a, t, b] = Σ_kp G[a, t, kp]·C[a, kp, b]
            Y = np.matmul(self.G_, C).reshape(-1, B).T               # (A, T, B) → (A·T, B) → (B, A·T)
        Y = Y[:, self.out_index_] if self.out_index_ is not None else np.ascontiguousarray(Y)   # → (B, R)
        return Y[0] if single else Y


def _window_view(xp: np.ndarray, *, width: int, step: int, count: int) -> np.ndarray:
    """Read-only sliding-window (Toeplitz) view of each row of xp: (B, count, width), window i
    starting at i·step. Same as ``sliding_window_view(xp, width, axis=1)[:, ::step]`` but built
    straight from strides (≈1 µs instead of ≈13 µs, which matters at batch 1)."""
    B, L = xp.shape
    item = xp.itemsize
    view = np.ndarray((B, count, width), dtype=xp.dtype, buffer=xp, strides=(L * item, step * item, item))
    view.flags.writeable = False
    return view


def fused_matmul(X, Xf, Wf, *, Q: int, R: int, method: str = "auto") -> np.ndarray:
    """``X @ reconstruct(Xf, Wf, Q=Q, R=R)`` without building W (one-off; keep a
    :class:`FusedDeepThin` to reuse its plan).

    Parameters
    ----------
    X : array (B, Q) or (Q,)
    Xf : array (m, r)
    Wf : array (r, n)

    Returns
    -------
    Y : ndarray (B, R) or (R,) float32

    Taught in: 03_deepthin
    """
    return FusedDeepThin(Xf, Wf, Q=Q, R=R, method=method)(X)


def fused_matmul_reference(X, Xf, Wf, *, Q: int, R: int) -> np.ndarray:
    """Loop reference for the fused product: walk each column's W_aux row segments.

    Taught in: 03_deepthin
    """
    X = np.atleast_2d(np.asarray(X, dtype=np.float64))
    Xf, Wf = np.asarray(Xf, dtype=np.float64), np.asarray(Wf, dtype=np.float64)
    n = Wf.shape[1]
    Y = np.zeros((X.shape[0], R))
    for j in range(R):
        for i in range((j * Q) // n, (j * Q + Q - 1) // n + 1):     # W_aux rows column j touches
            lo, hi = max(i * n, j * Q), min(i * n + n, j * Q + Q)   # flat span of this segment
            seg_w = Xf[i] @ Wf[:, lo - i * n:hi - i * n]            # W_aux[i, segment]
            Y[:, j] += X[:, lo - j * Q:hi - j * Q] @ seg_w
    return Y.astype(np.float32)
