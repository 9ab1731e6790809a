"""One weight matrix quantised by each scheme of lesson 04, as a :class:`QuantizedLayer`: the
dequantised weight a model computes with, the honest stored bytes, and the stored codes (for Huffman
coding). These are what the method registry (:mod:`thinlab.nn.methods`) calls for every quantiser.

Orientation: W is the paper's (Q, R) = (in, out), so "per channel" means one scale per output unit
(``axis=1``, a row of torch's ``weight``).

Taught in: 04_quantization
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from thinlab.quant.fixed_point import best_frac_bits, fixed_point, fixed_point_bytes, fixed_point_codes
from thinlab.quant.huffman import huffman_bytes
from thinlab.quant.kmeans import kmeans_bytes, kmeans_code_bits, kmeans_dequantize, kmeans_quantize
from thinlab.quant.multibit import multibit_bytes, multibit_dequantize, multibit_quantize
from thinlab.quant.omse import omse_clip
from thinlab.quant.uniform import dequantize, quantize_uniform, quantized_bytes
from thinlab.size import bitmask_bytes, packed_bits_bytes, shape_bytes

#: the output-channel axis of a paper-oriented W (Q, R)
CHANNEL_AXIS = 1


@dataclass
class QuantizedLayer:
    """One layer's quantised weight.

    W_hat : float32 (Q, R), the dequantised weight the model computes with.
    bytes : honest stored bytes (codes packed + scales / codebook / α / F + shape).
    codes : unsigned integer symbols (Q, R) as stored, in ``[0, n_symbols)`` (for Huffman coding).
    n_symbols : alphabet size of ``codes`` (``2**n_bits``).
    code_bytes : the bytes of the packed codes alone (``bytes - code_bytes`` is the side information).
    detail : method-specific numbers (scale, frac_bits, clip, codebook size, alphas).

    Taught in: 04_quantization
    """

    W_hat: np.ndarray
    bytes: int
    codes: np.ndarray
    n_symbols: int
    code_bytes: int
    detail: dict = field(default_factory=dict)

    @property
    def side_bytes(self) -> int:
        """Bytes besides the packed codes: scales, zero points, codebook, α, F, shape."""
        return self.bytes - self.code_bytes

    def huffman_bytes(self) -> int:
        """Bytes with the codes Huffman-coded instead of packed: payload + code-length table
        (one byte per symbol) + the same side information. Taught in: 04_quantization"""
        return self.side_bytes - shape_bytes(self.codes.shape) + huffman_bytes(self.codes,
                                                                                       n_symbols=self.n_symbols)


def uniform_layer(W, n_bits: int, *, symmetric: bool, per_channel: bool = False, clip=None) -> QuantizedLayer:
    """Uniform quantisation of W (per tensor, or one scale per output channel; optional clip).

    Taught in: 04_quantization
    """
    q = quantize_uniform(W, n_bits=n_bits, symmetric=symmetric, axis=CHANNEL_AXIS if per_channel else None, clip=clip)
    offset = 2 ** (n_bits - 1) if symmetric else 0  # signed symmetric codes stored offset, as qtensor_to_bytes does
    codes = (q.codes.astype(np.int64) + offset).astype(np.uint32)
    detail = {"n_scales": int(q.scale.size)}
    if q.scale.size == 1:
        detail["scale"] = float(q.scale)
    if clip is not None and np.ndim(clip) == 0:
        detail["clip"] = float(clip)
    return QuantizedLayer(dequantize(q), quantized_bytes(q), codes, 2 ** n_bits,
                          packed_bits_bytes(codes.size, n_bits), detail)


def omse_layer(W, n_bits: int) -> QuantizedLayer:
    """Uniform symmetric quantisation clipped at the OMSE threshold. Taught in: 04_quantization"""
    return uniform_layer(W, n_bits, symmetric=True, clip=omse_clip(W, n_bits=n_bits, symmetric=True))


def fixed_layer(W, n_bits: int) -> QuantizedLayer:
    """W/F fixed point with the fraction bits F that fit W best. Taught in: 04_quantization"""
    F = best_frac_bits(W, word_bits=n_bits)
    codes = fixed_point_codes(W, word_bits=n_bits, frac_bits=F).astype(np.int64) + 2 ** (n_bits - 1)
    return QuantizedLayer(fixed_point(W, word_bits=n_bits, frac_bits=F).astype(np.float32),
                          fixed_point_bytes(W.shape, word_bits=n_bits), codes.astype(np.uint32),
                          2 ** n_bits, packed_bits_bytes(W.size, n_bits), {"frac_bits": F})


def kmeans_layer(W, n_bits: int) -> QuantizedLayer:
    """k-means weight sharing with a codebook of 2**n_bits values. Taught in: 04_quantization"""
    res = kmeans_quantize(W, n_clusters=2 ** n_bits)
    return QuantizedLayer(kmeans_dequantize(res), kmeans_bytes(res), res.codes.astype(np.uint32),
                          2 ** n_bits, packed_bits_bytes(W.size, kmeans_code_bits(2 ** n_bits)),
                          {"n_iter": res.n_iter})


def multibit_layer(W, n_bits: int) -> QuantizedLayer:
    """Greedy multi-bit binarisation (n_bits sign planes with one α each). Taught in: 04_quantization"""
    mb = multibit_quantize(W, n_bits=n_bits)
    weights_of_planes = (1 << np.arange(n_bits)).reshape((-1,) + (1,) * W.ndim)  # (n_bits, 1, 1)
    codes = (mb.bits.astype(np.uint32) * weights_of_planes).sum(axis=0).astype(np.uint32)  # (Q, R) sign pattern
    return QuantizedLayer(multibit_dequantize(mb), multibit_bytes(mb), codes, 2 ** n_bits,
                          n_bits * bitmask_bytes(W.size), {"alphas": mb.alphas.tolist()})
