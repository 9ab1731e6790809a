"""A chain of fused DeepThin layers run as one network: y = act(x·W_l + b_l), W never built.

Lesson 03 times the fused product on whole networks (the paper's TFKaldi net, the course DNN);
:func:`thinlab.experiments.timing.layer_timing` and ``make bench`` run them through
:class:`FusedNetwork`. For a batch of two rows or more whose layers all use the per-class GEMM
combination, the whole forward pass is one compiled call per block of rows
(:mod:`thinlab.deepthin._compiled`): every layer writes its output, bias and ReLU included,
straight into the next layer's padded input. Otherwise (one row, layers with n | Q or ≤ 4 columns
per class, or no numba) the layers run one after the other through
:class:`~thinlab.deepthin.FusedDeepThin`, the same numbers either way.

Measured on the TFKaldi net at 1/100 (7 layers, 440 → 6 x 2048 → 6928, one thread, this course's
2-core machine, whose CPU has AVX-512): the compiled forward takes 0.48 / 0.54 / 0.49 / 0.79 ms at
batch 4 / 8 / 16 / 32 on the AVX-512 kernels (0.47 / 0.63 / 0.62 / 0.94 ms on ``sgemm``) against
0.58 / 0.79 / 0.77 / 1.39 ms layer by layer, and 0.25 ms layer by layer at batch 1, so batches of
one row stay layer by layer (:data:`COMPILED_MIN_BATCH`); large batches run in blocks of
:data:`BLOCK_ROWS` rows, which keeps each block's work arrays in cache (batch 128: 3.2 ms against
8.0 ms layer by layer).

Threads: blocks of rows go to worker threads (the compiled call releases the interpreter lock).
Whether that pays depends on the machine: with ``threads=None`` the network times one thread
against several the first time it sees a batch size (the median of five interleaved runs each) and uses
several only if they took at most :data:`THREADS_GAIN` of one thread's time
(:meth:`FusedNetwork.threads_at`). On this course's 2-core virtual machine the answer changes from
day to day: two 16-row batches run side by side took 0.48 ms each against 0.47 ms alone on a quiet
day, and 0.77 ms against 0.51 ms on a day when the host was busy, which is why it is measured
rather than assumed.

Taught in: 03_deepthin
"""
from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from thinlab.deepthin import _compiled
from thinlab.deepthin.fused import FusedDeepThin, cpu_threads, input_rows

#: smallest batch the compiled whole-network call runs (one row: the per-layer band method is faster)
COMPILED_MIN_BATCH = 2
#: most rows per compiled call; larger batches run in blocks of this many rows
BLOCK_ROWS = 32
#: fewest rows a worker thread gets
MIN_THREAD_ROWS = 8
#: several threads are used only when they measured at most this fraction of one thread's time
THREADS_GAIN = 0.75

_POOL: list = []
_POOL_LOCK = threading.Lock()


def _pool(workers: int) -> ThreadPoolExecutor:
    """The shared worker threads (created on first use, grown when more are asked for)."""
    with _POOL_LOCK:
        if not _POOL or _POOL[0]._max_workers < workers:
            if _POOL:
                _POOL.pop().shutdown(wait=False)
            _POOL.append(ThreadPoolExecutor(max_workers=workers, thread_name_prefix="thinlab-fused"))
        return _POOL[0]


