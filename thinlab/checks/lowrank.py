"""Exercise checks for lesson 02 (truncated SVD to a rank, the bytes of rank-k factors, the rank for a
byte budget).

Taught in: 02_svd
"""
from __future__ import annotations

import numpy as np

from thinlab import lowrank
from thinlab.checks._common import call as _call, fail as _fail


def truncated_svd_reference(W, rank):
    """Best rank-``rank`` factors ``A (Q, rank) = U_k·diag(s_k)``, ``B (rank, R) = V_kᵀ`` with ``W ≈ A·B``.

    Taught in: 02_svd
    """
    return lowrank.truncated_svd(np.asarray(W), rank=rank)


def _svd_cases():
    rng = np.random.default_rng(2)
    # singular values well apart, so the best rank-k matrix is unique
    U, _ = np.linalg.qr(rng.normal(size=(6, 4)))
    V, _ = np.linalg.qr(rng.normal(size=(5, 4)))
    W = (U * [5.0, 3.0, 2.0, 0.5]) @ V.T  # (6, 5), rank 4
    return [(np.array([[3.0, 0.0], [0.0, 1.0]]), 1),
            (W, 2),
            (W.T.copy(), 3),  # wide: Q < R
            (rng.normal(size=(7, 3)), 3),  # full rank: A·B must give W back
            (rng.normal(size=(4, 9)), 1)]


def check_truncated_svd(fn) -> str:
    """Check the student's ``truncated_svd(W, rank) -> (A, B)``. Taught in: 02_svd"""
    for W, k in _svd_cases():
        original = W.copy()
        got = _call(fn, W, k)
        if not np.array_equal(W, original):
            _fail("your function changed the W it was given", "work on the SVD's outputs, not on W in place")
        if not isinstance(got, (tuple, list)) or len(got) != 2:
            _fail(f"expected a pair (A, B), got {type(got).__name__}"
                  + (f" of length {len(got)}" if isinstance(got, (tuple, list)) else ""),
                  "return two matrices A (Q, k) and B (k, R) whose product approximates W, with the singular "
                  "values folded into one of them; do not return U, s, Vt")
        A, B = (np.asarray(x, dtype=np.float64) for x in got)
        Q, R = W.shape
        if A.shape != (Q, k) or B.shape != (k, R):
            hint = "A (Q, k) comes from k columns of U and B (k, R) from k rows of Vt"
            if B.shape == (R, k):
                hint = "B holds the first k rows of Vt, not its first k columns. " + hint
            _fail(f"for W of shape {W.shape} and rank={k} you returned A {A.shape} and B {B.shape}, expected "
                  f"A {(Q, k)} and B {(k, R)}", hint + "; use np.linalg.svd(W, full_matrices=False)")
        want_A, want_B = truncated_svd_reference(original, k)
        want = want_A @ want_B
        if np.allclose(A @ B, want, atol=1e-8, rtol=1e-6):
            continue
        U, s, Vt = np.linalg.svd(original, full_matrices=False)
        wrong = {"without the singular values (U_k · V_kᵀ)": U[:, :k] @ Vt[:k],
                 "with the singular values squared": (U[:, :k] * s[:k] ** 2) @ Vt[:k],
                 "with the smallest singular values instead of the largest": (U[:, -k:] * s[-k:]) @ Vt[-k:]}
        hint = ("the best rank-k matrix keeps the k largest singular values, each once (Eckart–Young): A @ B "
                "must equal U_k·diag(s_k)·V_kᵀ, built from the first k columns of U, the first k singular values "
                "and the first k rows of Vt")
        for what, M in wrong.items():
            if np.allclose(A @ B, M, atol=1e-8, rtol=1e-6):
                hint = f"your A @ B is the truncation {what}. " + hint
        _fail(f"for W={np.round(original, 3).tolist()} and rank={k} your A @ B is {np.round(A @ B, 3).tolist()}, "
              f"expected {np.round(want, 3).tolist()} (error ‖W − A·B‖ = {np.linalg.norm(original - A @ B):.4f}, "
              f"best possible {np.sqrt((s[k:] ** 2).sum()):.4f})", hint)
    return "✓ truncated_svd is right"


def lowrank_bytes_reference(shape, rank) -> int:
    """Bytes of float32 factors A (Q, rank) and B (rank, R) with both shapes: ``4·(Q + R)·rank + 16``.

    Taught in: 02_svd
    """
    return lowrank.lowrank_bytes(shape, rank)


