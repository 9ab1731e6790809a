"""A whole fused DeepThin network's forward pass for a block of input rows, as one compiled call.

:class:`thinlab.deepthin.FusedNetwork` runs its layers here when each uses the ``"toeplitz"``
correlation with per-class GEMMs (the cost model's choice for batches of a few rows or more). The
arithmetic is :class:`~thinlab.deepthin.FusedDeepThin`'s, product for product (float32 BLAS
``sgemm``, called directly); what goes is the glue between the products, which cost the per-layer
numpy path about a third of its time on the TFKaldi net at batch 32:

* no interpreter between layers or products: one call runs every layer;
* each layer's combination writes its output rows, through ``sgemm``'s output stride, straight
  into the next layer's zero-padded input (rows n − 1 … n − 2 + Q; the zero rows are never
  written but with zeros), so there is no padded copy, no transpose and no gather of the result;
  the bias and the ReLU follow in one pass over those rows;
* the correlation's chunks read that padded input in place: one ``(r·L, K) @ (K, B)`` product per
  chunk of L shifts, K = L + n − 1;
* at rank 1 a class's values c[p·n − o_a] are every n-th row of the correlation, read in place
  with a row stride of n rows (no gather); at rank r > 1 they are gathered first.

The call holds no interpreter lock (numba ``nogil``): :class:`~thinlab.deepthin.FusedNetwork`
can give worker threads their own blocks of rows (one hand-off per forward pass). There is no
parallel loop inside: measured on the 2-core machine this course is built on, numba's OpenMP
workers and numpy's OpenBLAS workers both spin while they wait, and right after a multi-threaded
``X @ W`` a ``prange`` version of this kernel ran 8-15x slower than alone.

BLAS: scipy's ``cython_blas.sgemm`` (Fortran ``sgemm``; row-major C = A·B is the column-major
Cᵀ = Bᵀ·Aᵀ), its address passed in at call time so that the machine code can be cached on disk
(numba ``cache=True``; the first call in a fresh environment compiles, a few seconds). numba comes
with librosa; where it or scipy's BLAS cannot be loaded the per-layer numpy path is used
(:func:`available`).

Taught in: 03_deepthin
"""
from __future__ import annotations

import numpy as np

_KERNEL: list = []          # [(compiled function, sgemm address)] once built, [None] if unavailable

#: columns of the per-layer table passed to the kernel (one row per layer)
META = ("Q", "R", "n", "L", "chunks", "live", "rL", "K", "A", "Tc", "rP", "t_off", "g_off", "i_off", "b_off",
        "relu", "x_off", "rows", "r")


def _build():
    if not _KERNEL:
        try:
            from thinlab.deepthin import _kernel
            _KERNEL.append((_kernel.network_block, _kernel.SGEMM))
        except (ImportError, ValueError, AttributeError):                 # the numpy path stands in
            _KERNEL.append(None)
    return _KERNEL[0]


def available() -> bool:
    """Whether the compiled path can run here (numba and scipy's BLAS load).

    Taught in: 03_deepthin
    """
    return _build() is not None


def pack(plans, biases, relu) -> dict:
    """The kernel's inputs for a chain of :class:`~thinlab.deepthin.FusedDeepThin` plans (each with
    the per-class GEMM combination): one int64 table (a row per layer, columns :data:`META`) and
    the plans' Toeplitz blocks, X^f re-indexed per class, read-out indices and biases, each
    concatenated into one flat array. ``x_off`` and ``rows`` place each layer's zero-padded input
    in the work array (in units of batch rows; the rows cover the chunks' windows and the
    previous layer's T·A written rows); ``work_rows`` is their total, ``scratch_rows`` the
    chunked correlation and a class's gathered values for the largest layer, ``out_rows`` the
    last layer's T·A rows of Yᵀ.

    Taught in: 03_deepthin
    """
    meta, Ts, Gs, Is, bs = [], [], [], [], []
    t_off = g_off = i_off = b_off = x_off = scratch = 0
    prev = None
    for p, b, act in zip(plans, biases, relu):
        tp = p.toeplitz_
        rL, K = tp["T"].shape
        A, Tc, rP = p.G_.shape
        n, L, chunks = p.Wf.shape[1], tp["L"], tp["chunks"]
        live = min(chunks, (p.Q + n - 2) // L + 1)                        # chunks holding a shift s < Q
        rows = max(chunks * L + n - 1, p.Q + n - 1, n - 1 + (prev.G_.shape[0] * prev.G_.shape[1] if prev else 0))
        meta.append([p.Q, p.R, n, L, chunks, live, rL, K, A, Tc, rP, t_off, g_off, i_off,
                     -1 if b is None else b_off, int(bool(act)), x_off, rows, p.Wf.shape[0]])
        Ts.append(tp["T"].ravel())
        Gs.append(p.G_.ravel())
        Is.append(tp["index"].astype(np.int64))
        t_off, g_off, i_off = t_off + rL * K, g_off + A * Tc * rP, i_off + len(tp["index"])
        if b is not None:
            bs.append(np.asarray(b, dtype=np.float32).ravel())
            b_off += p.R
        x_off += rows
        scratch = max(scratch, chunks * rL + rP)
        prev = p
    f32 = np.float32
    return dict(meta=np.asarray(meta, dtype=np.int64), T=np.concatenate(Ts).astype(f32),
                G=np.concatenate(Gs).astype(f32), index=np.concatenate(Is),
                bias=np.concatenate(bs).astype(f32) if bs else np.zeros(1, f32),
                work_rows=x_off, scratch_rows=scratch, out_rows=prev.G_.shape[0] * prev.G_.shape[1])


def run_block(X: np.ndarray, b0: int, b1: int, packed: dict, work: np.ndarray, YT: np.ndarray) -> None:
    """Columns b0 … b1 − 1 of Yᵀ (``out_rows`` × B; the rows from R on come out 0) for input rows
    b0 … b1 − 1 of X (float32, C order). ``work`` holds (work_rows + scratch_rows)·(b1 − b0) floats
    and is all zeros the first time it is used (later calls find the zero rows as they left them).

    Taught in: 03_deepthin
    """
    built = _build()
    if built is None:
        raise RuntimeError("the compiled DeepThin path needs numba (it comes with librosa) and scipy: "
                           "pip install numba scipy, or build the network with compiled=False")
    kernel, addr = built
    kernel(addr, X, b0, b1, packed["meta"], packed["T"], packed["G"], packed["index"], packed["bias"], work,
           packed["work_rows"] * (b1 - b0), YT)
