"""Huffman coding of quantisation codes (the third stage of Deep Compression).

Frequent codes get short codewords. The code is *canonical*: it is fully described by one code
length per symbol, so the stored table is those lengths (one byte per symbol of the alphabet), and
the payload is the concatenated codewords, packed MSB first and zero-padded to a byte.

The tree is built with ``heapq`` over the distinct *symbols* (≤ 65536), never over the weights;
encoding is vectorised over the weights.

Taught in: 04_quantization
"""
from __future__ import annotations

import heapq
import math

import numpy as np

from thinlab._validate import check_int_range
from thinlab.size import shape_bytes

#: largest alphabet accepted (16-bit codes)
MAX_SYMBOLS = 2 ** 16
#: bytes per symbol of the stored code-length table
TABLE_ENTRY_BYTES = 1


def _as_codes(codes, name: str = "codes") -> np.ndarray:
    c = np.asarray(codes)
    if c.dtype == bool or not np.issubdtype(c.dtype, np.integer):
        raise TypeError(f"{name} must be an integer array of symbols; got dtype {c.dtype}; "
                        "pass quantisation codes such as QTensor.codes or KMeansResult.codes")
    if c.size == 0:
        raise ValueError(f"{name} is empty; pass at least one symbol")
    if c.min() < 0 or c.max() >= MAX_SYMBOLS:
        raise ValueError(f"{name} must lie in [0, {MAX_SYMBOLS - 1}]; got [{c.min()}, {c.max()}]; "
                         "offset signed codes (e.g. + 2**(n_bits-1)) first")
    return c.ravel().astype(np.int64)  # (N,)


def huffman_code_lengths(codes=None, *, counts=None) -> np.ndarray:
    """Optimal prefix-code length of every symbol.

    Parameters
    ----------
    codes : int array of symbols in [0, 65536), any shape; or
    counts : int array (n_symbols,) of occurrences per symbol (give exactly one of the two).

    Returns
    -------
    int64 array (n_symbols,): 0 for unused symbols; a single used symbol gets length 1.

    Taught in: 04_quantization
    """
    if (codes is None) == (counts is None):
        raise ValueError("pass exactly one of codes (symbols) or counts= (occurrences per symbol)")
    if counts is None:
        counts = np.bincount(_as_codes(codes))
    counts = np.asarray(counts)
    if counts.ndim != 1 or counts.dtype == bool or not np.issubdtype(counts.dtype, np.integer):
        raise TypeError(f"counts must be a 1-D integer array; got dtype {counts.dtype}, shape {counts.shape}")
    if counts.size == 0 or counts.size > MAX_SYMBOLS or counts.min() < 0:
        raise ValueError(f"counts must have 1..{MAX_SYMBOLS} non-negative entries; got {counts.size} "
                         f"entries, min {counts.min() if counts.size else 'n/a'}")
    lengths = np.zeros(counts.size, dtype=np.int64)
    used = np.flatnonzero(counts)
    if used.size <= 1:
        lengths[used] = 1
        return lengths
    heap = [(int(counts[s]), node) for node, s in enumerate(used)]  # leaves are nodes 0..m-1
    heapq.heapify(heap)
    parent = np.full(2 * used.size - 1, -1, dtype=np.int64)
    nxt = used.size
    while len(heap) > 1:  # merge the two rarest: m - 1 times (symbols, not weights)
        c1, n1 = heapq.heappop(heap)
        c2, n2 = heapq.heappop(heap)
        parent[[n1, n2]] = nxt
        heapq.heappush(heap, (c1 + c2, nxt))
        nxt += 1
    depth = np.zeros(parent.size, dtype=np.int64)
    for node in range(parent.size - 2, -1, -1):  # parents have larger ids: root down
        depth[node] = depth[parent[node]] + 1
    lengths[used] = depth[:used.size]
    return lengths


def huffman_encoded_bits(codes) -> int:
    """Payload bits of Huffman-coding ``codes``: Σ count(s) · length(s). Taught in: 04_quantization"""
    counts = np.bincount(_as_codes(codes))
    return int(np.dot(counts, huffman_code_lengths(counts=counts)))


def entropy_bits(codes) -> float:
    """Shannon bound N·H(codes) in bits; Huffman is within N bits of it. Taught in: 04_quantization"""
    counts = np.bincount(_as_codes(codes))
    p = counts[counts > 0] / counts.sum()
    return float(-counts.sum() * np.sum(p * np.log2(p)))


