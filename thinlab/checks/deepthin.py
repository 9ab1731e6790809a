"""Exercise checks for lesson 03 (the re-layout W_aux → W, alignment classes and the LCM rule, the
DeepThin size lower bound).

Taught in: 03_deepthin
"""
from __future__ import annotations

import math

import numpy as np

from thinlab import deepthin
from thinlab.checks._common import call as _call, fail as _fail


def relayout_reference(W_aux, Q, R):
    """W (Q, R) whose column j holds the row-major elements j·Q … j·Q + Q − 1 of W_aux. Taught in: 03_deepthin"""
    return deepthin.relayout(np.asarray(W_aux), Q=Q, R=R)


def check_relayout(fn) -> str:
    """Check the student's ``relayout(W_aux, Q, R) -> W``. Taught in: 03_deepthin"""
    rng = np.random.default_rng(3)
    cases = [(np.arange(12.0).reshape(3, 4), 4, 3),           # m·n = Q·R, n = Q
             (np.arange(12.0).reshape(4, 3), 2, 6),
             (np.arange(25.0).reshape(5, 5), 6, 4),           # one unused element at the end
             (rng.standard_normal((7, 5)), 3, 11)]            # n > Q, two unused
    for W_aux, Q, R in cases:
        original = W_aux.copy()
        got = np.asarray(_call(fn, W_aux, Q, R))
        want = relayout_reference(original, Q, R)
        if not np.array_equal(W_aux, original):
            _fail("your function changed the W_aux it was given", "build a new array; do not write into W_aux")
        if got.shape != (Q, R):
            _fail(f"for W_aux of shape {W_aux.shape}, Q={Q}, R={R} you returned shape {got.shape}, expected ({Q}, {R})",
                  "W has Q rows (inputs) and R columns (outputs); use only the first Q·R elements of W_aux "
                  "(W_aux may hold a few more)")
        if not np.array_equal(got, want):
            flat = original.reshape(-1)[: Q * R]
            if np.array_equal(got, flat.reshape(Q, R)):
                hint = ("you filled W row by row; DeepThin fills it column by column: column j takes the j-th "
                        "run of Q consecutive numbers. reshape fills rows, so shape the stream with one row per "
                        "column of W first, then turn it the right way round")
            elif np.array_equal(got, original.T.reshape(-1)[: Q * R].reshape(R, Q).T):
                hint = ("read W_aux row-major (row 0 first, left to right), not column-major: flatten W_aux as it "
                        "is, without transposing it first")
            else:
                hint = ("flatten W_aux row-major, keep the first Q·R values and pour them into W column by column; "
                        "checks.hints('relayout') has more")
            _fail(f"for W_aux={original.round(3).tolist()}, Q={Q}, R={R} you returned {got.round(3).tolist()}, "
                  f"expected {want.round(3).tolist()}", hint)
    return "✓ relayout is right"


def n_alignments_reference(Q, R, n):
    """Distinct start offsets (j·Q) mod n of the R columns inside a W_aux row: min(R, n / gcd(n, Q)).

    Taught in: 03_deepthin
    """
    return min(R, n // math.gcd(n, Q))


def check_n_alignments(fn) -> str:
    """Check the student's ``n_alignments(Q, R, n) -> int``. Taught in: 03_deepthin"""
    cases = [(8, 6, 4), (8, 6, 5), (8, 6, 6), (12, 20, 8), (512, 512, 509), (512, 512, 512), (2000, 512, 867),
             (2000, 512, 1000), (6, 3, 5)]
    for Q, R, n in cases:
        got, want = _call(fn, Q, R, n), n_alignments_reference(Q, R, n)
        if np.ndim(got) != 0 or float(got) != int(got):
            _fail(f"expected a whole number, got {got!r}", "return an int: how many different offsets occur")
        got = int(got)
        if got == want:
            continue
        g = math.gcd(n, Q)
        offsets = sorted({(j * Q) % n for j in range(R)})
        if got == n and g > 1:
            hint = (f"not every offset 0 … n − 1 occurs: gcd(n, Q) = {g}, and only its multiples do; count "
                    "how many of them lie below n (and remember there are only R columns)")
        elif got == g:
            hint = (f"gcd(n, Q) = {g} is the step between offsets, not their number: count how many of them "
                    "fit below n")
        elif got == n // g:
            hint = (f"n / gcd(n, Q) = {n // g} offsets exist, but only {R} columns can use them: "
                    "the answer cannot exceed R")
        else:
            hint = "column j starts at offset (j·Q) mod n; the offsets are the multiples of g = gcd(n, Q) below n"
        _fail(f"for Q={Q}, R={R}, n={n} you returned {got}, expected {want} "
              f"(offsets {offsets[:8]}{' …' if len(offsets) > 8 else ''})", hint)
    return "✓ n_alignments is right"


def lower_bound_reference(Q, R):
    """Smallest DeepThin size_fraction for W (Q, R): rank 1 at the smallest m + n with m·n ≥ Q·R, in
    honest bytes ((m + n)·4 values + two 8-byte shapes) over the dense 4·Q·R. Taught in: 03_deepthin"""
    return deepthin.deepthin_lower_bound(Q, R)


def check_lower_bound(fn) -> str:
    """Check the student's ``lower_bound(Q, R) -> float``. Taught in: 03_deepthin"""
    for Q, R in [(6, 4), (10, 10), (7, 13), (512, 512), (2000, 512), (440, 2048)]:
        got, want = _call(fn, Q, R), lower_bound_reference(Q, R)
        if np.ndim(got) != 0:
            _fail(f"expected one number, got {type(got).__name__}", "return bytes / dense bytes as a float")
        if np.isclose(float(got), want, rtol=1e-9, atol=0):
            continue
        n, m = deepthin.min_aux_sum(Q * R)
        dense = 4 * Q * R
        tries = {"without the two shapes (16 bytes)": (4 * (m + n)) / dense,
                 "with m + n = 2·√(Q·R) (not a whole number of rows and columns)": (8 * math.sqrt(Q * R) + 16) / dense,
                 "with m + n = Q + R (that is rank-1 factorisation, no re-layout)": (4 * (Q + R) + 16) / dense}
        hint = next((f"you computed it {k}. " for k, v in tries.items() if np.isclose(float(got), v, rtol=1e-9)), "")
        _fail(f"for W of shape ({Q}, {R}) you returned {float(got):.6g}, expected {want:.6g} "
              f"(m = {m}, n = {n}, rank 1: {4 * (m + n) + 16} bytes of {dense})",
              hint + "At rank 1 the factors hold m + n values: search whole numbers m, n (n near √(Q·R)) with "
                     "m·n ≥ Q·R and the smallest m + n, count their bytes as the lesson does (float32 values "
                     "and the two factor shapes) and compare with the dense bytes")
    return "✓ lower_bound is right"


SOLUTIONS = {
    "relayout": relayout_reference,
    "n_alignments": n_alignments_reference,
    "lower_bound": lower_bound_reference,
}
