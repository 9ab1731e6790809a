"""DeepThin (Sotoudeh & Baghsorkhi, 2017): low-rank factors re-laid-out into a weight matrix.

A layer Y = X·W with W (Q, R) stores X^f (m, r) and W^f (r, n); W_aux = X^f·W^f (m, n) is read
row-major and poured into W column by column. Modules:

* :mod:`.solver`  – size selection (rank, the LCM rule on n), lower bound, honest bytes
* :mod:`.network` – a whole model's size target shared across layers
* :mod:`.relayout` – re-layout, reconstruction, shuffled variant, initialisation
* :mod:`.fused`   – Y = X·W without building W (per-layer plans)
* :mod:`.fused_network` – a chain of fused layers as one network (one compiled call per block of rows)
* :mod:`.paper`   – the paper's dot-product reuse, for comparison

Taught in: 03_deepthin
"""
from thinlab.deepthin.fused import FusedDeepThin, fused_matmul, fused_matmul_reference
from thinlab.deepthin.fused_network import FusedNetwork
from thinlab.deepthin.network import NetworkPlan, plan_network
from thinlab.deepthin.paper import fused_matmul_paper, reuse_stats, segment_pairs
from thinlab.deepthin.relayout import (flat_positions, glorot_std, he_std, init_factors, reconstruct,
                                       reconstruct_reference, relayout, relayout_reference,
                                       shuffle_permutation, unrelayout)
from thinlab.deepthin.solver import (OPENING_KEEP, DeepThinSize, deepthin_bytes, deepthin_lower_bound, deepthin_size,
                                     deepthin_size_reference, min_aux_sum, min_aux_sum_reference, opening_factor)

__all__ = [
    "DeepThinSize", "NetworkPlan", "FusedDeepThin", "FusedNetwork",
    "deepthin_size", "deepthin_size_reference", "deepthin_lower_bound", "deepthin_bytes",
    "min_aux_sum", "min_aux_sum_reference", "plan_network", "opening_factor", "OPENING_KEEP",
    "relayout", "relayout_reference", "unrelayout", "flat_positions", "reconstruct", "reconstruct_reference",
    "shuffle_permutation", "init_factors", "glorot_std", "he_std",
    "fused_matmul", "fused_matmul_reference", "fused_matmul_paper", "reuse_stats", "segment_pairs",
]
