"""Dense bit packing of integer codes: ``n`` codes of ``n_bits`` each in ``ceil(n * n_bits / 8)`` bytes.

Codes are written most-significant bit first, one after another, in C (row-major) order; the
last byte is padded with zero bits. This is the byte stream every quantised representation in
``thinlab.quant`` counts (and what :func:`~thinlab.quant.uniform.qtensor_to_bytes` writes).

Taught in: 04_quantization
"""
from __future__ import annotations

import numpy as np

from thinlab._validate import check_codes, check_int_range, uint_dtype
from thinlab.size import packed_bits_bytes

#: widest code pack_bits / unpack_bits handle
MAX_PACK_BITS = 32


def _width(n_bits: int) -> tuple[int, str]:
    """Container width in bits and its big-endian dtype for the bit matrix."""
    return (16, ">u2") if n_bits <= 16 else (32, ">u4")


def pack_bits(codes, *, n_bits: int) -> np.ndarray:
    """Pack unsigned integer ``codes`` into a dense uint8 stream of ``n_bits`` per code.

    Parameters
    ----------
    codes : int array, any shape, values in ``[0, 2**n_bits)``; read in C order.
    n_bits : bits per code, 1..32.

    Returns
    -------
    uint8 array of shape ``(ceil(codes.size * n_bits / 8),)``.

    Vectorised: the codes are viewed as big-endian bytes, expanded to a (size, width) bit matrix
    with ``np.unpackbits``, the low ``n_bits`` columns kept and the rest re-packed with
    ``np.packbits``.

    Taught in: 04_quantization
    """
    n_bits = check_int_range(n_bits, name="n_bits", lo=1, hi=MAX_PACK_BITS,
                             hint="codes wider than 32 bits are not packed; store them as a plain array")
    c = check_codes(codes, n_bits=n_bits).ravel()  # (N,)
    width, be = _width(n_bits)
    as_bytes = c.astype(be).view(np.uint8).reshape(-1, width // 8)  # (N, width/8) big-endian bytes
    bits = np.unpackbits(as_bytes, axis=1)  # (N, width), MSB first
    return np.packbits(bits[:, width - n_bits:])  # (ceil(N * n_bits / 8),), flattened row-major


def unpack_bits(packed, *, n_bits: int, count: int) -> np.ndarray:
    """Inverse of :func:`pack_bits`: read ``count`` codes of ``n_bits`` from a uint8 stream.

    Parameters
    ----------
    packed : uint8 array of shape ``(ceil(count * n_bits / 8),)`` (any shape is raveled).
    n_bits : bits per code, 1..32.
    count : number of codes to read.

    Returns
    -------
    array of shape ``(count,)`` in the smallest unsigned dtype holding ``n_bits`` bits.

    Taught in: 04_quantization
    """
    n_bits = check_int_range(n_bits, name="n_bits", lo=1, hi=MAX_PACK_BITS)
    count = check_int_range(count, name="count", lo=0, hi=2 ** 62, hint="pass the number of packed codes")
    p = np.asarray(packed)
    if p.dtype != np.uint8:
        raise TypeError(f"packed must be a uint8 array (the output of pack_bits); got dtype {p.dtype}")
    p = p.ravel()  # (n_bytes,)
    need = packed_bits_bytes(count, n_bits)
    if p.size != need:
        raise ValueError(f"packed has {p.size} bytes but count={count} codes of n_bits={n_bits} take "
                         f"exactly {need}; check count and n_bits match the pack_bits call")
    width, be = _width(n_bits)
    bits = np.unpackbits(p, count=count * n_bits).reshape(count, n_bits)  # (count, n_bits)
    full = np.zeros((count, width), dtype=np.uint8)  # (count, width), high bits zero
    full[:, width - n_bits:] = bits
    values = np.packbits(full, axis=1).view(be).reshape(count)  # (count, width/8) bytes → (count,)
    return values.astype(uint_dtype(n_bits))


def pack_bits_reference(codes, *, n_bits: int) -> np.ndarray:
    """Slow, obviously correct :func:`pack_bits`: concatenate binary strings. Taught in: 04_quantization"""
    bits = "".join(format(int(c), f"0{n_bits}b") for c in np.ravel(codes))
    bits += "0" * (-len(bits) % 8)
    return np.array([int(bits[i:i + 8], 2) for i in range(0, len(bits), 8)], dtype=np.uint8)


def unpack_bits_reference(packed, *, n_bits: int, count: int) -> np.ndarray:
    """Slow, obviously correct :func:`unpack_bits`. Taught in: 04_quantization"""
    bits = "".join(format(int(b), "08b") for b in np.ravel(packed))
    return np.array([int(bits[i * n_bits:(i + 1) * n_bits], 2) for i in range(count)],
                    dtype=uint_dtype(n_bits))
