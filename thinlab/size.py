"""Honest bytes: the storage cost of every weight representation in the course.

Primitives shared by every kernel module (each kernel module owns the byte
formula of its own representation and builds it from these), plus the
per-layer report for a whole model. Counts are what a real file stores:
values at their dtype width, indices at the smallest unsigned width that can
address the shape, masks as bits, codebooks, scales, zero points, seeds and
shapes.

Taught in: all lessons (first in 01_pruning).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

#: bytes used to record a tensor's shape: one uint32 per dimension
SHAPE_DIM_BYTES = 4
#: bytes of a hash / shuffle seed (uint64)
SEED_BYTES = 8


#: 16-bit formats numpy does not name: bfloat16 keeps float32's exponent in 2 bytes
_EXTRA_WIDTHS = {"bfloat16": 2, "bf16": 2}


def dtype_bytes(dtype) -> int:
    """Width in bytes of one element of ``dtype``: a numpy dtype or name (``"float32"`` → 4), a torch
    dtype (``torch.float16`` → 2), or ``"bfloat16"`` (2), which numpy does not know.

    Taught in: 01_pruning, 05_fp16_transfer
    """
    name = str(dtype).replace("torch.", "")
    if name in _EXTRA_WIDTHS:
        return _EXTRA_WIDTHS[name]
    try:
        return int(np.dtype(name if not isinstance(dtype, (np.dtype, type)) else dtype).itemsize)
    except TypeError as exc:
        raise TypeError(f"dtype={dtype!r} is not a dtype thinlab can size; use a numpy or torch dtype such as "
                        "'float32', 'float16', 'int8' or 'bfloat16'") from exc


def index_dtype(n_values: int) -> np.dtype:
    """Smallest unsigned integer dtype that can hold every index in ``range(n_values + 1)``.

    The ``+ 1`` lets a CSR row pointer hold the end offset ``nnz``.

    Taught in: 01_pruning … 06_pipeline
    """
    n_values = int(n_values)
    if n_values < 0:
        raise ValueError(f"n_values={n_values} must be ≥ 0")
    for dt in (np.uint8, np.uint16, np.uint32, np.uint64):
        if n_values <= np.iinfo(dt).max:
            return np.dtype(dt)
    raise ValueError(f"n_values={n_values} does not fit in uint64")


def index_bytes(n_values: int) -> int:
    """Bytes of one index that addresses ``range(n_values + 1)`` (see :func:`index_dtype`). Taught in: 01_pruning … 06_pipeline"""
    return int(index_dtype(n_values).itemsize)


def dense_bytes(shape, *, dtype="float32") -> int:
    """Bytes of a dense array of ``shape`` stored at ``dtype`` (values only). Taught in: 01_pruning … 06_pipeline"""
    return int(np.prod(shape, dtype=np.int64)) * dtype_bytes(dtype)


def shape_bytes(shape) -> int:
    """Bytes to record ``shape`` itself (one uint32 per dimension). Taught in: 01_pruning … 06_pipeline"""
    return SHAPE_DIM_BYTES * len(tuple(shape))


def bitmask_bytes(n: int) -> int:
    """Bytes of a packed 1-bit-per-element mask over ``n`` elements. Taught in: 01_pruning … 06_pipeline"""
    return math.ceil(int(n) / 8)


def packed_bits_bytes(n: int, n_bits: int) -> int:
    """Bytes of ``n`` codes of ``n_bits`` each, packed densely. Taught in: 01_pruning … 06_pipeline"""
    return math.ceil(int(n) * int(n_bits) / 8)


@dataclass
class LayerSize:
    """One row of a size report: a layer, how it is stored, and its bytes. Taught in: 01_pruning … 06_pipeline"""

    name: str
    method: str
    n_params: int
    bytes: int
    dense_bytes: int
    detail: dict = field(default_factory=dict)

    @property
    def size_fraction(self) -> float:
        """Compressed / original bytes (the DeepThin paper's α)."""
        return self.bytes / self.dense_bytes if self.dense_bytes else 1.0


@dataclass
class SizeReport:
    """Per-layer byte report for a whole model; ``total`` counts every layer. Taught in: 01_pruning … 06_pipeline"""

    layers: list[LayerSize]

    @property
    def total_bytes(self) -> int:
        return sum(layer.bytes for layer in self.layers)

    @property
    def dense_bytes(self) -> int:
        return sum(layer.dense_bytes for layer in self.layers)

    @property
    def size_fraction(self) -> float:
        return self.total_bytes / self.dense_bytes if self.dense_bytes else 1.0

    def factor(self) -> str:
        """The compression factor 1/size_fraction, printed as in reports ("37.5x")."""
        return format_factor(self.size_fraction)

    def rows(self) -> list[dict]:
        """Plain dict rows (for a pandas DataFrame or a chart)."""
        return [
            {"layer": l.name, "method": l.method, "params": l.n_params, "bytes": l.bytes,
             "dense_bytes": l.dense_bytes, "size_fraction": l.size_fraction, **l.detail}
            for l in self.layers
        ]

    def __str__(self) -> str:
        lines = [f"{'layer':<24}{'method':<14}{'params':>10}{'bytes':>12}{'factor':>9}"]
        for l in self.layers:
            lines.append(f"{l.name:<24}{l.method:<14}{l.n_params:>10,}{l.bytes:>12,}"
                         f"{format_factor(l.size_fraction):>9}")
        lines.append(f"{'total':<24}{'':<14}{sum(l.n_params for l in self.layers):>10,}"
                     f"{self.total_bytes:>12,}{self.factor():>9}")
        return "\n".join(lines)


def share_budget(dense: dict, floor: dict, budget: float) -> tuple[float, set]:
    """Share ``budget`` bytes over layers as one common fraction of their dense bytes.

    A layer whose ``floor`` (its smallest possible bytes) is above ``common · dense`` is pinned
    at its floor and the others share what is left; repeated until no free layer is below its
    floor. The caller checks that ``budget`` covers every floor.

    Returns ``(common, pinned)``: the fraction the free layers get and the names pinned.

    Taught in: 03_deepthin
    """
    pinned: set = set()
    while True:
        free = [k for k in dense if k not in pinned]
        common = (budget - sum(floor[k] for k in pinned)) / sum(dense[k] for k in free) if free else 0.0
        stuck = {k for k in free if floor[k] > common * dense[k]}
        if not stuck:
            return common, pinned
        pinned |= stuck


def format_factor(size_fraction: float) -> str:
    """Print the compression factor ``1/size_fraction`` the course's way: ``"100x"``. Taught in: 01_pruning … 06_pipeline"""
    if size_fraction <= 0:
        raise ValueError(f"size_fraction={size_fraction} must be > 0")
    f = 1.0 / size_fraction
    return f"{f:.0f}x" if f >= 10 else f"{f:.2g}x" if f >= 1 else f"{f:.2f}x"
