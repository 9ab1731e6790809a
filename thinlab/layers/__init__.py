"""torch side of the course: compressed-weight parametrizations, one-call compression with an exact
size report, and a compact save format. Kernels stay numpy; this package converts at the boundary.

Taught in: 01_pruning … 06_pipeline
"""
from thinlab.layers.compress import METHODS, compress, compressible_layers, size_report, uncompressed
from thinlab.layers.io import load_compressed, save_compressed
from thinlab.layers.parametrizations import DeepThin, FakeQuant, LowRank, Masked, Shared, fake_quant_rows

__all__ = ["METHODS", "compress", "compressible_layers", "size_report", "uncompressed", "save_compressed",
           "load_compressed", "DeepThin", "FakeQuant", "LowRank", "Masked", "Shared", "fake_quant_rows"]
