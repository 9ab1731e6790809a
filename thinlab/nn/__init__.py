"""The torch boundary of the course: compressed-weight parametrizations, the registry of compression
methods, one-call compression with an exact size report, a compact save format, weight access,
pruning and low-rank transforms, and half precision. Kernels stay numpy; this package converts at the
boundary and adds no experiment of its own (those live in :mod:`thinlab.experiments`).

Taught in: 01_pruning … 06_pipeline
"""
from thinlab.nn.compress import METHODS, check_model, compress, compressible_layers, size_report, uncompressed
from thinlab.nn.io import CompressedFileError, load_compressed, save_compressed
from thinlab.nn.parametrizations import DeepThin, FakeQuant, LowRank, Masked, Shared, fake_quant_rows
from thinlab.nn.weights import apply_masks, layer_masks, layer_weights, set_layer_weights

__all__ = ["METHODS", "check_model", "compress", "compressible_layers", "size_report", "uncompressed",
           "CompressedFileError", "save_compressed", "load_compressed", "DeepThin", "FakeQuant", "LowRank", "Masked",
           "Shared", "fake_quant_rows", "apply_masks", "layer_masks", "layer_weights", "set_layer_weights"]