def huffman_bytes(codes, *, n_symbols: int | None = None) -> int:
    """Bytes of Huffman-coded ``codes``: packed payload + code-length table + shape.

    Parameters
    ----------
    codes : int array of symbols, any shape.
    n_symbols : alphabet size whose table is stored (default ``codes.max() + 1``; pass
        ``2**n_bits`` or the number of clusters to count the full table).

    Equals ``len(huffman_encode(codes)[0]) + n_symbols + shape_bytes(codes.shape)``.

    Taught in: 04_quantization
    """
    c = _as_codes(codes)
    n_symbols = _n_symbols(c, n_symbols)
    return math.ceil(huffman_encoded_bits(c) / 8) + TABLE_ENTRY_BYTES * n_symbols + shape_bytes(np.shape(codes))


def _n_symbols(c: np.ndarray, n_symbols) -> int:
    if n_symbols is None:
        return int(c.max()) + 1
    return check_int_range(n_symbols, name="n_symbols", lo=int(c.max()) + 1, hi=MAX_SYMBOLS,
                           hint="it must cover the largest code (codes.max() + 1)")


def canonical_codewords(lengths) -> np.ndarray:
    """Canonical Huffman codewords (uint64, (n_symbols,)) for code ``lengths`` (0 = unused).

    Symbols sorted by (length, symbol) get consecutive codewords, shifted left when the length
    grows. Taught in: 04_quantization
    """
    lengths = np.asarray(lengths)
    if lengths.ndim != 1 or lengths.dtype == bool or lengths.dtype.kind not in "iu":
        raise TypeError(f"lengths must be a 1-D integer array (from huffman_code_lengths); got {lengths.dtype} "
                        f"{lengths.shape}")
    if lengths.size and (int(lengths.min()) < 0 or int(lengths.max()) > 64):
        raise ValueError(f"code lengths must lie in [0, 64]; got [{lengths.min()}, {lengths.max()}]; pass "
                         "huffman_code_lengths(...)")
    lengths = lengths.astype(np.int64)
    words = np.zeros(lengths.size, dtype=np.uint64)
    used = np.flatnonzero(lengths)
    order = used[np.lexsort((used, lengths[used]))]
    code, prev = -1, int(lengths[order[0]]) if order.size else 0
    for s in order:  # one step per symbol
        code = (code + 1) << (int(lengths[s]) - prev)
        prev = int(lengths[s])
        words[s] = code
    return words


def huffman_encode(codes, *, n_symbols: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Huffman-code ``codes`` (C order): ``(payload uint8 (ceil(bits/8),), lengths (n_symbols,))``.

    Vectorised in blocks of weights: each block becomes a (block, max_length) bit matrix of
    left-aligned codewords, masked to each codeword's length and packed with ``np.packbits``.

    Taught in: 04_quantization
    """
    c = _as_codes(codes)
    n_symbols = _n_symbols(c, n_symbols)
    counts = np.bincount(c, minlength=n_symbols)
    lengths = huffman_code_lengths(counts=counts)
    words, lens = canonical_codewords(lengths)[c], lengths[c]  # (N,) each
    cols = np.arange(int(lens.max()))  # (L,)
    chunks = []
    for start in range(0, c.size, 1 << 16):  # blocks of 65536 weights bound the bit matrix
        ln = lens[start:start + (1 << 16), None]  # (b, 1)
        shift = ln - 1 - cols[None, :]  # (b, L): bit position of column j, negative past the end
        bits = (words[start:start + (1 << 16), None] >> np.maximum(shift, 0).astype(np.uint64)) & np.uint64(1)
        chunks.append(bits[shift >= 0].astype(np.uint8))  # row-major: codewords in order
    return np.packbits(np.concatenate(chunks)), lengths


def huffman_decode_reference(payload, lengths, *, count: int) -> np.ndarray:
    """Decode ``count`` symbols bit by bit (slow, obviously correct; for checking). Taught in: 04_quantization"""
    words = canonical_codewords(lengths)
    table = {(int(lengths[s]), int(words[s])): s for s in np.flatnonzero(lengths)}
    bits = np.unpackbits(np.asarray(payload, dtype=np.uint8))
    out, n, w, i = [], 0, 0, 0
    while len(out) < count:
        w, n, i = (w << 1) | int(bits[i]), n + 1, i + 1
        if (n, w) in table:
            out.append(table[(n, w)])
            n = w = 0
    return np.array(out, dtype=np.int64)


def huffman_cost_reference(counts) -> int:
    """Optimal total bits by repeatedly merging the two smallest weights (Σ of merged sums).

    Taught in: 04_quantization
    """
    pool = sorted(int(x) for x in counts if x > 0)
    if len(pool) == 1:
        return pool[0]
    total = 0
    while len(pool) > 1:
        merged = pool.pop(0) + pool.pop(0)
        total += merged
        pool = sorted(pool + [merged])
    return total
