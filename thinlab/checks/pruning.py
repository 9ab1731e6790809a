"""Exercise checks for lesson 01 (magnitude pruning to a sparsity, CSR bytes, the CSR break-even density).

Taught in: 01_pruning
"""
from __future__ import annotations

import numpy as np

from thinlab import prune
from thinlab.checks._common import call as _call, fail as _fail
from thinlab.size import dense_bytes, index_bytes, shape_bytes


def magnitude_prune_reference(W, sparsity):
    """Copy of ``W`` with its ``round(sparsity * W.size)`` smallest |w| set to 0. Taught in: 01_pruning"""
    return prune.magnitude_prune(np.asarray(W), sparsity=sparsity)


def check_magnitude_prune(fn) -> str:
    """Check the student's ``magnitude_prune(W, sparsity) -> array``. Taught in: 01_pruning"""
    rng = np.random.default_rng(1)
    cases = [(np.array([[0.5, -0.1, 0.3], [-0.9, 0.05, 0.2]]), 0.5),
             (np.array([[1.0, -3.0], [2.0, -0.5]]), 0.25),
             (rng.permutation(np.linspace(-1, 1, 40) + 0.01).reshape(5, 8), 0.9),
             (np.array([[-2.0, -1.0, 0.1, 0.2]]), 0.5),  # large negative weights are important too
             (np.array([[0.3, -0.7], [0.2, 0.9]]), 0.0)]
    for W, s in cases:
        original = W.copy()
        got = _call(fn, W, s)
        want = magnitude_prune_reference(original, s)
        if not np.array_equal(W, original):
            _fail("your function changed the W it was given",
                  "work on a copy (W.copy() or np.where(...)) and return it; other code still needs the dense W")
        got = np.asarray(got)
        if got.shape != W.shape:
            _fail(f"for W of shape {W.shape} you returned shape {got.shape}",
                  "return an array of W's shape with the pruned entries set to 0 (do not drop them)")
        k = int(round(s * W.size))
        if int((got == 0).sum()) != k:
            _fail(f"for sparsity={s} on {W.size} weights you zeroed {int((got == 0).sum())}, expected exactly {k}",
                  "exactly k = round(sparsity * W.size) entries must be zero, no more and no fewer: rank all "
                  "entries by |w| over the whole array and zero the first k of that order (a threshold on |w| "
                  "cannot promise the count); checks.hints('magnitude_prune') has more")
        if not np.array_equal(got, want):
            by_value = np.argsort(W, axis=None).argsort().reshape(W.shape) < k  # the k smallest signed values
            if np.array_equal(got == 0, want == 0):
                hint = "the right entries are zero, but keep the other weights exactly as they were"
            elif np.array_equal(got == 0, by_value):
                hint = "rank by magnitude np.abs(W), not by value: a weight of -2 matters more than 0.1"
            else:
                hint = ("rank the entries by magnitude over the whole array (not row by row) and zero the k "
                        "smallest; checks.hints('magnitude_prune') has more")
            _fail(f"for W={original.tolist()} and sparsity={s} you returned {got.tolist()}, "
                  f"expected {want.tolist()}", hint)
    return "✓ magnitude_prune is right"


def csr_bytes_reference(shape, nnz) -> int:
    """Bytes of a (rows, cols) float32 matrix with ``nnz`` nonzeros stored as CSR. Taught in: 01_pruning"""
    return prune.csr_bytes(shape, nnz)


def check_csr_bytes(fn) -> str:
    """Check the student's ``csr_bytes(shape, nnz) -> int``. Taught in: 01_pruning"""
    cases = [((4, 5), 3), ((4, 5), 20), ((3, 300), 10), ((2, 70_000), 100), ((300, 300), 90_000), ((1, 1), 0)]
    for shape, nnz in cases:
        got, want = _call(fn, shape, nnz), csr_bytes_reference(shape, nnz)
        if not np.isscalar(got) or float(got) != int(got):
            _fail(f"expected a whole number of bytes, got {got!r}", "return an int")
        got = int(got)
        if got == want:
            continue
        rows, cols = shape
        ptr, idx = index_bytes(nnz), index_bytes(cols - 1)
        parts = {"values": 4 * nnz, "column indices": idx * nnz, "row pointers": (rows + 1) * ptr,
                 "shape": shape_bytes(shape)}
        hint = ("count four parts: the float32 values, one column index per value, the row pointers (one per "
                "row plus one) and the shape; an index array is as wide as thinlab.size.index_bytes says for "
                "its largest entry (which is it for column indices, which for row pointers?)")
        for name, b in parts.items():
            if got == want - b:
                hint = f"you left out the {name} ({b} bytes). " + hint
        if got == want - parts["column indices"] - parts["row pointers"] + 4 * nnz + 4 * (rows + 1):
            hint = "indices at 4 bytes each is what many libraries store, but count them at their real width. " + hint
        _fail(f"for shape={shape}, nnz={nnz} you returned {got} bytes, expected {want} "
              f"(values {parts['values']} + column indices {parts['column indices']} + row pointers "
              f"{parts['row pointers']} + shape {parts['shape']})", hint)
    return "✓ csr_bytes is right"


def break_even_density_reference(shape) -> float:
    """Largest density nnz / size at which float32 CSR takes no more bytes than the dense matrix.

    Taught in: 01_pruning
    """
    return prune.csr_break_even_density(shape)


def check_break_even_density(fn) -> str:
    """Check the student's ``break_even_density(shape) -> float``. Taught in: 01_pruning"""
    for shape in [(8, 8), (3, 300), (40, 50), (2, 10)]:
        got, want = _call(fn, shape), break_even_density_reference(shape)
        if np.ndim(got) != 0:
            _fail(f"expected one number, got {type(got).__name__}", "return one float: a density between 0 and 1")
        size = shape[0] * shape[1]
        if not np.isclose(float(got), want, rtol=0, atol=1e-12):
            nnz = int(round(want * size))
            _fail(f"for shape={shape} you returned {float(got):.4f}, expected {want:.4f} "
                  f"(nnz = {nnz} of {size}: CSR {prune.csr_bytes(shape, nnz)} bytes ≤ dense "
                  f"{dense_bytes(shape)}, one more nonzero would not fit)",
                  "search for the largest nnz whose csr_bytes still fit in the dense bytes (or solve the "
                  "inequality) and turn it into a density; the row pointers and the shape count too, so the "
                  "answer lies below 4 / (4 + index width)")
    return "✓ break_even_density is right"


SOLUTIONS = {
    "magnitude_prune": magnitude_prune_reference,
    "csr_bytes": csr_bytes_reference,
    "break_even_density": break_even_density_reference,
}
