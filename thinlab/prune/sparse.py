"""Storing a pruned layer: CSR (values + column indices + row pointers) or values + a packed bitmask.

Bytes are counted as a file stores them: values at their dtype, CSR column
indices at the smallest unsigned width that addresses ``n_cols`` columns, row
pointers at the smallest width that holds ``nnz``, masks at one bit per weight,
plus the shape. ``csr_bytes`` / ``masked_bytes`` equal ``.nbytes`` of what
``csr_encode`` / ``masked_encode`` produce.

Taught in: 01_pruning
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from thinlab._validate import as_weight, check_finite, check_int
from thinlab.size import bitmask_bytes, dense_bytes, dtype_bytes, index_bytes, index_dtype, shape_bytes

_CSR_HINT = "(rows, cols); reshape a conv weight (out, in, kh, kw) to (out, in * kh * kw) first"


@dataclass(frozen=True, eq=False)
class CSR:
    """A 2-D array in compressed sparse row form.

    Attributes
    ----------
    data : ndarray, shape (nnz,), the nonzero values row by row, at the weight's dtype
    indices : ndarray of uint, shape (nnz,), column of each value, at ``index_dtype(n_cols - 1)``
    indptr : ndarray of uint, shape (n_rows + 1,), row ``i`` is ``data[indptr[i]:indptr[i + 1]]``,
        at ``index_dtype(nnz)``
    shape : tuple (n_rows, n_cols)

    Taught in: 01_pruning
    """

    data: np.ndarray
    indices: np.ndarray
    indptr: np.ndarray
    shape: tuple

    @property
    def nnz(self) -> int:
        return int(self.data.size)

    @property
    def nbytes(self) -> int:
        """Bytes of the three arrays plus the shape."""
        return self.data.nbytes + self.indices.nbytes + self.indptr.nbytes + shape_bytes(self.shape)


def csr_encode(W) -> CSR:
    """Encode the nonzeros of a 2-D ``W`` as :class:`CSR` with indices at their real width.

    Parameters
    ----------
    W : ndarray of float, shape (n_rows, n_cols)

    Returns
    -------
    CSR

    Taught in: 01_pruning
    """
    W = as_weight(W, ndim=2, hint=_CSR_HINT)
    n_rows, n_cols = W.shape
    rows, cols = np.nonzero(W)  # row-major order: row by row, columns ascending
    indptr = np.zeros(n_rows + 1, dtype=index_dtype(rows.size))
    indptr[1:] = np.cumsum(np.bincount(rows, minlength=n_rows))
    return CSR(data=W[rows, cols], indices=cols.astype(index_dtype(n_cols - 1)), indptr=indptr,
               shape=(n_rows, n_cols))


def csr_encode_reference(W) -> CSR:
    """Loop reference for :func:`csr_encode`: walk the rows, append each nonzero.

    Taught in: 01_pruning
    """
    data, indices, indptr = [], [], [0]
    for row in W:
        for j, w in enumerate(row):
            if w != 0:
                data.append(w)
                indices.append(j)
        indptr.append(len(data))
    return CSR(data=np.array(data, dtype=W.dtype), indices=np.array(indices, dtype=index_dtype(W.shape[1] - 1)),
               indptr=np.array(indptr, dtype=index_dtype(len(data))), shape=W.shape)


def check_csr(csr: CSR) -> None:
    """Raise unless ``csr`` is a consistent :class:`CSR`: 1-D arrays of matching lengths, integer
    indices, row pointers from 0 rising to nnz, column indices inside the shape, finite values.

    Taught in: 01_pruning
    """
    if not isinstance(csr, CSR):
        raise TypeError(f"csr must be a CSR (from csr_encode), got {type(csr).__name__}; encode with csr_encode(W)")
    n_rows, n_cols = _shape2d(csr.shape)
    data, indices, indptr = (np.asarray(a) for a in (csr.data, csr.indices, csr.indptr))
    fix = "re-encode the weights with csr_encode(W)"
    if data.ndim != 1 or indices.ndim != 1 or indptr.ndim != 1:
        raise ValueError(f"CSR arrays must be 1-D; got data {data.shape}, indices {indices.shape}, indptr "
                         f"{indptr.shape}; {fix}")
    if indices.dtype.kind not in "iu" or indptr.dtype.kind not in "iu":
        raise TypeError(f"CSR indices and indptr must be integer arrays, got {indices.dtype} and {indptr.dtype}; {fix}")
    if data.dtype.kind not in "fiu" or data.dtype == bool:
        raise TypeError(f"CSR data must be numbers, got dtype {data.dtype}; {fix}")
    if indices.size != data.size or indptr.size != n_rows + 1:
        raise ValueError(f"CSR of shape {(n_rows, n_cols)} needs len(indices) = len(data) and len(indptr) = "
                         f"{n_rows + 1}; got {indices.size}, {data.size} and {indptr.size}; {fix}")
    ptr = indptr.astype(np.int64)
    if ptr[0] != 0 or ptr[-1] != data.size or (np.diff(ptr) < 0).any():
        raise ValueError(f"CSR indptr must rise from 0 to nnz = {data.size}; got {ptr[0]} … {ptr[-1]}"
                         f"{' with a decrease' if (np.diff(ptr) < 0).any() else ''}; {fix}")
    if indices.size and (int(indices.min()) < 0 or int(indices.max()) >= n_cols):
        raise ValueError(f"CSR column indices must lie in [0, {n_cols - 1}]; got [{indices.min()}, {indices.max()}]; "
                         f"{fix}")
    check_finite(data, name="csr.data")


def csr_decode(csr: CSR) -> np.ndarray:
    """Dense array of shape ``csr.shape`` (and dtype ``csr.data.dtype``) with the stored values filled in.

    Taught in: 01_pruning
    """
    check_csr(csr)
    out = np.zeros(csr.shape, dtype=csr.data.dtype)
    rows = np.repeat(np.arange(csr.shape[0]), np.diff(csr.indptr.astype(np.int64)))  # row of each value
    out[rows, csr.indices.astype(np.intp)] = csr.data
    return out


def _shape(shape) -> tuple[int, ...]:
    return tuple(check_int(d, name="each dimension of shape", low=1, hint="pass the weight's .shape")
                 for d in tuple(shape))


def _shape2d(shape) -> tuple[int, int]:
    if len(tuple(shape)) != 2:
        raise ValueError(f"shape={tuple(shape)} must be 2-D (n_rows, n_cols); {_CSR_HINT}")
    return _shape(shape)


def _nnz(nnz, size: int) -> int:
    return check_int(nnz, name="nnz", low=0, high=size, hint="pass the number of nonzero weights kept")


def csr_bytes(shape, nnz: int, *, value_dtype="float32") -> int:
    """Bytes of a (n_rows, n_cols) array with ``nnz`` nonzeros in CSR.

    ``nnz * value + nnz * index_bytes(n_cols - 1) + (n_rows + 1) * index_bytes(nnz) + shape``.

    Parameters
    ----------
    shape : tuple (n_rows, n_cols)
    nnz : int in [0, n_rows * n_cols]
    value_dtype : numpy dtype of the stored values

    Taught in: 01_pruning
    """
    n_rows, n_cols = _shape2d(shape)
    nnz = _nnz(nnz, n_rows * n_cols)
    return (nnz * (dtype_bytes(value_dtype) + index_bytes(n_cols - 1))
            + (n_rows + 1) * index_bytes(nnz) + shape_bytes(shape))


def csr_break_even_density(shape, *, value_dtype="float32") -> float:
    """Largest density ``nnz / size`` at which CSR takes no more bytes than the dense values.

    CSR bytes rise with nnz, so the answer is the largest nnz that fits; it is
    solved in closed form for each possible row-pointer width (1, 2, 4, 8 bytes).

    Parameters
    ----------
    shape : tuple (n_rows, n_cols)
    value_dtype : numpy dtype of both the dense and the CSR values

    Returns
    -------
    float in [0, 1]: CSR saves bytes only below this density (≈ 4/6 for float32 values with uint16 column indices).

    Taught in: 01_pruning
    """
    n_rows, n_cols = _shape2d(shape)
    budget = dense_bytes(shape, dtype=value_dtype) - shape_bytes(shape)
    per_nonzero = dtype_bytes(value_dtype) + index_bytes(n_cols - 1)
    best = -1
    for ptr_dtype in (np.uint8, np.uint16, np.uint32, np.uint64):
        ptr_width = np.dtype(ptr_dtype).itemsize
        fits = (budget - (n_rows + 1) * ptr_width) // per_nonzero  # most nnz if pointers were this wide
        best = max(best, min(fits, int(np.iinfo(ptr_dtype).max), n_rows * n_cols))
    if best < 0:
        raise ValueError(f"CSR never fits in the {dense_bytes(shape, dtype=value_dtype)} dense bytes of shape "
                         f"{(n_rows, n_cols)}: even with no nonzeros it needs {csr_bytes(shape, 0)} bytes "
                         "(row pointers + shape); store such a small layer dense")
    return best / (n_rows * n_cols)


def csr_break_even_density_reference(shape, *, value_dtype="float32") -> float:
    """Loop reference for :func:`csr_break_even_density`: try every nnz.

    Taught in: 01_pruning
    """
    size = shape[0] * shape[1]
    fitting = [nnz for nnz in range(size + 1)
               if csr_bytes(shape, nnz, value_dtype=value_dtype) <= dense_bytes(shape, dtype=value_dtype)]
    return max(fitting) / size


@dataclass(frozen=True, eq=False)
class Masked:
    """A pruned array stored as its kept values plus a 1-bit-per-weight mask.

    Attributes
    ----------
    values : ndarray, shape (nnz,), the nonzero values in row-major order
    bits : ndarray of uint8, shape (ceil(size / 8),), the mask packed big-endian (``np.packbits``)
    shape : tuple, the array's shape

    Taught in: 01_pruning
    """

    values: np.ndarray
    bits: np.ndarray
    shape: tuple

    @property
    def nbytes(self) -> int:
        """Bytes of the values, the packed mask and the shape."""
        return self.values.nbytes + self.bits.nbytes + shape_bytes(self.shape)


def masked_encode(W) -> Masked:
    """Encode ``W`` (any shape) as its nonzero values plus a packed bitmask of where they go.

    Taught in: 01_pruning
    """
    W = as_weight(W)
    nonzero = (W != 0).ravel()  # W.shape → (size,)
    return Masked(values=W.ravel()[nonzero], bits=np.packbits(nonzero), shape=W.shape)


def masked_encode_reference(W) -> Masked:
    """Loop reference for :func:`masked_encode`: set bit ``7 - i % 8`` of byte ``i // 8`` for each nonzero.

    Taught in: 01_pruning
    """
    flat = np.asarray(W).ravel()
    bits = np.zeros(-(-flat.size // 8), dtype=np.uint8)
    values = []
    for i, w in enumerate(flat):
        if w != 0:
            bits[i // 8] |= 1 << (7 - i % 8)
            values.append(w)
    return Masked(values=np.array(values, dtype=flat.dtype), bits=bits, shape=np.shape(W))


def masked_decode(masked: Masked) -> np.ndarray:
    """Dense array of shape ``masked.shape`` with the values put back where the mask is set.

    Taught in: 01_pruning
    """
    if not isinstance(masked, Masked):
        raise TypeError(f"masked must be a Masked (from masked_encode), got {type(masked).__name__}")
    shape = _shape(masked.shape)
    size = int(np.prod(shape, dtype=np.int64))
    bits, values = np.asarray(masked.bits), np.asarray(masked.values)
    if bits.dtype != np.uint8 or bits.shape != (-(-size // 8),):
        raise ValueError(f"masked.bits must be uint8 of shape ({-(-size // 8)},) for shape {shape}; got {bits.dtype} "
                         f"{bits.shape}; re-encode with masked_encode(W)")
    nonzero = np.unpackbits(bits, count=size).astype(bool)
    if values.ndim != 1 or values.size != int(nonzero.sum()):
        raise ValueError(f"masked.values has shape {values.shape} but the mask sets {int(nonzero.sum())} positions; "
                         "re-encode with masked_encode(W)")
    check_finite(values, name="masked.values")
    out = np.zeros(size, dtype=values.dtype)
    out[nonzero] = values
    return out.reshape(shape)  # (size,) → shape


def masked_bytes(shape, nnz: int, *, value_dtype="float32") -> int:
    """Bytes of an array of ``shape`` stored as ``nnz`` values + a packed bitmask + the shape.

    ``nnz * value + ceil(size / 8) + shape``. Beats CSR when the density is high,
    since one bit per weight is cheaper than one index per nonzero.

    Taught in: 01_pruning
    """
    shape = _shape(shape)
    size = int(np.prod(shape, dtype=np.int64))
    nnz = _nnz(nnz, size)
    return nnz * dtype_bytes(value_dtype) + bitmask_bytes(size) + shape_bytes(shape)


def nnz_for_budget(shape, budget: float, *, storage: str = "csr", value_dtype="float32") -> int:
    """Most nonzeros a (rows, cols) matrix may keep so that its stored bytes fit ``budget``.

    ``storage="csr"`` counts :func:`csr_bytes`, ``"bitmask"`` :func:`masked_bytes`; both grow with
    nnz, so a binary search over 0 … rows·cols finds the largest nnz that fits (0 if none does).

    Taught in: 01_pruning, 03_deepthin
    """
    rows, cols = _shape2d(shape)
    if storage not in ("csr", "bitmask"):
        raise ValueError(f"storage={storage!r}; choose 'csr' or 'bitmask'")
    if not np.isfinite(budget):
        raise ValueError(f"budget={budget!r} must be a finite number of bytes")
    cost = csr_bytes if storage == "csr" else masked_bytes
    lo, hi = 0, rows * cols
    while lo < hi:
        mid = (lo + hi + 1) // 2
        lo, hi = (mid, hi) if cost((rows, cols), mid, value_dtype=value_dtype) <= budget else (lo, mid - 1)
    return lo
