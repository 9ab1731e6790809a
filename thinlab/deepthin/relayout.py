"""DeepThin re-layout: pour W_aux = X^f·W^f (m, n), read row-major, into W (Q, R) column by column.

``W[:, j] = flat(W_aux)[j·Q:(j+1)·Q]``, using the first Q·R of the m·n elements. The shuffled
variant first permutes the m·n positions with a seeded permutation (stored as its seed).
Also the paper's initialisation of the two factors.

Taught in: 03_deepthin
"""
from __future__ import annotations

import numpy as np

from thinlab._validate import _is_int, _is_real, check_count, check_finite, check_matrix


def _check_room(m: int, n: int, Q: int, R: int) -> None:
    if m * n < Q * R:
        raise ValueError(f"W_aux of shape ({m}, {n}) holds {m * n} elements but W of shape ({Q}, {R}) "
                         f"needs {Q * R}; pick m·n ≥ Q·R (deepthin_size does)")


def _checked_factors(Xf, Wf, Q, R) -> tuple[np.ndarray, np.ndarray, int, int]:
    """``(Xf, Wf, Q, R)`` checked: two float32 matrices whose inner sizes match, and the shape of W."""
    Xf = check_matrix("Xf", Xf)
    Wf = check_matrix("Wf", Wf, shape=(Xf.shape[1], None))
    bound = float(np.abs(Xf).max(initial=0.0)) * float(np.abs(Wf).max(initial=0.0)) * Xf.shape[1]
    if bound > float(np.finfo(np.float32).max):  # |W_aux| ≤ r·max|Xf|·max|Wf|: refuse what could overflow to inf
        raise ValueError(f"Xf and Wf are too large: X^f·W^f may reach r·max|Xf|·max|Wf| = {bound:.3g}, beyond "
                         f"float32's {np.finfo(np.float32).max:.3g}; rescale the factors (e.g. init_factors)")
    return Xf, Wf, check_count("Q", Q), check_count("R", R)


def _check_perm(perm, m: int, n: int) -> np.ndarray:
    perm = np.asarray(perm)
    if perm.shape != (m * n,) or not np.issubdtype(perm.dtype, np.integer):
        raise ValueError(f"perm must be an integer array of shape ({m * n},) (a permutation of the "
                         f"m·n = {m}·{n} positions), got {perm.dtype} {perm.shape}; "
                         f"make it with shuffle_permutation({m}, {n}, seed=...)")
    return perm


def flat_positions(Q: int, R: int, *, perm=None) -> np.ndarray:
    """Where each entry of W comes from: its position in flat(W_aux) (row-major), shape (Q, R).

    ``flat_positions(Q, R)[q, j] = j·Q + q``; with ``perm`` it is ``perm[j·Q + q]``.
    ``divmod(positions, n)`` gives the (row, column) of W_aux.

    Taught in: 03_deepthin
    """
    Q, R = check_count("Q", Q), check_count("R", R)
    pos = np.arange(Q * R, dtype=np.int64).reshape(R, Q).T    # (R, Q) → (Q, R): column j holds j·Q + q
    return pos if perm is None else np.asarray(perm)[pos]


def relayout(W_aux, *, Q: int, R: int) -> np.ndarray:
    """Re-layout W_aux (m, n) into W (Q, R): the first Q·R row-major elements, column by column.

    Parameters
    ----------
    W_aux : array (m, n)
    Q, R : int
        Shape of W; needs m·n ≥ Q·R.

    Returns
    -------
    W : ndarray (Q, R), a new C-contiguous array of W_aux's dtype.

    Taught in: 03_deepthin
    """
    W_aux = np.asarray(W_aux)
    if W_aux.ndim != 2:
        raise ValueError(f"W_aux must be 2-D (m, n), got shape {W_aux.shape}; pass Xf @ Wf")
    check_finite(W_aux, name="W_aux")  # the kernels' NaN / inf policy
    Q, R = check_count("Q", Q), check_count("R", R)
    _check_room(*W_aux.shape, Q, R)
    flat = W_aux.reshape(-1)[: Q * R]                  # (m, n) → (m·n,) → first Q·R
    return flat.reshape(R, Q).T.copy()                 # (Q·R,) → (R, Q): row j is column j → (Q, R), new C array


