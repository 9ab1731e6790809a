"""Pruning kernels: magnitude (per layer / global), structured (neurons / channels), schedules,
sensitivity scan, and the bytes of a pruned layer (CSR, bitmask).

numpy only. A dense layer is Y = X·W with W of shape (Q, R) = (in, out); conv
weights keep torch's (out, in, kh, kw).

=================  ==========================================================
``magnitude``      ``magnitude_mask``, ``magnitude_prune``, ``global_magnitude_*``, ``sensitivity_scan``
``structured``     ``prune_neurons``, ``prune_channels``
``schedule``       ``polynomial_sparsity`` (Zhu & Gupta), ``interval_sparsity`` (DeepThin)
``sparse``         ``CSR``, ``csr_encode`` / ``csr_decode`` / ``csr_bytes`` / ``csr_break_even_density``,
                   ``Masked``, ``masked_encode`` / ``masked_decode`` / ``masked_bytes``, ``nnz_for_budget``
=================  ==========================================================

Taught in: 01_pruning
"""
from .magnitude import (global_magnitude_mask, global_magnitude_mask_reference, global_magnitude_prune,
                        keep_largest, magnitude_mask, magnitude_mask_reference, magnitude_prune, n_pruned,
                        sensitivity_scan)
from .schedule import (interval_sparsity, interval_sparsity_reference, polynomial_sparsity,
                       polynomial_sparsity_reference)
from .sparse import (CSR, Masked, check_csr, csr_break_even_density, csr_break_even_density_reference, csr_bytes,
                     csr_decode, csr_encode, csr_encode_reference, masked_bytes, masked_decode, masked_encode,
                     masked_encode_reference, nnz_for_budget)
from .structured import (prune_channels, prune_channels_reference, prune_neurons, prune_neurons_reference,
                         unit_norms)

__all__ = [
    "nnz_for_budget",
    "CSR", "Masked", "check_csr", "csr_break_even_density", "csr_break_even_density_reference", "csr_bytes", "csr_decode",
    "csr_encode", "csr_encode_reference", "global_magnitude_mask", "global_magnitude_mask_reference",
    "global_magnitude_prune", "interval_sparsity", "interval_sparsity_reference", "keep_largest",
    "magnitude_mask", "magnitude_mask_reference", "magnitude_prune", "masked_bytes", "masked_decode",
    "masked_encode", "masked_encode_reference", "n_pruned", "polynomial_sparsity",
    "polynomial_sparsity_reference", "prune_channels", "prune_channels_reference", "prune_neurons",
    "prune_neurons_reference", "sensitivity_scan", "unit_norms",
]
