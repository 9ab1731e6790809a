"""HashedNets (Chen et al. 2015): a (Q, R) weight matrix drawn from a few shared buckets by hashing.

``W[i, j] = sign(i, j) · buckets[h(i, j)]``: only the ``n_buckets`` values and
a seed are stored; the index ``h`` and the ±1 ``sign`` (which makes the
collisions cancel on average) are recomputed from (row, col, seed).

The hash is splitmix64's finaliser (Steele et al. 2014) applied to the position
key ``row · 2³² + col`` XOR a per-seed constant, in uint64 numpy arithmetic
(wrapping multiplication), over the whole (Q, R) grid at once. The index and
sign hashes use two different seed constants. Chen et al. use xxHash; any
well-mixed hash gives the same statistics. A position's index does not depend
on Q or R.

Gradients: since ``W = sign ⊙ buckets[h]``, ``dL/dbuckets[k] = Σ_{h(i,j)=k} sign(i, j) · dL/dW[i, j]``,
a scatter-add (:func:`bucket_grad`).

Taught in: 03_deepthin
"""
from __future__ import annotations

import math

import numpy as np

from thinlab._validate import as_weight, check_int, check_real, round_up
from thinlab.size import SEED_BYTES, dense_bytes, dtype_bytes, shape_bytes

_M64 = (1 << 64) - 1
_GOLDEN = 0x9E3779B97F4A7C15  # splitmix64's increment: ⌊2⁶⁴ / φ⌋
_MUL1, _MUL2 = 0xBF58476D1CE4E5B9, 0x94D049BB133111EB
_SHAPE_QR = shape_bytes((1, 1))  # two uint32 dims; the cost does not depend on Q and R


def _mix(z):
    """splitmix64 finaliser on uint64 arrays (multiplication wraps mod 2⁶⁴)."""
    z = (z ^ (z >> np.uint64(30))) * np.uint64(_MUL1)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(_MUL2)
    return z ^ (z >> np.uint64(31))


def _mix_int(z: int) -> int:
    """splitmix64 finaliser on one Python int (the reference's version of :func:`_mix`)."""
    z = ((z ^ (z >> 30)) * _MUL1) & _M64
    z = ((z ^ (z >> 27)) * _MUL2) & _M64
    return z ^ (z >> 31)


def _seed_constants(seed: int) -> tuple[int, int]:
    """The index hash's and the sign hash's 64-bit constants: splitmix64 outputs 1 and 2 from ``seed``."""
    return _mix_int((seed + _GOLDEN) & _M64), _mix_int((seed + 2 * _GOLDEN) & _M64)


def _check_shape(Q, R) -> tuple[int, int]:
    hint = "pass the layer's (Q, R) = (in, out) sizes"
    return (check_int(Q, name="Q", low=1, high=2**32 - 1, hint=hint),
            check_int(R, name="R", low=1, high=2**32 - 1, hint=hint))