def relayout_reference(W_aux, *, Q: int, R: int) -> np.ndarray:
    """Loop reference for :func:`relayout`: walk W column by column, W_aux row by row.

    Taught in: 03_deepthin
    """
    W_aux = np.asarray(W_aux)
    n = W_aux.shape[1]
    W = np.empty((Q, R), dtype=W_aux.dtype)
    for j in range(R):
        for q in range(Q):
            t = j * Q + q
            W[q, j] = W_aux[t // n, t % n]
    return W


def unrelayout(W, *, m: int, n: int, perm=None) -> np.ndarray:
    """Inverse of the re-layout: put W (Q, R) back at its positions in W_aux (m, n).

    The m·n − Q·R unused positions are 0. ``relayout(unrelayout(W, m=m, n=n), Q=Q, R=R)`` is W
    (and likewise through :func:`reconstruct`'s shuffled path when ``perm`` is given).

    Taught in: 03_deepthin
    """
    W = np.asarray(W)
    if W.ndim != 2:
        raise ValueError(f"W must be 2-D (Q, R), got shape {W.shape}; transpose a torch Linear.weight (out, in) to "
                         "(in, out) first")
    check_finite(W, name="W")  # the kernels' NaN / inf policy
    m, n = check_count("m", m), check_count("n", n)
    Q, R = W.shape
    _check_room(m, n, Q, R)
    flat = np.zeros(m * n, dtype=W.dtype)
    pos = flat_positions(Q, R) if perm is None else _check_perm(perm, m, n)[flat_positions(Q, R)]
    flat[pos] = W
    return flat.reshape(m, n)                          # (m·n,) → (m, n)


def shuffle_permutation(m: int, n: int, *, seed: int) -> np.ndarray:
    """The shuffled variant's fixed permutation of the m·n positions of W_aux, from ``seed``.

    Only the seed is stored (8 bytes); ``np.random.default_rng(seed)`` regenerates the same
    permutation on any machine with numpy ≥ 1.17.

    Returns
    -------
    perm : ndarray (m·n,) int64; W[q, j] = flat(W_aux)[perm[j·Q + q]].

    Taught in: 03_deepthin
    """
    m, n, seed = check_count("m", m), check_count("n", n), check_count("seed", seed, minimum=0)
    return np.random.default_rng(seed).permutation(m * n).astype(np.int64)


def reconstruct(Xf, Wf, *, Q: int, R: int, perm=None) -> np.ndarray:
    """Build the dense W (Q, R) from the factors: relayout(X^f·W^f), optionally shuffled.

    Parameters
    ----------
    Xf : array (m, r)
    Wf : array (r, n)
    Q, R : int
        Shape of W; needs m·n ≥ Q·R.
    perm : array (m·n,) or None
        The shuffled variant's permutation (:func:`shuffle_permutation`).

    Returns
    -------
    W : ndarray (Q, R) float32.

    Taught in: 03_deepthin
    """
    Xf, Wf, Q, R = _checked_factors(Xf, Wf, Q, R)
    m, n = Xf.shape[0], Wf.shape[1]
    _check_room(m, n, Q, R)
    W_aux = Xf @ Wf
    if perm is None:
        return relayout(W_aux, Q=Q, R=R)
    flat = W_aux.reshape(-1)[_check_perm(perm, m, n)[: Q * R]]   # (m, n) → (m·n,) → shuffled first Q·R
    return np.ascontiguousarray(flat.reshape(R, Q).T)           # (Q·R,) → (R, Q) → (Q, R)


def reconstruct_reference(Xf, Wf, *, Q: int, R: int, perm=None) -> np.ndarray:
    """Loop reference for :func:`reconstruct`: each W entry is one dot product of a row of
    X^f with a column of W^f.

    Taught in: 03_deepthin
    """
    Xf, Wf = np.asarray(Xf, dtype=np.float64), np.asarray(Wf, dtype=np.float64)
    n = Wf.shape[1]
    W = np.empty((Q, R))
    for j in range(R):
        for q in range(Q):
            t = j * Q + q if perm is None else int(perm[j * Q + q])
            W[q, j] = sum(Xf[t // n, k] * Wf[k, t % n] for k in range(Xf.shape[1]))
    return W.astype(np.float32)


def glorot_std(Q: int, R: int) -> float:
    """Glorot / Xavier standard deviation for W (Q, R): √(2 / (Q + R)).

    Taught in: 03_deepthin
    """
    return float(np.sqrt(2.0 / (check_count("Q", Q) + check_count("R", R))))


def he_std(Q: int) -> float:
    """He standard deviation for a ReLU layer with Q inputs: √(2 / Q).

    Taught in: 03_deepthin
    """
    return float(np.sqrt(2.0 / check_count("Q", Q)))


def init_factors(m: int, n: int, r: int, *, target_std: float, rng) -> tuple[np.ndarray, np.ndarray]:
    """The paper's initialisation: X^f ~ N(0, σ²) and W^f ~ N(0, 1/r), with σ = target_std.

    Each W_aux entry is a sum of r independent products X^f[i, k]·W^f[k, b] of zero-mean
    factors, so Var(W_aux) = r · σ² · (1/r) = σ²: the re-laid-out W starts with entries of
    standard deviation ``target_std`` whatever the rank, e.g. ``glorot_std(Q, R)`` or
    ``he_std(Q)`` for the dense layer it replaces. (The entries are not Gaussian for small r:
    a sum of r products is heavier-tailed; only the variance is matched.)

    Parameters
    ----------
    m, n, r : int
        X^f is (m, r), W^f is (r, n).
    target_std : float
        Wanted standard deviation of every W entry (> 0).
    rng : numpy.random.Generator or int
        Source of randomness (an int is used as a seed).

    Returns
    -------
    Xf : ndarray (m, r) float32
    Wf : ndarray (r, n) float32

    Taught in: 03_deepthin
    """
    m, n, r = check_count("m", m), check_count("n", n), check_count("r", r)
    if not _is_real(target_std):
        raise TypeError(f"target_std={target_std!r} must be a real number, e.g. glorot_std(Q, R) or he_std(Q)")
    if not (rng is None or isinstance(rng, np.random.Generator) or _is_int(rng)):
        raise TypeError(f"rng={rng!r} must be a numpy Generator or an int seed, e.g. np.random.default_rng(0)")
    if not np.isfinite(target_std) or target_std <= 0:
        raise ValueError(f"target_std={target_std} must be a positive finite number, "
                         f"e.g. glorot_std(Q, R) or he_std(Q)")
    rng = np.random.default_rng(rng)
    Xf = rng.normal(0.0, float(target_std), size=(m, r)).astype(np.float32)
    Wf = rng.normal(0.0, 1.0 / np.sqrt(r), size=(r, n)).astype(np.float32)
    return Xf, Wf
