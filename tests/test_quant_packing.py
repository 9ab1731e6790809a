"""Bit packing: exact bytes, round trips for every width, agreement with the slow reference, bad input."""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from thinlab.quant import pack_bits, pack_bits_reference, unpack_bits, unpack_bits_reference
from thinlab.size import packed_bits_bytes


@st.composite
def codes_and_bits(draw, max_bits=32):
    n_bits = draw(st.integers(1, max_bits))
    codes = draw(st.lists(st.integers(0, 2 ** n_bits - 1), min_size=0, max_size=60))
    return np.array(codes, dtype=np.uint64), n_bits


def test_exact_bytes_msb_first():
    # 01 10 11 + two zero pad bits = 0b01101100
    assert pack_bits(np.array([1, 2, 3]), n_bits=2).tolist() == [0b01101100]
    assert pack_bits(np.array([0xABC]), n_bits=12).tolist() == [0xAB, 0xC0]
    assert pack_bits(np.array([1, 0, 1, 1, 0, 0, 0, 1, 1]), n_bits=1).tolist() == [0b10110001, 0b10000000]


@settings(max_examples=150, deadline=None)
@given(codes_and_bits())
def test_round_trip_and_length(cb):
    codes, n_bits = cb
    packed = pack_bits(codes, n_bits=n_bits)
    assert packed.dtype == np.uint8 and packed.size == packed_bits_bytes(codes.size, n_bits)
    back = unpack_bits(packed, n_bits=n_bits, count=codes.size)
    assert back.tolist() == codes.tolist()
    assert back.dtype.itemsize * 8 >= n_bits and np.issubdtype(back.dtype, np.unsignedinteger)


@pytest.mark.parametrize("n_bits", range(1, 17))
def test_round_trip_every_width_up_to_16(n_bits):
    codes = np.random.default_rng(n_bits).integers(0, 2 ** n_bits, size=1001)
    packed = pack_bits(codes.reshape(7, 11, 13), n_bits=n_bits)  # any shape, read in C order
    assert np.array_equal(unpack_bits(packed, n_bits=n_bits, count=codes.size), codes)


@settings(max_examples=60, deadline=None)
@given(codes_and_bits())
def test_agrees_with_reference(cb):
    codes, n_bits = cb
    fast = pack_bits(codes, n_bits=n_bits)
    assert np.array_equal(fast, pack_bits_reference(codes, n_bits=n_bits))
    assert np.array_equal(unpack_bits(fast, n_bits=n_bits, count=codes.size),
                          unpack_bits_reference(fast, n_bits=n_bits, count=codes.size))


def test_bad_inputs():
    with pytest.raises(ValueError, match=r"n_bits=0 must be an integer in \[1, 32\]"):
        pack_bits(np.array([1]), n_bits=0)
    with pytest.raises(ValueError, match=r"n_bits=2.5 must be an integer"):
        pack_bits(np.array([1]), n_bits=2.5)
    with pytest.raises(ValueError, match=r"must lie in \[0, 3\] for n_bits=2; got values in \[0, 4\]"):
        pack_bits(np.array([0, 4]), n_bits=2)
    with pytest.raises(ValueError, match=r"got values in \[-1, 1\]"):
        pack_bits(np.array([-1, 1]), n_bits=2)
    with pytest.raises(TypeError, match="must be an integer array; got dtype float64"):
        pack_bits(np.array([1.0]), n_bits=2)
    with pytest.raises(ValueError, match="packed has 1 bytes but count=5 codes of n_bits=4 take exactly 3"):
        unpack_bits(np.zeros(1, np.uint8), n_bits=4, count=5)
    with pytest.raises(TypeError, match="packed must be a uint8 array"):
        unpack_bits(np.zeros(3, np.int64), n_bits=4, count=5)
    with pytest.raises(ValueError, match="count=-1 must be an integer"):
        unpack_bits(np.zeros(0, np.uint8), n_bits=4, count=-1)
