"""Uniform (linear) quantisation: asymmetric with a zero point, or symmetric; per tensor or per channel.

Asymmetric, range [lo, hi] widened to contain 0 so that 0 is exact::

    scale = (hi - lo) / (2**n - 1)      zero_point = round(-lo / scale)      (0 ≤ zero_point < 2**n)
    code  = clip(round(w / scale) + zero_point, 0, 2**n - 1)      w_hat = (code - zero_point) * scale

Symmetric, range [-c, c], zero point fixed at 0 (so it is not stored), "narrow" code range::

    scale = c / (2**(n-1) - 1)          code = clip(round(w / scale), -(2**(n-1) - 1), 2**(n-1) - 1)

Scales are stored as float32 (4 bytes each) and used at that precision. Per channel (``axis=k``)
there is one scale (and zero point) per index along axis ``k``. Inside the clipping range the
error is at most ``scale / 2``.

Taught in: 04_quantization
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from thinlab._validate import as_float64_weights, check_axis, check_finite, check_int_range, int_dtype, uint_dtype
from thinlab.quant.packing import pack_bits, unpack_bits
from thinlab.size import SHAPE_DIM_BYTES, packed_bits_bytes, shape_bytes

#: bytes of one stored scale (float32)
SCALE_BYTES = 4


@dataclass(frozen=True, eq=False)
class QTensor:
    """A uniformly quantised tensor.

    Attributes
    ----------
    codes : int array of ``shape``; uint8/uint16 (asymmetric) or int8/int16 (symmetric).
    scale : float32 array of shape ``()`` (per tensor) or ``(C,)`` with ``C = shape[axis]``.
    zero_point : int array shaped like ``scale`` (all 0 when symmetric; then not stored).
    n_bits : bits per code.   shape : the original tensor's shape.
    axis : channel axis or None.   symmetric : which scheme made it.

    Taught in: 04_quantization
    """

    codes: np.ndarray
    scale: np.ndarray
    zero_point: np.ndarray
    n_bits: int
    shape: tuple
    axis: int | None
    symmetric: bool


def code_range(*, n_bits: int, symmetric: bool) -> tuple[int, int]:
    """``(qmin, qmax)``: ``(0, 2**n - 1)`` asymmetric, ``(-(2**(n-1) - 1), 2**(n-1) - 1)`` symmetric.

    Taught in: 04_quantization
    """
    if not isinstance(symmetric, (bool, np.bool_)):
        raise TypeError(f"symmetric={symmetric!r} must be True or False")
    n_bits = check_int_range(n_bits, name="n_bits", lo=2 if symmetric else 1, hi=64, hint="e.g. n_bits=8")
    if symmetric:
        return -(2 ** (n_bits - 1) - 1), 2 ** (n_bits - 1) - 1
    return 0, 2 ** n_bits - 1


def _store_scale(raw: np.ndarray) -> np.ndarray:
    """float32 scales: at least the smallest normal float32 (subnormals lose precision); 1 for a zero range."""
    if not np.all(raw < np.finfo(np.float32).max):
        raise ValueError(f"a quantisation step of {np.max(raw):.3g} does not fit the float32 scale; "
                         "the weights' range exceeds float32: rescale W first")
    scale = np.maximum(raw, np.finfo(np.float32).tiny).astype(np.float32)
    return np.where(raw > 0, scale, np.float32(1.0))


def affine_params(lo, hi, *, n_bits: int) -> tuple[np.ndarray, np.ndarray]:
    """Asymmetric ``(scale float32, zero_point int64)`` for ranges ``[lo, hi]`` (arrays broadcast).

    The range is first widened to contain 0; a zero-width range gets scale 1 (all codes equal the
    zero point, which dequantises to exactly 0). Taught in: 04_quantization
    """
    n_bits = check_int_range(n_bits, name="n_bits", lo=1, hi=16, hint="e.g. n_bits=8")
    lo, hi = _range_array(lo, "lo"), _range_array(hi, "hi")
    if (lo > hi).any():
        raise ValueError("affine_params needs lo ≤ hi for every range; swap them")
    lo, hi = np.minimum(lo, 0.0), np.maximum(hi, 0.0)
    qmax = 2 ** n_bits - 1
    scale = _store_scale((hi - lo) / qmax)
    zero_point = np.clip(np.rint(-lo / scale.astype(np.float64)), 0, qmax).astype(np.int64)
    return scale, zero_point


def symmetric_scale(c, *, n_bits: int) -> np.ndarray:
    """Symmetric float32 scale ``c / (2**(n-1) - 1)`` for clip values ``c`` (0 → scale 1).

    Taught in: 04_quantization
    """
    n_bits = check_int_range(n_bits, name="n_bits", lo=2, hi=16, hint="symmetric codes need ≥ 2 bits, e.g. n_bits=8")
    c = _range_array(c, "c")
    if (c < 0).any():
        raise ValueError(f"clip values c must be ≥ 0 (the range is [-c, c]); got min {c.min():g}; pass abs(c)")
    return _store_scale(c / (2 ** (n_bits - 1) - 1))


def _range_array(x, name: str) -> np.ndarray:
    """A finite float64 array of range ends, or a clear error (strings, NaN, inf)."""
    try:
        a = np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError):
        raise TypeError(f"{name}={x!r} must be a number or an array of numbers") from None
    check_finite(a, name=name, what="range ends")
    return a


def _check_bits(n_bits, symmetric: bool) -> int:
    if symmetric and n_bits == 1:
        raise ValueError("n_bits=1 with symmetric=True leaves only the level 0; use n_bits ≥ 2, "
                         "symmetric=False, or multibit_quantize(W, n_bits=1) for ±α binary weights")
    return check_int_range(n_bits, name="n_bits", lo=1, hi=16, hint="e.g. n_bits=8")


def _ranges(a: np.ndarray, axis: int | None, symmetric: bool, clip):
    """Per-tensor / per-channel range: c (symmetric) or (lo, hi), from data or from ``clip``."""
    if axis is None:
        rows = a.reshape(1, -1)  # (1, N)
    else:
        rows = np.moveaxis(a, axis, 0).reshape(a.shape[axis], -1)  # (C, N / C)
    n_ch = rows.shape[0]
    if clip is None:
        if symmetric:
            return np.abs(rows).max(axis=1)
        return rows.min(axis=1), rows.max(axis=1)
    want = "one number c ≥ 0 (or C of them)" if symmetric else "a pair (lo, hi) with lo ≤ hi"
    try:
        parts = [clip] if symmetric else list(clip)
        parts = [np.broadcast_to(np.asarray(p, dtype=np.float64).ravel(), (n_ch,)) for p in parts]
    except (TypeError, ValueError) as exc:
        raise ValueError(f"clip={clip!r}: expected {want} (C={n_ch} channels); "
                         "omse_clip(W, n_bits=..., symmetric=...) returns the right form") from exc
    bad = (len(parts) != (1 if symmetric else 2) or not all(np.isfinite(p).all() for p in parts)
           or (symmetric and (parts[0] < 0).any()) or (not symmetric and (parts[0] > parts[1]).any()))
    if bad:
        raise ValueError(f"clip={clip!r}: expected {want}, finite, for C={n_ch} channels; "
                         "omse_clip(W, n_bits=..., symmetric=...) returns the right form")
    return parts[0] if symmetric else (parts[0], parts[1])


def quantize_uniform(W, *, n_bits: int, symmetric: bool, axis: int | None = None, clip=None) -> QTensor:
    """Quantise ``W`` to ``n_bits`` uniform levels (see the module notes for the formulas).

    Parameters
    ----------
    W : float array, any shape.
    n_bits : 1..16 (symmetric needs ≥ 2).
    symmetric : zero point fixed at 0 (True) or asymmetric with a zero point (False).
    axis : None for one scale per tensor, or the channel axis (one scale per ``W.shape[axis]``).
    clip : clipping range instead of the data's min/max: ``c`` (symmetric, range [-c, c]) or
        ``(lo, hi)`` (asymmetric); scalars or arrays of shape (C,). See :func:`omse_clip`.

    Returns
    -------
    :class:`QTensor` with codes of W's shape.

    Taught in: 04_quantization
    """
    if not isinstance(symmetric, (bool, np.bool_)):
        raise TypeError(f"symmetric={symmetric!r} must be True or False")
    n_bits = _check_bits(n_bits, bool(symmetric))
    a = as_float64_weights(W)
    axis = check_axis(axis, a.ndim)
    rng = _ranges(a, axis, bool(symmetric), clip)
    reach = max(float(np.max(np.abs(r))) for r in (rng if isinstance(rng, tuple) else (rng,)))
    if reach > float(np.finfo(np.float32).max) / 2:  # dequantize returns float32: its levels must fit
        raise ValueError(f"the quantisation range reaches {reach:.3g}, beyond what float32 levels hold "
                         f"({np.finfo(np.float32).max:.3g}); the weights' range exceeds float32: rescale W first")
    if symmetric:
        scale, zp = symmetric_scale(rng, n_bits=n_bits), np.zeros(len(rng), dtype=np.int64)
    else:
        scale, zp = affine_params(*rng, n_bits=n_bits)
    bshape = [1] * a.ndim
    if axis is not None:
        bshape[axis] = a.shape[axis]
    qmin, qmax = code_range(n_bits=n_bits, symmetric=bool(symmetric))
    s_b = scale.astype(np.float64).reshape(bshape)  # (C,) → broadcastable along axis
    z_b = zp.reshape(bshape)  # (C,) → broadcastable along axis
    codes = np.clip(np.rint(a / s_b) + z_b, qmin, qmax)
    dt = int_dtype(n_bits) if symmetric else uint_dtype(n_bits)
    shape0 = () if axis is None else (a.shape[axis],)
    return QTensor(codes=codes.astype(dt), scale=scale.reshape(shape0),  # (C,) or ()
                   zero_point=zp.astype(dt).reshape(shape0),  # (C,) or ()
                   n_bits=n_bits, shape=tuple(a.shape), axis=axis, symmetric=bool(symmetric))


def _check_qtensor(q) -> None:
    if not isinstance(q, QTensor):
        raise TypeError(f"expected a QTensor from quantize_uniform, got {type(q).__name__}")
    codes, scale, zp = np.asarray(q.codes), np.asarray(q.scale), np.asarray(q.zero_point)
    n_ch = () if q.axis is None else (q.shape[q.axis] if isinstance(q.axis, int) and -len(q.shape) <= q.axis < len(
        q.shape) else None,)
    if codes.shape != tuple(q.shape) or codes.dtype.kind not in "iu" or scale.shape != n_ch or zp.shape != n_ch:
        raise ValueError(f"QTensor has codes {codes.dtype} {codes.shape}, scale {scale.shape}, zero_point {zp.shape} "
                         f"for shape {tuple(q.shape)}, axis {q.axis}; pass a QTensor from quantize_uniform or "
                         "qtensor_from_bytes")
    check_finite(scale, name="scale", what="scales")
    if (scale <= 0).any():
        raise ValueError("QTensor scales must be > 0; pass a QTensor from quantize_uniform or qtensor_from_bytes")


def dequantize(q: QTensor) -> np.ndarray:
    """``(codes - zero_point) * scale`` in float32, shape ``q.shape``. Taught in: 04_quantization"""
    _check_qtensor(q)
    bshape = [1] * len(q.shape)
    if q.axis is not None:
        bshape[q.axis] = q.shape[q.axis]
    s = q.scale.reshape(bshape)  # () or (C,) → broadcastable along axis
    z = q.zero_point.astype(np.float32).reshape(bshape)  # () or (C,) → broadcastable along axis
    return ((q.codes.astype(np.float32) - z) * s).astype(np.float32)


def quantize_uniform_reference(W, *, n_bits: int, symmetric: bool, axis: int | None = None):
    """Slow, obviously correct :func:`quantize_uniform` (min/max range): ``(codes, scale, zero_point)``.

    Loops over channels and weights with Python numbers. Taught in: 04_quantization
    """
    a = np.asarray(W, dtype=np.float64)
    moved = a.reshape(1, -1) if axis is None else np.moveaxis(a, axis, 0).reshape(a.shape[axis], -1)  # (C, N/C)
    qmin, qmax = code_range(n_bits=n_bits, symmetric=symmetric)
    codes, scales, zps = np.zeros(moved.shape, dtype=np.int64), [], []
    for ch, row in enumerate(moved.tolist()):
        if symmetric:
            raw, zp = max(abs(v) for v in row) / qmax, 0
        else:
            lo, hi = min(min(row), 0.0), max(max(row), 0.0)
            raw = (hi - lo) / qmax
        scale = float(np.float32(max(raw, float(np.finfo(np.float32).tiny)))) if raw > 0 else 1.0
        if not symmetric:
            zp = min(max(round(-lo / scale), 0), qmax)
        for i, v in enumerate(row):
            codes[ch, i] = min(max(round(v / scale) + zp, qmin), qmax)
        scales.append(scale)
        zps.append(zp)
    if axis is None:
        return codes.reshape(a.shape), np.float32(scales[0]), zps[0]  # (1, N) → W's shape
    codes = np.moveaxis(codes.reshape((a.shape[axis],) + tuple(np.delete(a.shape, axis))), 0, axis)  # (C, N/C) → W's shape
    return codes, np.array(scales, dtype=np.float32), np.array(zps)


def quantized_bytes(q: QTensor) -> int:
    """Bytes of a QTensor: packed n_bits codes + float32 scales + zero points + shape.

    Symmetric tensors store no zero points (they are 0 by definition). Equals
    ``len(qtensor_to_bytes(q))``. Taught in: 04_quantization
    """
    _check_qtensor(q)
    zp = 0 if q.symmetric else q.zero_point.size * uint_dtype(q.n_bits).itemsize
    return (packed_bits_bytes(q.codes.size, q.n_bits) + SCALE_BYTES * q.scale.size + zp
            + shape_bytes(q.shape))


def qtensor_to_bytes(q: QTensor) -> bytes:
    """Serialise: shape (uint32 each) | scales (float32) | zero points (asymmetric) | packed codes.

    Signed symmetric codes are stored offset by ``2**(n_bits-1)``. Little-endian.
    Taught in: 04_quantization
    """
    _check_qtensor(q)
    offset = 2 ** (q.n_bits - 1) if q.symmetric else 0
    parts = [np.asarray(q.shape, dtype="<u4").tobytes(), q.scale.astype("<f4").tobytes()]
    if not q.symmetric:
        parts.append(q.zero_point.astype(uint_dtype(q.n_bits).newbyteorder("<")).tobytes())
    parts.append(pack_bits(q.codes.astype(np.int64) + offset, n_bits=q.n_bits).tobytes())
    return b"".join(parts)


def qtensor_from_bytes(buf: bytes, *, n_bits: int, ndim: int, axis: int | None, symmetric: bool) -> QTensor:
    """Inverse of :func:`qtensor_to_bytes`; the format (n_bits, ndim, axis, symmetric) is known by the
    model architecture, so it is passed in rather than stored. Taught in: 04_quantization
    """
    n_bits = _check_bits(n_bits, symmetric)
    ndim = check_int_range(ndim, name="ndim", lo=1, hi=32)
    axis = check_axis(axis, ndim)
    if not isinstance(buf, (bytes, bytearray, memoryview)):
        raise TypeError(f"buf must be bytes (from qtensor_to_bytes), got {type(buf).__name__}")
    buf = bytes(buf)
    head = ndim * SHAPE_DIM_BYTES
    if len(buf) < head:
        raise ValueError(f"buffer of {len(buf)} bytes is shorter than its {ndim}-D shape header ({head} bytes)")
    shape = tuple(int(d) for d in np.frombuffer(buf[:head], dtype="<u4"))
    if 0 in shape:
        raise ValueError(f"buffer header gives shape {shape} with a zero dimension; pass a buffer from qtensor_to_bytes")
    n_ch = 1 if axis is None else shape[axis]
    udt = uint_dtype(n_bits)
    n_zp = 0 if symmetric else n_ch * udt.itemsize
    n = int(np.prod(shape, dtype=np.int64))
    want = head + SCALE_BYTES * n_ch + n_zp + packed_bits_bytes(n, n_bits)
    if len(buf) != want:
        raise ValueError(f"buffer has {len(buf)} bytes, but shape {shape} with n_bits={n_bits}, axis={axis}, "
                         f"symmetric={symmetric} needs {want}; pass the format it was written with")
    pos = head + SCALE_BYTES * n_ch
    scale = np.frombuffer(buf[head:pos], dtype="<f4").astype(np.float32)
    if not (np.isfinite(scale) & (scale > 0)).all():
        raise ValueError("buffer holds scales that are not finite and > 0; it is corrupt, or was written with another "
                         "format: pass the format it was written with")
    zp = np.frombuffer(buf[pos:pos + n_zp], dtype=udt.newbyteorder("<")).astype(udt)
    offset = 2 ** (n_bits - 1) if symmetric else 0
    packed = np.frombuffer(buf[pos + n_zp:], dtype=np.uint8)
    codes = unpack_bits(packed, n_bits=n_bits, count=n).astype(np.int64) - offset
    dt = int_dtype(n_bits) if symmetric else udt
    shape0 = () if axis is None else (n_ch,)
    zero_point = np.zeros(n_ch, dtype=dt) if symmetric else zp.astype(dt)
    return QTensor(codes=codes.astype(dt).reshape(shape),  # (N,) → shape
                   scale=scale.reshape(shape0), zero_point=zero_point.reshape(shape0),  # (C,) → () or (C,)
                   n_bits=n_bits, shape=shape, axis=axis, symmetric=symmetric)