def hash_index(Q: int, R: int, *, n_buckets: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Bucket index and ±1 sign of every position of a (Q, R) matrix, from a seeded integer hash.

    Parameters
    ----------
    Q, R : int ≥ 1, the matrix shape (in, out)
    n_buckets : int in [1, Q · R]
    seed : int in [0, 2⁶⁴)

    Returns
    -------
    idx : ndarray of int64, shape (Q, R), values in [0, n_buckets)
    sign : ndarray of float32, shape (Q, R), values ±1

    Taught in: 03_deepthin
    """
    Q, R = _check_shape(Q, R)
    seed = check_int(seed, name="seed", low=0, high=_M64, hint="pass a fixed non-negative integer, e.g. seed=0")
    n_buckets = check_int(n_buckets, name="n_buckets", low=1, high=Q * R,
                          hint=f"a ({Q}, {R}) layer has {Q * R} weights; use fewer buckets than weights")
    c_index, c_sign = _seed_constants(seed)
    key = (np.arange(Q, dtype=np.uint64)[:, None] << np.uint64(32)) | np.arange(R, dtype=np.uint64)  # (Q, R)
    idx = (_mix(key ^ np.uint64(c_index)) % np.uint64(n_buckets)).astype(np.int64)
    negative = (_mix(key ^ np.uint64(c_sign)) >> np.uint64(63)).astype(bool)  # top bit
    return idx, np.where(negative, np.float32(-1), np.float32(1))


def hash_index_reference(Q: int, R: int, *, n_buckets: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Loop reference for :func:`hash_index`, one position at a time in Python integers.

    Taught in: 03_deepthin
    """
    c_index, c_sign = _seed_constants(seed)
    idx = np.zeros((Q, R), dtype=np.int64)
    sign = np.ones((Q, R), dtype=np.float32)
    for i in range(Q):
        for j in range(R):
            key = (i << 32) | j
            idx[i, j] = _mix_int(key ^ c_index) % n_buckets
            sign[i, j] = -1.0 if _mix_int(key ^ c_sign) >> 63 else 1.0
    return idx, sign


def hashed_weight(buckets, *, Q: int, R: int, seed: int) -> np.ndarray:
    """Expand shared ``buckets`` into the (Q, R) weight ``W[i, j] = sign[i, j] · buckets[idx[i, j]]``.

    Parameters
    ----------
    buckets : ndarray of float, shape (n_buckets,)
    Q, R : int, the weight's shape (in, out)
    seed : int, the same seed every time for the same layer

    Returns
    -------
    W : ndarray, shape (Q, R), dtype of ``buckets``

    Taught in: 03_deepthin
    """
    buckets = as_weight(buckets, name="buckets", ndim=1, hint="(n_buckets,); pass the 1-D vector of shared values")
    idx, sign = hash_index(Q, R, n_buckets=buckets.size, seed=seed)
    return sign.astype(buckets.dtype) * buckets[idx]


def bucket_grad(dW, *, n_buckets: int, seed: int) -> np.ndarray:
    """Gradient w.r.t. the buckets from the gradient w.r.t. W: scatter-add ``sign · dW`` by bucket.

    Parameters
    ----------
    dW : ndarray of float, shape (Q, R), ``dL/dW``
    n_buckets : int
    seed : int, the layer's seed

    Returns
    -------
    ndarray, shape (n_buckets,), dtype of ``dW``: ``dL/dbuckets``

    Taught in: 03_deepthin
    """
    dW = as_weight(dW, name="dW", ndim=2, hint="(Q, R); pass dL/dW, the gradient w.r.t. the expanded W")
    idx, sign = hash_index(*dW.shape, n_buckets=n_buckets, seed=seed)
    grad = np.bincount(idx.ravel(), weights=(sign * dW).ravel(), minlength=n_buckets)  # (Q, R) → (Q * R,)
    return grad.astype(dW.dtype)


def bucket_grad_reference(dW, *, n_buckets: int, seed: int) -> np.ndarray:
    """Loop reference for :func:`bucket_grad`: add each position's signed gradient to its bucket.

    Taught in: 03_deepthin
    """
    idx, sign = hash_index_reference(*dW.shape, n_buckets=n_buckets, seed=seed)
    grad = np.zeros(n_buckets, dtype=np.float64)
    for i in range(dW.shape[0]):
        for j in range(dW.shape[1]):
            grad[idx[i, j]] += float(sign[i, j]) * float(dW[i, j])
    return grad.astype(dW.dtype)


def hashed_bytes(n_buckets: int, *, dtype="float32") -> int:
    """Bytes of a hashed layer: the bucket values, the seed (uint64) and the (Q, R) shape.

    Taught in: 03_deepthin
    """
    n_buckets = check_int(n_buckets, name="n_buckets", low=1, hint="pass the number of shared values")
    return n_buckets * dtype_bytes(dtype) + SEED_BYTES + _SHAPE_QR


def buckets_for_size_fraction(Q: int, R: int, *, size_fraction: float, dtype="float32") -> int:
    """Most buckets whose :func:`hashed_bytes` fit in ``size_fraction`` of the dense (Q, R) bytes.

    Parameters
    ----------
    Q, R : int, the layer's shape (in, out)
    size_fraction : float in (0, 1], compressed / dense bytes (the paper's α; 1/64 for "64x")
    dtype : numpy dtype of the buckets (and of the dense reference)

    Returns
    -------
    n_buckets : int in [1, Q · R]

    Taught in: 03_deepthin
    """
    Q, R = _check_shape(Q, R)
    alpha = check_real(size_fraction, name="size_fraction", low=0.0, high=1.0, low_open=True,
                       hint="pass compressed / dense bytes, e.g. 1/64 for 64x")
    dense = dense_bytes((Q, R), dtype=dtype)
    n = min(int((alpha * dense - SEED_BYTES - _SHAPE_QR) // dtype_bytes(dtype)), Q * R)
    if n < 1:
        need = hashed_bytes(1, dtype=dtype)
        raise ValueError(f"size_fraction={size_fraction} gives {math.floor(alpha * dense):,} bytes for a ({Q}, {R}) "
                         f"layer but one bucket plus seed and shape take {need}; "
                         f"use size_fraction ≥ {round_up(need / dense):.3g} or hash a larger layer")
    return n