def _check_whole_answers(fn, cases, reference, *, what: str, explain) -> None:
    """Call ``fn(*case)`` for each case and compare it with ``reference(*case)``: an answer that is not a
    whole number fails ("expected a whole ``what``"), a wrong one fails with ``explain(*case, got, want)``
    -> (what went wrong, hint)."""
    for case in cases:
        got, want = _call(fn, *case), reference(*case)
        if not np.isscalar(got) or float(got) != int(got):
            _fail(f"expected a whole {what}, got {got!r}", "return an int")
        got = int(got)
        if got != want:
            _fail(*explain(*case, got, want))


def _explain_lowrank_bytes(shape, k, got, want) -> tuple[str, str]:
    Q, R = shape
    hint = ("count the values of A (Q, k) and of B (k, R) at float32 size, and add what a file stores for each "
            "factor's shape (2 dimensions as uint32)")
    if got == want - 16:
        hint = "you left out the two shapes (16 bytes). " + hint
    elif got == want - 8:
        hint = "you counted one shape; both factors store theirs. " + hint
    elif got in ((Q + R) * k, (Q + R) * k + 16):
        hint = "that is a count of values, not bytes: each float32 value takes 4 bytes. " + hint
    elif got in (4 * Q * R * k, 4 * Q * R * k + 16):
        hint = "the factors are Q·k and k·R values, not Q·R·k. " + hint
    return (f"for shape={shape}, rank={k} you returned {got:,} bytes, expected {want:,} "
            f"(values {4 * (Q + R) * k:,} + shapes 16)", hint)


def check_lowrank_bytes(fn) -> str:
    """Check the student's ``lowrank_bytes(shape, rank) -> int``. Taught in: 02_svd"""
    _check_whole_answers(fn, [((4, 6), 2), ((512, 512), 32), ((2000, 512), 1), ((10, 3), 3), ((300, 70), 17)],
                         lowrank_bytes_reference, what="number of bytes", explain=_explain_lowrank_bytes)
    return "✓ lowrank_bytes is right"


def rank_for_budget_reference(shape, max_bytes) -> int:
    """Largest rank whose float32 factors (with shapes) fit in ``max_bytes``, at most min(Q, R).

    Taught in: 02_svd
    """
    return lowrank.rank_for_budget(shape, max_bytes=max_bytes)


def _explain_rank_for_budget(shape, budget, got, want) -> tuple[str, str]:
    b = lowrank.lowrank_bytes
    Q, R = shape
    hint = ("the largest k whose factors (your lowrank_bytes) still fit in max_bytes, "
            "and never above min(Q, R)")
    if got > min(Q, R):
        hint = f"a {shape} matrix has rank at most min(Q, R) = {min(Q, R)}. " + hint
    elif got == want + 1 and b(shape, got) > budget:
        hint = (f"rank {got} needs {b(shape, got):,} bytes, more than {budget:,}: count the 16 bytes of "
                "the shapes, and round down. " + hint)
    elif got == want - 1 and b(shape, want) <= budget:
        hint = f"rank {want} needs {b(shape, want):,} bytes, which fits (≤ {budget:,}). " + hint
    return (f"for shape={shape} and max_bytes={budget:,} you returned rank {got}, expected {want} "
            f"({b(shape, want):,} bytes)", hint)


def check_rank_for_budget(fn) -> str:
    """Check the student's ``rank_for_budget(shape, max_bytes) -> int``. Taught in: 02_svd"""
    b = lowrank.lowrank_bytes
    cases = [((4, 6), b((4, 6), 2)),  # exactly rank 2's bytes: rank 2 fits
             ((4, 6), b((4, 6), 2) - 1),  # one byte short: rank 1
             ((512, 512), 100_000),
             ((2000, 512), 409_600),  # a tenth of the dense bytes
             ((10, 3), 10_000),  # more than any rank needs: capped at min(Q, R)
             ((300, 70), 4 * 370 * 5 + 10)]  # rank 5's values fit, but not with the shapes
    _check_whole_answers(fn, cases, rank_for_budget_reference, what="rank", explain=_explain_rank_for_budget)
    return "✓ rank_for_budget is right"


SOLUTIONS = {
    "truncated_svd": truncated_svd_reference,
    "lowrank_bytes": lowrank_bytes_reference,
    "rank_for_budget": rank_for_budget_reference,
}
