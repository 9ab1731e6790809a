"""Greedy multi-bit (residual) binarisation: ``W ≈ Σ_i α_i · b_i`` with ``b_i ∈ {-1, +1}``.

Greedy (Guo et al. 2017, "Network sketching"): binarise the residual, one bit at a time::

    r_0 = W;    b_i = sign(r_i) (sign 0 → +1);    α_i = mean |r_i|;    r_{i+1} = r_i - α_i b_i

Each step lowers ||r||² by N·α_i², so the error never grows with more bits. Refinement then keeps
the b's and solves the α by least squares, ``min_α ||W - B α||²`` (never worse than greedy: the
greedy α is one candidate). Optional alternating rounds (Xu et al. 2018, "Alternating multi-bit
quantization") re-pick every weight's sign pattern as the nearest of the 2**n values Σ ±α_i and
re-solve the α; each half-step cannot increase the error.

The α are stored as float32 (and used at that precision); each b_i as one bit per weight.

Taught in: 04_quantization
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from thinlab._validate import as_float64_weights, check_finite, check_int_range
from thinlab.size import bitmask_bytes, shape_bytes

#: bytes of one stored α (float32)
ALPHA_BYTES = 4


@dataclass(frozen=True, eq=False)
class MultiBit:
    """``W ≈ Σ_i alphas[i] · (2·bits[i] - 1)``.

    Attributes
    ----------
    bits : bool array (n_bits, *shape); True means +1, False −1.
    alphas : float32 array (n_bits,).
    shape : the original tensor's shape.

    Taught in: 04_quantization
    """

    bits: np.ndarray
    alphas: np.ndarray
    shape: tuple

    @property
    def n_bits(self) -> int:
        """Number of binary planes. Taught in: 04_quantization"""
        return len(self.alphas)


def _check_multibit(m) -> None:
    if not isinstance(m, MultiBit):
        raise TypeError(f"expected a MultiBit from multibit_quantize, got {type(m).__name__}")
    bits, alphas = np.asarray(m.bits), np.asarray(m.alphas)
    if alphas.ndim != 1 or bits.dtype != bool or bits.shape != (alphas.size,) + tuple(m.shape):
        raise ValueError(f"MultiBit has bits {bits.dtype} {bits.shape} and alphas {alphas.shape} for shape "
                         f"{tuple(m.shape)}; expected bool bits (n_bits, *shape) as multibit_quantize returns")
    check_finite(alphas, name="alphas", what="values")


def _signs(bits: np.ndarray) -> np.ndarray:
    return np.where(bits, 1.0, -1.0)


def _least_squares_alphas(a: np.ndarray, bits: np.ndarray) -> np.ndarray:
    """α minimising ||a - Σ α_i s_i||² for sign planes ``bits`` (n, N); min-norm if rank deficient."""
    return np.linalg.lstsq(_signs(bits).T, a, rcond=None)[0]  # (N, n) design matrix


def _nearest_patterns(a: np.ndarray, alphas: np.ndarray) -> np.ndarray:
    """Optimal sign planes (n, N) for fixed α: each weight takes the nearest of the 2**n sums Σ ±α_i."""
    n = len(alphas)
    patterns = ((np.arange(2 ** n)[:, None] >> np.arange(n)[None, :]) & 1).astype(bool)  # (2**n, n)
    values = _signs(patterns) @ alphas.astype(np.float64)  # (2**n,)
    order = np.argsort(values)
    v = values[order]
    idx = order[np.searchsorted((v[:-1] + v[1:]) / 2, a)]  # (N,) nearest pattern, O(N · n)
    return patterns[idx].T  # (n, N)


def multibit_quantize(W, *, n_bits: int, refine: bool = True, n_alternate: int = 0) -> MultiBit:
    """Residual binarisation of ``W`` into ``n_bits`` scaled sign planes.

    Parameters
    ----------
    W : float array, any shape.
    n_bits : number of binary planes, 1..8.
    refine : after the greedy pass, re-solve all α by least squares given the b's.
    n_alternate : extra alternating rounds (optimal b's given α, then α by least squares).

    Returns
    -------
    :class:`MultiBit` with bits (n_bits, *W.shape) and float32 alphas (n_bits,).

    Taught in: 04_quantization
    """
    n_bits = check_int_range(n_bits, name="n_bits", lo=1, hi=8, hint="1 = binary weights ±α; e.g. n_bits=2")
    if not isinstance(refine, (bool, np.bool_)):
        raise TypeError(f"refine={refine!r} must be True or False")
    n_alternate = check_int_range(n_alternate, name="n_alternate", lo=0, hi=1000, hint="e.g. n_alternate=5")
    a_full = as_float64_weights(W)
    a = a_full.ravel()  # (N,)
    if np.abs(a).max() > np.finfo(np.float32).max / 2:
        raise ValueError(f"W holds magnitudes up to {np.abs(a).max():.3g}, beyond float32 (the α are stored as float32); "
                         "rescale W first, e.g. W / np.abs(W).max()")
    bits = np.empty((n_bits, a.size), dtype=bool)  # (n_bits, N)
    alphas = np.empty(n_bits, dtype=np.float32)
    r = a.copy()
    for i in range(n_bits):  # one greedy step per bit plane
        bits[i] = r >= 0
        alphas[i] = np.mean(np.abs(r))  # stored as float32 and used at that precision below
        r -= float(alphas[i]) * _signs(bits[i])
    if refine or n_alternate:
        alphas = _least_squares_alphas(a, bits).astype(np.float32)
    for _ in range(n_alternate):  # Xu et al.'s alternating minimisation
        bits = _nearest_patterns(a, alphas)
        alphas = _least_squares_alphas(a, bits).astype(np.float32)
    return MultiBit(bits=bits.reshape((n_bits,) + a_full.shape), alphas=alphas,  # (n_bits, N) → (n_bits, *shape)
                    shape=tuple(a_full.shape))


def multibit_dequantize(m: MultiBit) -> np.ndarray:
    """``Σ_i α_i (2 b_i - 1)`` as float32 of shape ``m.shape`` (summed in float64). Taught in: 04_quantization"""
    _check_multibit(m)
    a = m.alphas.astype(np.float64).reshape((-1,) + (1,) * len(m.shape))  # (n,) → (n, 1, ..., 1)
    return (a * _signs(m.bits)).sum(axis=0).astype(np.float32)


def multibit_bytes(m: MultiBit) -> int:
    """Bytes: one packed bit plane per b_i (as XNOR/popcount kernels store them) + float32 α + shape.

    Taught in: 04_quantization
    """
    _check_multibit(m)
    n = int(np.prod(m.shape, dtype=np.int64))
    return m.n_bits * bitmask_bytes(n) + ALPHA_BYTES * m.n_bits + shape_bytes(m.shape)


def multibit_quantize_reference(W, *, n_bits: int, refine: bool = True):
    """Slow, obviously correct greedy (+ least-squares) binarisation: ``(signs (n, N) of ±1, alphas (n,))``.

    Loops over weights; the least squares solve the normal equations (SᵀS) α = Sᵀ w.
    Taught in: 04_quantization
    """
    w = [float(x) for x in np.ravel(W)]
    r, signs, alphas = list(w), [], []
    for _ in range(n_bits):
        s = [1.0 if x >= 0 else -1.0 for x in r]
        alpha = float(np.float32(sum(abs(x) for x in r) / len(r)))
        r = [x - alpha * si for x, si in zip(r, s)]
        signs.append(s)
        alphas.append(alpha)
    S = np.array(signs)  # (n, N)
    if refine:
        alphas = np.linalg.lstsq(S @ S.T, S @ np.array(w), rcond=None)[0]  # (n, n) normal equations
    return S, np.array(alphas, dtype=np.float32)