class FusedNetwork:
    """``y = act_L(… act_1(X·W_1 + b_1) … ·W_L + b_L)`` for DeepThin layers, no W built.

    Parameters
    ----------
    layers : sequence of FusedDeepThin
        The layers in order; layer l + 1's Q must equal layer l's R.
    biases : sequence of (array (R_l,) or None), or None
        A bias per layer (None: no biases).
    relu : sequence of bool, or None
        Whether a ReLU follows each layer (None: every layer but the last, as in the course DNN
        and the TFKaldi net).
    threads : int or None
        Worker threads for blocks of rows (None: every CPU this process may use, where the first
        call at each batch size measures that it pays; an int: exactly that many, when the batch
        has ``MIN_THREAD_ROWS`` rows per thread).
    compiled : bool or None
        The whole-network compiled call for batches of ``COMPILED_MIN_BATCH`` rows or more: True
        requires numba, False never uses it, None (default) uses it when numba loads.
    simd : bool or None
        Inside the compiled call, the hand-written AVX-512 kernels (:mod:`~._kernel`) for blocks of
        16 or 32 rows and layers with n ≥ 11, instead of ``sgemm``: True requires an AVX-512 CPU,
        False never uses them, None (default) uses them where the CPU has AVX-512. The same
        products either way, summed in another order (results agree to float32 rounding).

    Calling ``net(X)`` with X (B, Q_1) returns Y (B, R_L) float32 (in Fortran order from the
    compiled path: a transposed view of Yᵀ, as :class:`FusedDeepThin` returns it); x (Q_1,) gives
    y (R_L,). The plans are snapshots: build a new network after changing the layers.

    Taught in: 03_deepthin
    """

    def __init__(self, layers, *, biases=None, relu=None, threads: int | None = None, compiled: bool | None = None,
                 simd: bool | None = None):
        layers = list(layers)
        if not layers or not all(isinstance(p, FusedDeepThin) for p in layers):
            raise ValueError("layers must be a non-empty sequence of FusedDeepThin plans, got "
                             f"{[type(p).__name__ for p in layers] or 'nothing'}")
        for i, (a, b) in enumerate(zip(layers, layers[1:])):
            if b.Q != a.R:
                raise ValueError(f"layer {i + 1} takes {b.Q} inputs but layer {i} gives {a.R} outputs; "
                                 f"consecutive layers must chain (Q of one = R of the one before)")
        L = len(layers)
        biases = [None] * L if biases is None else list(biases)
        if len(biases) != L:
            raise ValueError(f"biases has {len(biases)} entries for {L} layers; give one per layer (None for none)")
        self.biases = []
        for i, (p, b) in enumerate(zip(layers, biases)):
            if b is not None:
                b = np.asarray(b, dtype=np.float32)
                if b.shape != (p.R,) or not np.isfinite(b).all():
                    raise ValueError(f"biases[{i}] must be {p.R} finite numbers (layer {i}'s outputs), "
                                     f"got shape {b.shape}" + ("" if b.shape != (p.R,) else " with non-finite values"))
            self.biases.append(b)
        relu = [True] * (L - 1) + [False] if relu is None else [bool(v) for v in relu]
        if len(relu) != L:
            raise ValueError(f"relu has {len(relu)} entries for {L} layers; give one bool per layer")
        if threads is not None and (isinstance(threads, bool) or not isinstance(threads, (int, np.integer))
                                    or threads < 1):
            raise ValueError(f"threads={threads!r} must be None (every CPU, where it pays) or a whole number ≥ 1")
        if not (compiled is None or isinstance(compiled, bool)):
            raise ValueError(f"compiled={compiled!r} must be True (numba), False (layer by layer) or None "
                             f"(numba if it loads)")
        eligible = all(p.contract_ == "matmul" for p in layers)
        if not (simd is None or isinstance(simd, bool)):
            raise ValueError(f"simd={simd!r} must be True (AVX-512 kernels), False (sgemm) or None (AVX-512 where "
                             f"the CPU has it)")
        if compiled and not _compiled.available():
            raise ValueError("compiled=True needs numba and scipy's BLAS, which do not load here: pip install numba "
                             "(it comes with librosa), or pass compiled=None to run layer by layer")
        if compiled and not eligible:
            bad = [i for i, p in enumerate(layers) if p.contract_ != "matmul"]
            raise ValueError(f"compiled=True needs every layer to combine with per-class GEMMs; layers {bad} do "
                             f"not (n divides Q, or at most 4 columns per class): pass compiled=None")
        self.layers, self.relu, self.threads = layers, relu, threads
        self.Q, self.R = layers[0].Q, layers[-1].R
        self.compiled_ = eligible and (compiled if compiled is not None else _compiled.available())
        if simd and not (self.compiled_ and _compiled.simd_available()):
            raise ValueError("simd=True needs the compiled path on a CPU with AVX-512F, " + (
                "which this CPU lacks" if self.compiled_ else "and this network runs layer by layer")
                + ": pass simd=None to use them where they can run")
        self.simd_ = self.compiled_ and (simd if simd is not None else _compiled.simd_available())
        self._packed = _compiled.pack(layers, self.biases, relu) if self.compiled_ else None
        self._work: dict = {}
        self._threads_at: dict[int, int] = {}

    # ------------------------------------------------------------------ the two paths

    def path_at(self, batch: int) -> str:
        """``"compiled"`` (one call per block of rows) or ``"layers"`` (layer by layer) for a batch.

        Taught in: 03_deepthin
        """
        return "compiled" if self.compiled_ and batch >= COMPILED_MIN_BATCH else "layers"

    def _layers(self, X: np.ndarray) -> np.ndarray:
        h = X
        for p, b, act in zip(self.layers, self.biases, self.relu):
            h = p(h)
            if b is not None:
                h += b
            if act:
                np.maximum(h, 0, out=h)
        return h

    def _work_for(self, rows: int) -> np.ndarray:
        """The work array for a block of ``rows`` rows, one per (thread, rows): a thread runs one
        block at a time. All zeros when new; the kernel keeps its padded inputs' zero rows at zero.
        It starts on a cache line, so that with 16 or 32 rows every row of it does: a 64-byte vector
        load then touches one line, not two."""
        key = (threading.get_ident(), rows)
        w = self._work.get(key)
        if w is None:
            if len(self._work) >= 64:                                 # callers that come and go: start afresh
                self._work.clear()
            w = self._work[key] = _aligned_empty((_compiled.work_floats(self._packed, rows, self.simd_),))
            w[:] = 0.0
        return w

    def _compiled(self, X: np.ndarray, threads: int) -> np.ndarray:
        B = X.shape[0]
        YT = _aligned_empty((self._packed["out_rows"], B))
        groups = max(1, min(threads, B // MIN_THREAD_ROWS))
        edges = _split(B, groups)                                      # one share of the rows per thread,
        jobs = [[(a, min(a + BLOCK_ROWS, hi)) for a in range(lo, hi, BLOCK_ROWS)]   # run in blocks
                for lo, hi in zip(edges[:-1], edges[1:])]

        def run(g):
            for a, b in jobs[g]:
                _compiled.run_block(X, a, b, self._packed, self._work_for(b - a), YT, simd=self.simd_)
        if groups == 1:
            run(0)
        else:
            futures = [_pool(groups - 1).submit(run, g) for g in range(1, groups)]
            run(0)
            for f in futures:
                f.result()
        return YT[: self.R].T

    def threads_at(self, batch: int) -> int:
        """Threads the compiled path uses for ``batch`` rows (``threads=None``: measured once per
        batch size, see the module docstring).

        Taught in: 03_deepthin
        """
        most = max(1, min(self.threads or cpu_threads(), batch // MIN_THREAD_ROWS))
        if self.threads is not None or most == 1:
            return most
        if batch not in self._threads_at:
            X = np.random.default_rng(0).standard_normal((batch, self.Q), dtype=np.float32)
            runs: dict = {1: [], most: []}
            for k in (1, most):
                self._compiled(X, k)                                   # warm: work arrays, caches
            for k in (1, most) * 5:                                    # interleaved, median of five each
                runs[k].append(_seconds(self._compiled, X, k))
            self._threads_at[batch] = most if np.median(runs[most]) < THREADS_GAIN * np.median(runs[1]) else 1
        return self._threads_at[batch]

    def __call__(self, X) -> np.ndarray:
        """Y (B, R_L) for X (B, Q_1), or y (R_L,) for x (Q_1,); float32, a new array.

        Taught in: 03_deepthin
        """
        X, single = input_rows(X, self.Q, "this network's first layer")
        X = np.ascontiguousarray(X)
        if self.path_at(X.shape[0]) == "layers":
            Y = self._layers(X)
        else:
            Y = self._compiled(X, self.threads_at(X.shape[0]))
        return Y[0] if single else Y


def _split(B: int, groups: int) -> list[int]:
    """Row edges of ``groups`` near-equal shares of B rows, on multiples of 16 where each share
    still gets 16 rows or more: threads then write whole 64-byte cache lines of each Yᵀ row (a line written
    by two threads at once costs both of them; measured, batch 32 in two halves: 0.68 ms with
    the halves on separate lines, 0.91 ms sharing one)."""
    edges = [round(B * g / groups) for g in range(groups + 1)]
    snapped = [0] + [16 * round(e / 16) for e in edges[1:-1]] + [B]
    return snapped if all(b - a >= 16 for a, b in zip(snapped, snapped[1:])) else edges


def _aligned_empty(shape) -> np.ndarray:
    """``np.empty(shape, float32)`` starting on a 64-byte boundary (a cache line)."""
    n = int(np.prod(shape))
    buf = np.empty(n + 16, dtype=np.float32)
    start = (-buf.ctypes.data % 64) // 4
    return buf[start:start + n].reshape(shape)


def _seconds(fn, *args) -> float:
    start = time.perf_counter()
    fn(*args)
    return time.perf_counter() - start
