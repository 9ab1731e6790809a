"""The fused DeepThin product Y = X·W that never builds W, at a cost linear in what is stored.

Derivation. W[q, j] = flat[j·Q + q] and flat[t] = Σ_k X^f[t // n, k]·W^f[k, t mod n], so

    y_j = Σ_q x_q·flat[j·Q + q] = Σ_i Σ_k X^f[i, k] · c_k[i·n − j·Q],
    c_k[s] = Σ_b W^f[k, b]·x̃[b + s]       (x̃ = x, zero outside [0, Q)),

summed over the W_aux rows i that column j touches: i = i0_j + p with i0_j = (j·Q) // n,
p < P_j = ceil((o_j + Q) / n), o_j = (j·Q) mod n, i.e. shifts s = p·n − o_j ∈ (−n, Q).

Two stages, each linear in what is stored:

1. **Correlation** – the c_k[s]: r correlations of the input with W^f's rows. The c's depend on a
   column only through its offset o_j (n / gcd(n, Q) values), so at most Q + n shifts occur, and
   ``"fft"`` gets all of them from one rfft of the row and r inverse FFTs of length N ≈ Q + n:
   ≈ (r + 1)·N·log N per row, for every layout. ``"band"`` multiplies consecutive n-long blocks of
   the input (a reshape, no copy) by W^f cut into two banded halves, one GEMM per batch:
   2·(Q + n)·n·r·A/(n/g) per row – cheaper than FFTs for short rows and small batches (few
   Python calls). ``"toeplitz"`` computes every shift directly, ≈ (Q + n)·(n + L − 1)·r
   multiply-adds per row, within a few percent of the n·(Q + n)·r a direct correlation must do:
   the shifts in chunks of L = ``TOEPLITZ_CHUNK`` consecutive ones, chunk t reading the input rows
   [t·L, t·L + L + n − 1) – a strided *view* of the zero-padded input, no copy – times one fixed
   (r·L, L + n − 1) Toeplitz matrix of W^f, all chunks in one :func:`numpy.matmul` over the stack
   (the batch as the last axis), then one row gather into the classes' order. It wastes (L − 1)/n
   of its work where ``"band"`` wastes half, and at a batch of a few rows or more it is the
   fastest of the four (per-row FFTs do not share work across rows; a GEMM reuses W^f's Toeplitz
   block for every row and chunk). When n | Q there is one offset and the layer is two GEMMs
   (``"windows"``).
2. **Combination** – each column sums X^f[i0_j + p, k]·c_k[…] over its P_j·r terms: (R·P)·r ≈
   (m + R)·r multiply-adds, the stored X^f read once per batch. Columns with the same offset form
   a class; column j + n/g·l uses X^f rows shifted by l·Q/g, so class a's columns read a (T, r·P)
   block of X^f and the combination is one small GEMM per class (:func:`numpy.matmul` over a
   stack, the batch as the last axis) – or, when classes hold ≤ 4 columns, one einsum.

So per input row the work is ≈ (m + n)·r for the combination plus ≈ (r + 1)·(Q + n)·log(Q + n)
for the correlation, against Q·R for the dense product: at the paper's r = 1 and α = 1/100 a
2048 x 2048 layer does ≈ 42k multiply-adds to combine and two FFTs of 2250 points instead of 4.2M.
The correlation is the part that is not "one read per stored number", and it does not shrink with
the layer's size: Q + n shifts per row whatever α is, each a dot product of length n. Done directly
that is n·(Q + n)·r multiply-adds against the combination's ≈ (m + R)·r: for the TFKaldi layers
at α = 1/100 (n ≈ 100, m·r ≈ 41.5k) about five times the stored parameters, so even at a GEMM's
full speed the fused product costs several dense products over as many parameters
(``benchmarks/bench_deepthin.py`` measures that ratio, ``deepthin_cost_per_param``). FFTs count
fewer operations, ≈ (r + 1)·N·log N, but numpy's run at a fraction of a GEMM's speed; at a batch
of 32 on one core they are slower than ``"toeplitz"``. At the largest rank (n ≈ √(Q·R),
r ≈ 10) the FFT needs ten inverse transforms. A dense product, by contrast, reuses every weight it reads for all rows of a batch,
so the fused product wins most at small batches and on layers too large for the caches.

Threads: the FFTs of a batch run on ``threads`` worker threads (scipy.fft ``workers``); the GEMMs
follow the BLAS library's own threading.

The shuffled variant has no fused path: its permutation scatters every segment, so no two
weights share a partial dot product; use ``X @ reconstruct(..., perm=perm)``.

NaN / inf: factors must be finite (a clear error names ``Xf`` or ``Wf``); a non-finite input
row gives a non-finite output row, as in ``X @ W`` (through the FFT it reaches every column).

Taught in: 03_deepthin
"""
from __future__ import annotations

