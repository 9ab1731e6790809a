"""Quantisation kernels (numpy only): the int8 clipping cast, W/F fixed point, uniform symmetric /
asymmetric per tensor or per channel, OMSE clipping, k-means weight sharing, greedy multi-bit
binarisation, bit packing and Huffman coding, each with its honest byte count.

Taught in: 04_quantization
"""
from thinlab.quant.fixed_point import (
    best_frac_bits, best_frac_bits_reference, cast_int8, cast_int8_dequantized, fixed_point,
    fixed_point_bytes, fixed_point_codes, fixed_point_codes_reference, fixed_point_mse, fixed_point_range,
)
from thinlab.quant.huffman import (
    canonical_codewords, entropy_bits, huffman_bytes, huffman_code_lengths, huffman_cost_reference,
    huffman_decode_reference, huffman_encode, huffman_encoded_bits,
)
from thinlab.quant.kmeans import (
    KMeansResult, kmeans_bytes, kmeans_code_bits, kmeans_dequantize, kmeans_init, kmeans_lloyd_reference,
    kmeans_quantize,
)
from thinlab.quant.multibit import (
    MultiBit, multibit_bytes, multibit_dequantize, multibit_quantize, multibit_quantize_reference,
)
from thinlab.quant.omse import candidate_sse, omse_clip, omse_clip_reference
from thinlab.quant.packing import pack_bits, pack_bits_reference, unpack_bits, unpack_bits_reference
from thinlab.quant.uniform import (
    QTensor, affine_params, code_range, dequantize, qtensor_from_bytes, qtensor_to_bytes, quantize_uniform,
    quantize_uniform_reference, quantized_bytes, symmetric_scale,
)

from thinlab.quant.layer import (
    QuantizedLayer, fixed_layer, kmeans_layer, multibit_layer, omse_layer, uniform_layer,
)  # after the kernels it calls

__all__ = [
    "QuantizedLayer", "fixed_layer", "kmeans_layer", "multibit_layer", "omse_layer", "uniform_layer",
    "KMeansResult", "MultiBit", "QTensor", "affine_params", "best_frac_bits", "best_frac_bits_reference",
    "candidate_sse", "canonical_codewords", "cast_int8", "cast_int8_dequantized", "code_range", "dequantize",
    "entropy_bits", "fixed_point", "fixed_point_bytes", "fixed_point_codes", "fixed_point_codes_reference",
    "fixed_point_mse", "fixed_point_range", "huffman_bytes", "huffman_code_lengths", "huffman_cost_reference",
    "huffman_decode_reference", "huffman_encode", "huffman_encoded_bits", "kmeans_bytes", "kmeans_code_bits",
    "kmeans_dequantize", "kmeans_init", "kmeans_lloyd_reference", "kmeans_quantize", "multibit_bytes",
    "multibit_dequantize", "multibit_quantize", "multibit_quantize_reference", "omse_clip",
    "omse_clip_reference", "pack_bits", "pack_bits_reference", "qtensor_from_bytes", "qtensor_to_bytes",
    "quantize_uniform", "quantize_uniform_reference", "quantized_bytes", "symmetric_scale", "unpack_bits",
    "unpack_bits_reference",
]
