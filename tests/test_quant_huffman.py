"""Huffman coding: the textbook example, optimal cost, Kraft, entropy bounds, encode/decode, bytes."""
import math

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from thinlab.quant import (
    canonical_codewords, entropy_bits, huffman_bytes, huffman_code_lengths, huffman_cost_reference,
    huffman_decode_reference, huffman_encode, huffman_encoded_bits,
)
from thinlab.size import shape_bytes

counts_strategy = st.lists(st.integers(0, 1000), min_size=1, max_size=40).filter(lambda c: sum(c) > 0)
codes_strategy = st.lists(st.integers(0, 20), min_size=1, max_size=300).map(np.array)


def test_textbook_example():
    # CLRS: a:45 b:13 c:12 d:16 e:9 f:5 → lengths 1,3,3,3,4,4 and 224 bits
    counts = np.array([45, 13, 12, 16, 9, 5])
    assert huffman_code_lengths(counts=counts).tolist() == [1, 3, 3, 3, 4, 4]
    codes = np.repeat(np.arange(6), counts)
    assert huffman_encoded_bits(codes) == 224 == huffman_cost_reference(counts)
    assert huffman_bytes(codes) == 28 + 6 + shape_bytes(codes.shape)


def test_canonical_codewords_exact():
    assert canonical_codewords([1, 3, 3, 3, 4, 4]).tolist() == [0b0, 0b100, 0b101, 0b110, 0b1110, 0b1111]
    assert canonical_codewords([2, 0, 1, 2]).tolist() == [0b10, 0, 0b0, 0b11]


def test_unused_and_single_symbols():
    assert huffman_code_lengths(counts=np.array([0, 7, 0])).tolist() == [0, 1, 0]
    assert huffman_encoded_bits(np.full(10, 3)) == 10
    assert huffman_code_lengths(np.array([2, 2, 5])).tolist() == [0, 0, 1, 0, 0, 1]


@settings(max_examples=100, deadline=None)
@given(counts_strategy)
def test_optimal_cost_and_kraft(counts):
    counts = np.array(counts)
    lengths = huffman_code_lengths(counts=counts)
    assert int(np.dot(counts, lengths)) == huffman_cost_reference(counts)
    used = counts > 0
    assert np.all(lengths[~used] == 0) and np.all(lengths[used] >= 1)
    if used.sum() >= 2:
        assert sum(2.0 ** -lengths[used]) == 1.0  # a full binary tree


@settings(max_examples=100, deadline=None)
@given(codes_strategy)
def test_within_one_bit_per_symbol_of_entropy(codes):
    bits, h = huffman_encoded_bits(codes), entropy_bits(codes)
    assert h - 1e-9 <= bits < h + codes.size + 1e-9 or len(set(codes.tolist())) == 1


@settings(max_examples=80, deadline=None)
@given(codes_strategy, st.integers(0, 5))
def test_encode_decode_round_trip_and_bytes(codes, extra):
    n_symbols = int(codes.max()) + 1 + extra
    payload, lengths = huffman_encode(codes, n_symbols=n_symbols)
    assert payload.dtype == np.uint8 and len(lengths) == n_symbols
    assert len(payload) == math.ceil(huffman_encoded_bits(codes) / 8)
    assert np.array_equal(huffman_decode_reference(payload, lengths, count=codes.size), codes)
    serialised = (np.asarray(codes.shape, "<u4").tobytes() + lengths.astype(np.uint8).tobytes()
                  + payload.tobytes())
    assert huffman_bytes(codes, n_symbols=n_symbols) == len(serialised)


def test_encode_large_skewed_input():
    codes = (np.random.default_rng(0).geometric(0.4, size=200_000) - 1).clip(0, 15).reshape(400, 500)  # (200000,) → (400, 500)
    payload, lengths = huffman_encode(codes, n_symbols=16)
    assert len(payload) == math.ceil(huffman_encoded_bits(codes) / 8) < 200_000 * 4 / 8  # beats 4-bit packing
    assert np.array_equal(huffman_decode_reference(payload[:64], lengths, count=100), codes.ravel()[:100])


def test_bad_inputs():
    with pytest.raises(ValueError, match="pass exactly one of codes"):
        huffman_code_lengths()
    with pytest.raises(ValueError, match="pass exactly one of codes"):
        huffman_code_lengths(np.array([1]), counts=np.array([1]))
    with pytest.raises(ValueError, match=r"codes must lie in \[0, 65535\]; got \[-1, 2\]"):
        huffman_encoded_bits(np.array([-1, 2]))
    with pytest.raises(TypeError, match="codes must be an integer array of symbols; got dtype float64"):
        huffman_bytes(np.array([0.5]))
    with pytest.raises(ValueError, match="codes is empty"):
        huffman_encode(np.array([], dtype=np.int64))
    with pytest.raises(ValueError, match=r"counts must have 1..65536 non-negative entries; got 2 entries, min -1"):
        huffman_code_lengths(counts=np.array([3, -1]))
    with pytest.raises(TypeError, match="counts must be a 1-D integer array"):
        huffman_code_lengths(counts=np.array([[1, 2]]))
    with pytest.raises(ValueError, match=r"n_symbols=3 must be an integer in \[6, 65536\]"):
        huffman_bytes(np.array([5, 1]), n_symbols=3)