import os

import numpy as np
import scipy.fft as sfft

from thinlab.deepthin import _plan
from thinlab.deepthin.relayout import _check_room, _checked_factors

ALGORITHMS = ("auto", "windows", "band", "fft", "toeplitz")
#: largest band matrix (floats) the "band" algorithm may precompute
BAND_LIMIT = 1 << 22
#: consecutive shifts per chunk of the "toeplitz" algorithm (one small GEMM per chunk): measured
#: fastest between 8 and 32 on the TFKaldi layers at batch 32; the work grows as (n + L − 1)/n
TOEPLITZ_CHUNK = 12
#: smallest batch whose FFTs are spread over several threads
THREADED_BATCH = 4


def cpu_threads() -> int:
    """CPUs this process may run on: its affinity mask, capped by a cgroup v2 CPU quota (as
    :func:`thinlab.train.available_cpus`, which kernels cannot import: it lives beside torch).

    Taught in: 03_deepthin
    """
    n = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    try:
        with open("/sys/fs/cgroup/cpu.max") as f:
            quota, period = f.read().split()[:2]
        if quota != "max":
            n = min(n, max(1, int(float(quota) / float(period))))
    except (OSError, ValueError):
        pass
    return max(1, n)


class FusedDeepThin:
    """Precomputed plan for ``Y = X @ reconstruct(Xf, Wf, Q=Q, R=R)`` without building W.

    Parameters
    ----------
    Xf : array (m, r)
    Wf : array (r, n)
    Q, R : int
        Shape of W (needs m·n ≥ Q·R).
    algorithm : {"auto", "windows", "band", "fft", "toeplitz"}
        How the segment dot products c_k[s] are computed – a strategy of this kernel, not a
        compression method: each gives the same Y (see the module docstring):
        ``"fft"`` one FFT correlation per row; ``"band"`` one GEMM of the input blocks against
        W^f's two banded halves; ``"toeplitz"`` every shift directly, one small GEMM per chunk of
        L consecutive shifts on a view of the input; ``"windows"`` one small GEMM per (class,
        segment) on a view of the input – for few classes, and for n | Q the whole layer is two
        GEMMs. ``"auto"`` picks, for each batch size, the cheapest by a small cost model
        (:meth:`cost_ns`).
    threads : int or None
        Worker threads for the FFTs of a batch (None: every CPU this process may use).

    Attributes
    ----------
    algorithm_ : str
        The correlation algorithm used for a single input row (:meth:`algorithm_at` gives it for any
        batch).
    contract_ : str
        The combination: ``"matmul"`` (a GEMM per class), ``"einsum"`` (≤ 4 columns per class)
        or ``"gemm2"`` (n | Q: two GEMMs).
    n_classes_ : int
        A, number of distinct alignment offsets among the R columns (≤ n / gcd(n, Q)).
    rows_per_column_ : int
        P, most W_aux rows one column spans.
    G_ : ndarray
        X^f re-indexed per class (see :func:`thinlab.deepthin._plan.gather_xf`).

    Calling ``plan(X)`` with X (B, Q) returns Y (B, R); with x (Q,) returns y (R,); float32. The
    ``"matmul"`` combination returns Y in Fortran order (its rows are the batch's last axis); a
    following FusedDeepThin reads it without a copy. The plan snapshots the factors: build a new
    one after changing them. Everything that depends only on the factors – X^f re-indexed, W^f's
    spectra, band and Toeplitz blocks, the index arrays – is computed once, here or on first use,
    so a call does only the work that depends on X: build the plan once per layer and reuse it
    (as :func:`thinlab.deploy` and the benchmarks do).

    Taught in: 03_deepthin
    """

    def __init__(self, Xf, Wf, *, Q: int, R: int, algorithm: str = "auto", threads: int | None = None):
        self.Xf, self.Wf, self.Q, self.R = _checked_factors(Xf, Wf, Q, R)
        if algorithm not in ALGORITHMS:
            raise ValueError(f"algorithm={algorithm!r} is not a fused-product algorithm; use one of {ALGORITHMS}")
        if threads is not None and (isinstance(threads, bool) or not isinstance(threads, (int, np.integer))
                                    or threads < 1):
            raise ValueError(f"threads={threads!r} must be None (every CPU) or a whole number ≥ 1")
        self.algorithm, self.threads = algorithm, threads
        self._chosen: dict[int, str] = {}
        (m, r), n = self.Xf.shape, self.Wf.shape[1]
        _check_room(m, n, self.Q, self.R)
        period = n // int(np.gcd(n, self.Q))
        # few columns per class: one einsum along the classes (offset order, the FFT buffer's);
        # many: a GEMM per class, classes numbered by first column so the stacked results are Y's rows
        self.contract_ = "einsum" if -(-self.R // period) <= 4 else "matmul"
        plan = _plan.column_classes(self.Q, self.R, n, order="offset" if self.contract_ == "einsum" else "column")
        A, P, T = len(plan["offsets"]), plan["P"], plan["T"]
        self.n_classes_, self.rows_per_column_, self.offsets_ = A, P, plan["offsets"]
        self._sizes = dict(Q=self.Q, n=n, r=r, A=A, P=P, N=_plan.next_fast_len(max(self.Q + n - 1, P * n)))
        self.aligned_ = self.Q % n == 0                              # n | Q: one class, offset 0
        if self.aligned_ and algorithm in ("auto", "windows"):          # column j = W_aux rows j·P … j·P + P − 1
            self.contract_, self.out_index_, self.algorithm_ = "gemm2", None, "windows"
            G = self.Xf[: self.R * P].reshape(self.R, P * r)         # (R·P, r) → (R, P·r)
            self.G_ = np.ascontiguousarray(G.T)                      # (P·r, R)
            return
        self.fft_ = _plan.fft_plan(self.Wf, plan, self.Q)
        self._band = None
        self._toeplitz = None
        # (A, T, r·P) for the GEMMs, (T, r, P, A) for the einsum
        self.G_ = _plan.gather_xf(self.Xf, plan, classes_last=self.contract_ == "einsum")
        out_index = plan["slot"] * A + plan["cls"]                   # row of Y^T (matmul) / column of Y (einsum)
        self.out_index_ = None if np.array_equal(out_index, np.arange(self.R)) else out_index
        self.algorithm_ = self.algorithm_at(1)

    # ------------------------------------------------------------------ choosing an algorithm

    def cost_ns(self, batch: int = 1) -> dict:
        """Estimated ns of each correlation algorithm for ``batch`` rows (``inf``: band matrix too large).

        Taught in: 03_deepthin
        """
        cost = {k: _plan.estimate_ns(k, B=batch, **self._sizes) for k in ("windows", "band", "fft")}
        s = self._sizes
        if 2 * s["A"] * s["r"] * s["n"] > BAND_LIMIT:
            cost["band"] = float("inf")
        cost["toeplitz"] = toeplitz_ns(B=batch, **s)
        return cost

    def algorithm_at(self, batch: int) -> str:
        """The correlation algorithm used for a batch of ``batch`` rows.

        Taught in: 03_deepthin
        """
        if self.contract_ == "gemm2":
            return "windows"
        if self.algorithm != "auto":
            return self.algorithm
        if batch not in self._chosen:                                # the cost model, once per batch size
            cost = self.cost_ns(batch)
            self._chosen[batch] = min(cost, key=cost.get)
        return self._chosen[batch]

    @property
    def band_(self) -> np.ndarray:
        """W^f's two banded halves (2·A·r, n), built on first use (:func:`_plan.band_blocks`).

        Taught in: 03_deepthin
        """
        if self._band is None:
            self._band = _plan.band_blocks(self.Wf, self.offsets_)
        return self._band

    @property
    def toeplitz_(self) -> dict:
        """The ``"toeplitz"`` algorithm's plan, built on first use: ``T`` (r·L, L + n − 1) with
        T[(k, l), v] = W^f[k, v − l] (0 where v − l is outside [0, n)), ``rows`` of the zero-padded
        input, ``chunks`` and ``index`` (A·r·P,): the row of the (chunks·r·L, B) result holding
        c_k[p·n − o_a] for class a, rank k, segment p (the classes' order of :attr:`G_`).

        Taught in: 03_deepthin
        """
        if self._toeplitz is None:
            (r, n), P, L = self.Wf.shape, self.rows_per_column_, TOEPLITZ_CHUNK
            K = L + n - 1
            u = np.arange(K)[None, :] - np.arange(L)[:, None]                # (L, K) tap of W^f under v
            live = (u >= 0) & (u < n)
            T = np.where(live, self.Wf[:, np.clip(u, 0, n - 1)], 0).astype(np.float32)   # (r, L, K)
            # x̃ sits at rows n − 1 … n − 2 + Q, so c_k[s] is result row s + n − 1 = p·n + (n − 1 − o_a)
            shift = (n - 1 - self.offsets_)[:, None] + n * np.arange(P)[None, :]   # (A, P)
            chunks = -(-max(P * n, self.Q + n - 1) // L)
            index = ((shift // L)[:, None, :] * (r * L) + L * np.arange(r)[None, :, None]
                     + (shift % L)[:, None, :])                               # (A, r, P): chunk, rank, place
            self._toeplitz = dict(T=np.ascontiguousarray(T.reshape(r * L, K)), L=L, K=K, chunks=chunks,
                                  rows=max(chunks * L + n - 1, self.Q + n - 1), index=index.reshape(-1))
        return self._toeplitz

    # ------------------------------------------------------------------ the correlation, four ways

    def _workers(self, B: int) -> int:
        return 1 if B < THREADED_BATCH else min(B, self.threads or cpu_threads())

    def _fft_rows_last(self, XT: np.ndarray) -> np.ndarray:
        """c values by FFT, the batch as the last axis: (A, r·P, B), for the per-class GEMMs."""
        f, B, r = self.fft_, XT.shape[1], self.Wf.shape[0]
        A, P, w = self.n_classes_, self.rows_per_column_, self._workers(XT.shape[1])
        spec = sfft.rfft(XT, n=f["N"], axis=0, workers=w)            # (N//2 + 1, B)
        if r == 1:
            spec *= f["spectra"]                                     # (N//2 + 1, 1) broadcast
            buf = sfft.irfft(spec, n=f["N"], axis=0, workers=w)      # (N, B): c[s] at row s + n − g
            return buf[f["rows"].T]                                  # (A, P) rows → (A, P, B)
        spec = spec * f["spectra"].T[:, :, None]                     # (r, N//2 + 1, B)
        buf = sfft.irfft(spec, n=f["N"], axis=1, workers=w)          # (r, N, B): c_k[s] at [k, s + n − g]
        C = buf[:, f["rows"].T]                                      # (r, A, P, B)
        return np.ascontiguousarray(C.transpose(1, 0, 2, 3)).reshape(A, r * P, B)   # (A, r, P, B) → (A, r·P, B)

    def _fft_classes_last(self, X: np.ndarray) -> np.ndarray:
        """c values by FFT, the classes as the last axis: (B, r, P, A), for the einsum."""
        f, B, (r, n) = self.fft_, X.shape[0], self.Wf.shape
        A, P, w = self.n_classes_, self.rows_per_column_, self._workers(X.shape[0])
        spec = sfft.rfft(X, n=f["N"], axis=1, workers=w)             # (B, N//2 + 1)
        spec = spec[:, None, :] * f["spectra"].T                     # (B, r, N//2 + 1)
        buf = sfft.irfft(spec, n=f["N"], axis=2, workers=w)          # (B, r, N)
        if f["view"]:                                                # class a at index p·n + a·g
            return buf[:, :, : P * n].reshape(B, r, P, A, f["g"])[..., 0]   # (B, r, P·n) → (B, r, P, A)
        return buf[:, :, f["rows"]]                                  # (B, r, P, A)

    def _blocks(self, XT: np.ndarray) -> np.ndarray:
        """x̃ in n-long blocks, block 0 all zeros: (n, (P + 1)·B), column (p, b) = x̃[(p − 1)·n + v]."""
        B, n, P = XT.shape[1], self.Wf.shape[1], self.rows_per_column_
        K, rest = divmod(self.Q, n)                                  # whole blocks of x, then a partial one
        xb = np.zeros((n, P + 1, B), dtype=np.float32)
        xb[:, 1:K + 1] = XT[: K * n].reshape(K, n, B).transpose(1, 0, 2)   # (K·n, B) → (K, n, B) → (n, K, B)
        if rest:
            xb[:rest, K + 1] = XT[K * n:]
        return xb.reshape(n, (P + 1) * B)                            # (n, P + 1, B) → (n, (P + 1)·B)

    def _band_values(self, XT: np.ndarray) -> np.ndarray:
        """c values by one GEMM against W^f's banded halves: (A, r·P, B)."""
        B, r, A, P = XT.shape[1], self.Wf.shape[0], self.n_classes_, self.rows_per_column_
        Z = (self.band_ @ self._blocks(XT)).reshape(2, A * r, P + 1, B)   # (2·A·r, (P+1)·B) → halves
        C = Z[0, :, :P] + Z[1, :, 1:]                                # previous block + current block: (A·r, P, B)
        return C.reshape(A, r * P, B)                                # (A, r, P, B) → (A, r·P, B)

    def _toeplitz_values(self, XT: np.ndarray) -> np.ndarray:
        """c values by one small GEMM per chunk of L shifts on a view of the padded input: (A, r·P, B)."""
        tp, B, (r, n) = self.toeplitz_, XT.shape[1], self.Wf.shape
        L, K, chunks = tp["L"], tp["K"], tp["chunks"]
        xp = np.empty((tp["rows"], B), dtype=np.float32)                   # x̃ with n − 1 zero rows in front
        xp[: n - 1] = 0
        xp[n - 1:n - 1 + self.Q] = XT
        xp[n - 1 + self.Q:] = 0
        s0, s1 = xp.strides
        win = np.ndarray((chunks, K, B), np.float32, xp, 0, (L * s0, s0, s1))   # chunk t: rows t·L … t·L + K − 1 (a view)
        c = np.matmul(tp["T"], win)                                          # (chunks, r·L, B)
        return np.take(c.reshape(-1, B), tp["index"], axis=0).reshape(self.n_classes_, r * self.rows_per_column_, B)

    def _windows_values(self, XT: np.ndarray) -> np.ndarray:
        """c values by a small GEMM per (class, segment) on the input's windows: (A, r·P, B)."""
        B, (r, n), A, P = XT.shape[1], self.Wf.shape, self.n_classes_, self.rows_per_column_
        xp = np.zeros(((P + 1) * n, B), dtype=np.float32)
        xp[n:n + self.Q] = XT                                        # x̃ with n zeros in front
        start = (n - self.offsets_)[:, None, None] + n * np.arange(P)[:, None] + np.arange(n)   # (A, P, n)
        win = xp[start]                                              # (A, P, n, B) windows, copied
        C = np.matmul(self.Wf, win)                                  # (r, n) @ (A, P, n, B) → (A, P, r, B)
        return np.ascontiguousarray(C.transpose(0, 2, 1, 3)).reshape(A, r * P, B)   # → (A, r·P, B)

    # ------------------------------------------------------------------ the product

    def __call__(self, X) -> np.ndarray:
        """Y = X·W for X (B, Q) → (B, R), or x (Q,) → (R,); float32, a new array.

        Taught in: 03_deepthin
        """
        X, single = input_rows(X, self.Q, f"this layer's W of shape ({self.Q}, {self.R})")
        B, (r, n), P = X.shape[0], self.Wf.shape, self.rows_per_column_
        if self.contract_ == "gemm2":                                # n | Q: two GEMMs, ≈ the parameters' cost
            C = np.ascontiguousarray(X).reshape(B * P, n) @ self.Wf.T   # (B, Q) → (B·P, n); → (B·P, r)
            Y = C.reshape(B, P * r) @ self.G_                        # (B·P, r) → (B, P·r); @ (P·r, R) → (B, R)
            return Y[0] if single else Y
        algo = self.algorithm_at(B)
        if self.contract_ == "matmul":                               # batch last: Y^T = G @ C per class
            XT = X.T                                                 # (Q, B), a view
            C = (self._fft_rows_last(XT) if algo == "fft" else self._toeplitz_values(XT) if algo == "toeplitz"
                 else self._band_values(XT) if algo == "band" else self._windows_values(XT))   # (A, r·P, B)
            A, T = self.n_classes_, self.G_.shape[1]
            YT = np.empty((T * A, B), dtype=np.float32)              # row j = slot·A + class of column j
            np.matmul(self.G_, C, out=YT.reshape(T, A, B).transpose(1, 0, 2))   # (A, T, B) view of (T, A, B)
            return YT[: self.R, 0] if single else YT[: self.R].T     # (B, R), Fortran order
        if algo == "fft":                                            # einsum: Y[b, t, a] = Σ_kp C·G
            C = self._fft_classes_last(X)                            # (B, r, P, A)
        else:
            C = (self._toeplitz_values(X.T) if algo == "toeplitz" else
                 self._band_values(X.T) if algo == "band" else self._windows_values(X.T))   # (A, r·P, B)
            C = C.reshape(self.n_classes_, r, P, B).transpose(3, 1, 2, 0)   # → (B, r, P, A) view
        Y = np.einsum("bkpa,tkpa->bta", C, self.G_).reshape(B, -1)  # (B, T, A) → (B, T·A)
        Y = Y[:, self.out_index_] if self.out_index_ is not None else np.ascontiguousarray(Y)   # → (B, R)
        return Y[0] if single else Y


def input_rows(X, Q: int, what: str) -> tuple[np.ndarray, bool]:
    """``X`` as float32 rows (B, Q) and whether it was one row (Q,); a clear error naming ``what`` otherwise.

    Taught in: 03_deepthin
    """
    X = np.asarray(X)
    if X.ndim not in (1, 2) or X.shape[-1] != Q:
        raise ValueError(f"X must have shape (batch, {Q}) or ({Q},) for {what}, got {X.shape}")
    return X.reshape(-1, Q).astype(np.float32, copy=False), X.ndim == 1


def toeplitz_ns(*, Q: int, n: int, r: int, A: int, P: int, N: int, B: int = 1) -> float:
    """Rough one-thread time (ns) of the ``"toeplitz"`` correlation and read-out for B rows, on the
    scale of :func:`thinlab.deepthin._plan.estimate_ns` (fitted the same way): the chunks' GEMMs,
    a BLAS call per chunk, the padded copy of the input and the row gather.

    Taught in: 03_deepthin
    """
    L = TOEPLITZ_CHUNK
    chunks = -(-max(P * n, Q + n - 1) // L)
    return (0.012 * chunks * r * L * (L + n - 1) * B + 100.0 * chunks + 0.2 * B * (chunks * L + n)
            + 0.3 * B * A * r * P + 5.0 * A * r * P + 6000.0)


def fused_matmul(X, Xf, Wf, *, Q: int, R: int, algorithm: str = "auto") -> np.ndarray:
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
    return FusedDeepThin(Xf, Wf, Q=Q, R=R, algorithm=algorithm)(X)


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
