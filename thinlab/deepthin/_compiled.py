"""A whole fused DeepThin network's forward pass for a block of input rows, as one compiled call.

:class:`thinlab.deepthin.FusedNetwork` runs its layers here when each uses the ``"toeplitz"``
correlation with per-class GEMMs (the cost model's choice for batches of a few rows or more). The
arithmetic is :class:`~thinlab.deepthin.FusedDeepThin`'s: the same products, done by float32 BLAS
``sgemm`` (called directly) or, on CPUs with AVX-512, by two hand-written kernels
(:mod:`thinlab.deepthin._kernel`) that skip the Toeplitz block's zero corners and BLAS's
per-call setup. What goes is the glue between the products, which cost the per-layer numpy path
about a third of its time on the TFKaldi net at batch 32:

* no interpreter between layers or products: one call runs every layer;
* each layer's combination writes its output rows, through an output row stride, straight
  into the next layer's zero-padded input (rows n − 1 … n − 2 + Q; the zero rows are never
  written but with zeros), so there is no padded copy, no transpose and no gather of the result;
  the bias and the ReLU follow (in one pass over those rows after ``sgemm``; in registers, on
  the way to memory, in the AVX-512 kernel);
* the correlation's chunks read that padded input in place: per chunk of L shifts one
  ``(r·L, K) @ (K, B)`` product, K = L + n − 1, or one AVX-512 kernel call per rank;
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

import functools

import numpy as np

_KERNEL: list = []          # [(compiled function, sgemm address)] once built, [None] if unavailable

#: columns of the per-layer table passed to the kernel (one row per layer)
META = ("Q", "R", "n", "L", "chunks", "live", "rL", "K", "A", "Tc", "rP", "t_off", "g_off", "i_off", "b_off",
        "relu", "x_off", "rows", "r", "w_off")


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


@functools.cache
def host_has_avx512() -> bool:
    """Whether this process's CPU has AVX-512F (llvmlite's view of the host; asked once, it takes
    a quarter of a millisecond).

    Taught in: 03_deepthin
    """
    try:
        from llvmlite import binding
        return bool(binding.get_host_cpu_features().get("avx512f", False))
    except (ImportError, RuntimeError, OSError):
        return False


def simd_available() -> bool:
    """Whether the compiled path's AVX-512 kernels (in :mod:`thinlab.deepthin._kernel`) should run
    here: the compiled path loads and the CPU has AVX-512F (without it LLVM splits their 16-float
    vectors and spills the sums; ``sgemm`` is then faster).

    Taught in: 03_deepthin
    """
    return available() and host_has_avx512()


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
    meta, Ts, Gs, Is, Ws, bs = [], [], [], [], [], []
    t_off = g_off = i_off = b_off = x_off = w_off = scratch = 0
    prev = None
    for p, b, act in zip(plans, biases, relu):
        tp = p.toeplitz_
        rL, K = tp["T"].shape
        A, Tc, rP = p.G_.shape
        n, L, chunks = p.Wf.shape[1], tp["L"], tp["chunks"]
        live = min(chunks, (p.Q + n - 2) // L + 1)                        # chunks holding a shift s < Q
        rows = max(chunks * L + n - 1, p.Q + n - 1, n - 1 + (prev.G_.shape[0] * prev.G_.shape[1] if prev else 0))
        meta.append([p.Q, p.R, n, L, chunks, live, rL, K, A, Tc, rP, t_off, g_off, i_off,
                     -1 if b is None else b_off, int(bool(act)), x_off, rows, p.Wf.shape[0], w_off])
        Ts.append(tp["T"].ravel())
        Gs.append(p.G_.ravel())
        Is.append(tp["index"].astype(np.int64))
        Ws.append(p.Wf.ravel())
        w_off += p.Wf.size
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
                W=np.concatenate(Ws).astype(f32),
                bias=np.concatenate(bs).astype(f32) if bs else np.zeros(1, f32),
                work_rows=x_off, scratch_rows=scratch, out_rows=prev.G_.shape[0] * prev.G_.shape[1])


#: fewest rows of a block padded to 16 for the AVX-512 kernels (fewer run on ``sgemm``, unpadded)
PAD_MIN_ROWS = 5


def block_width(rows: int, simd: bool) -> int:
    """Floats per row of the work array for a block of ``rows`` batch rows: with the AVX-512 kernels
    a block of :data:`PAD_MIN_ROWS` … 32 rows is padded to 16 or 32, otherwise exactly ``rows``.
    Measured on the TFKaldi net at 1/100, one thread, this course's 2-core machine (ms, padded
    AVX-512 kernels against ``sgemm`` on the rows as they are): 2 rows 0.50 / 0.38, 4 rows 0.51 /
    0.48, 6 rows 0.50 / 0.56, 8 rows 0.50 / 0.61, 12 rows 0.52 / 0.67, 17 rows 0.86 / 0.90,
    24 rows 0.93 / 1.22.

    Taught in: 03_deepthin
    """
    return 16 * -(-rows // 16) if simd and PAD_MIN_ROWS <= rows <= 32 else rows


def work_floats(packed: dict, rows: int, simd: bool) -> int:
    """Size of the work array :func:`run_block` needs for a block of ``rows`` rows: the padded
    inputs and the scratch, plus the last layer's output rows when the block is padded.

    Taught in: 03_deepthin
    """
    width = block_width(rows, simd)
    return (packed["work_rows"] + packed["scratch_rows"] + (packed["out_rows"] if width != rows else 0)) * width


def run_block(X: np.ndarray, b0: int, b1: int, packed: dict, work: np.ndarray, YT: np.ndarray, *,
              simd: bool = False) -> None:
    """Columns b0 … b1 − 1 of Yᵀ (``out_rows`` × B; the rows from R on come out 0) for input rows
    b0 … b1 − 1 of X (float32, C order). ``work`` holds :func:`work_floats` floats (or more) for
    these rows and ``simd``, and is all zeros the first time it is used (later calls find the zero
    rows as they left them). ``simd``: run the layers that fit them on the AVX-512 kernels (only
    where :func:`simd_available`; n ≥ 11; the block padded to 16 or 32 rows), the rest on ``sgemm``.

    Taught in: 03_deepthin
    """
    built = _build()
    if built is None:
        raise RuntimeError("the compiled DeepThin path needs numba (it comes with librosa) and scipy: "
                           "pip install numba scipy, or build the network with compiled=False")
    if simd and not simd_available():
        raise RuntimeError("the AVX-512 kernels need a CPU with AVX-512F, which this one lacks: run with simd=False")
    need = work_floats(packed, b1 - b0, simd)
    if work.dtype != np.float32 or work.ndim != 1 or work.size < need or not work.flags.c_contiguous:
        raise ValueError(f"work must be a contiguous float32 vector of at least {need} floats for {b1 - b0} rows, got "
                         f"{work.dtype} {work.shape}: size it with work_floats(packed, rows, simd)")
    if not (0 <= b0 < b1 <= min(X.shape[0], YT.shape[1])) or YT.shape[0] != packed["out_rows"]:
        raise ValueError(f"rows {b0} … {b1 - 1} must lie inside X ({X.shape[0]} rows) and Yᵀ ({YT.shape} for "
                         f"{packed['out_rows']} output rows)")
    kernel, addr = built
    kernel(addr, X, b0, b1, block_width(b1 - b0, simd), packed["meta"], packed["T"], packed["G"], packed["index"],
           packed["W"], packed["bias"], work, packed["work_rows"], packed["scratch_rows"], YT, bool(simd))
