"""Quantise every weight layer of a torch model with the numpy kernels of :mod:`thinlab.quant`,
count its honest bytes, sweep quantisers × bits, and fine-tune with fake quantisation.

Post-training quantisation here is *simulated*: each layer's weight W (Q, R) is quantised by a
kernel, dequantised back to float32 and copied into a copy of the model, which computes exactly
what a kernel reading the stored codes would compute. The bytes are those of the stored form (packed
codes + scales / zero points / codebook / α / fraction bits + shape, from the kernels' own byte
formulas); every other tensor (biases, input statistics) stays float32 and is counted densely.

Orientation: weights are the paper's W (Q, R) = (in, out) as :func:`thinlab.nn.weights.layer_weights`
gives them, so "per channel" means one scale per output unit: ``axis=1`` (a row of torch's
``weight`` (out, in), as :class:`~thinlab.nn.FakeQuant` does it).

Taught in: 04_quantization
"""
from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
from torch import nn

from thinlab import quant
from thinlab.nn.compress import compress, compressible_layers, size_report
from thinlab.train import finetune
from thinlab.nn.weights import layer_weights, set_layer_weights
from thinlab.size import bitmask_bytes, packed_bits_bytes, shape_bytes

#: quantiser key → (label, fewest bits it takes, most bits it takes)
METHODS = {
    "fixed": ("fixed point W/F (best F)", 2, 32),
    "uniform_sym": ("uniform symmetric, per tensor", 2, 16),
    "uniform_asym": ("uniform asymmetric, per tensor", 1, 16),
    "uniform_sym_channel": ("uniform symmetric, per channel", 2, 16),
    "uniform_asym_channel": ("uniform asymmetric, per channel", 1, 16),
    "omse": ("uniform symmetric + OMSE clip", 2, 8),
    "kmeans": ("k-means codebook", 1, 16),
    "multibit": ("greedy multi-bit", 1, 8),
}
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
        return self.side_bytes - shape_bytes(self.codes.shape) + quant.huffman_bytes(self.codes,
                                                                                       n_symbols=self.n_symbols)


def _check_method(method: str, n_bits) -> int:
    if method not in METHODS:
        raise ValueError(f"method={method!r}; choose one of {tuple(METHODS)}")
    label, lo, hi = METHODS[method]
    if isinstance(n_bits, bool) or not isinstance(n_bits, (int, np.integer)) or not lo <= n_bits <= hi:
        raise ValueError(f"n_bits={n_bits!r}: {label} takes an integer number of bits in [{lo}, {hi}]")
    return int(n_bits)


def _uniform(W, n_bits, *, symmetric, axis=None, clip=None) -> QuantizedLayer:
    q = quant.quantize_uniform(W, n_bits=n_bits, symmetric=symmetric, axis=axis, clip=clip)
    offset = 2 ** (n_bits - 1) if symmetric else 0  # signed symmetric codes stored offset, as qtensor_to_bytes does
    codes = (q.codes.astype(np.int64) + offset).astype(np.uint32)
    detail = {"n_scales": int(q.scale.size)}
    if q.scale.size == 1:
        detail["scale"] = float(q.scale)
    if clip is not None and np.ndim(clip) == 0:
        detail["clip"] = float(clip)
    return QuantizedLayer(quant.dequantize(q), quant.quantized_bytes(q), codes, 2 ** n_bits,
                          packed_bits_bytes(codes.size, n_bits), detail)


def quantize_layer(W, *, method: str, n_bits: int) -> QuantizedLayer:
    """Quantise one weight matrix W (Q, R) with ``method`` (a key of :data:`METHODS`) at ``n_bits``.

    Returns a :class:`QuantizedLayer` (dequantised weight, honest bytes, stored codes).

    Taught in: 04_quantization
    """
    n_bits = _check_method(method, n_bits)
    W = np.asarray(W)
    if W.ndim != 2:
        raise ValueError(f"W has shape {W.shape}; expected a 2-D weight (Q, R) = (in, out), "
                         "e.g. from thinlab.nn.weights.layer_weights(model)")
    if method == "fixed":
        F = quant.best_frac_bits(W, word_bits=n_bits)
        codes = quant.fixed_point_codes(W, word_bits=n_bits, frac_bits=F).astype(np.int64) + 2 ** (n_bits - 1)
        return QuantizedLayer(quant.fixed_point(W, word_bits=n_bits, frac_bits=F).astype(np.float32),
                              quant.fixed_point_bytes(W.shape, word_bits=n_bits), codes.astype(np.uint32),
                              2 ** n_bits, packed_bits_bytes(W.size, n_bits), {"frac_bits": F})
    if method.startswith("uniform"):
        return _uniform(W, n_bits, symmetric="_sym" in method,
                        axis=CHANNEL_AXIS if method.endswith("_channel") else None)
    if method == "omse":
        return _uniform(W, n_bits, symmetric=True, clip=quant.omse_clip(W, n_bits=n_bits, symmetric=True))
    if method == "kmeans":
        res = quant.kmeans_quantize(W, n_clusters=2 ** n_bits)
        return QuantizedLayer(quant.kmeans_dequantize(res), quant.kmeans_bytes(res), res.codes.astype(np.uint32),
                              2 ** n_bits, packed_bits_bytes(W.size, quant.kmeans_code_bits(2 ** n_bits)),
                              {"n_iter": res.n_iter})
    mb = quant.multibit_quantize(W, n_bits=n_bits)  # multibit
    weights_of_planes = (1 << np.arange(n_bits)).reshape((-1,) + (1,) * W.ndim)  # (n_bits, 1, 1)
    codes = (mb.bits.astype(np.uint32) * weights_of_planes).sum(axis=0).astype(np.uint32)  # (Q, R) sign pattern
    return QuantizedLayer(quant.multibit_dequantize(mb), quant.multibit_bytes(mb), codes, 2 ** n_bits,
                          n_bits * bitmask_bytes(W.size), {"alphas": mb.alphas.tolist()})


def quantize_weights(weights: dict, *, method: str, n_bits: int) -> dict[str, QuantizedLayer]:
    """:func:`quantize_layer` on every W of ``weights`` (name → W (Q, R)). Taught in: 04_quantization"""
    return {name: quantize_layer(W, method=method, n_bits=n_bits) for name, W in weights.items()}


def other_bytes(model: nn.Module, *, layers=None) -> int:
    """Bytes of everything of ``model`` except the weights of ``layers`` (default every Linear): biases,
    other parameters and buffers, stored densely. Taught in: 04_quantization"""
    names = set(compressible_layers(model) if layers is None else layers)
    return sum(r.bytes for r in size_report(model).layers
               if not (r.name.endswith(".weight") and r.name[:-len(".weight")] in names))


def model_bytes(model: nn.Module, quantized: dict[str, QuantizedLayer], *, huffman: bool = False) -> int:
    """Total bytes of ``model`` with the layers in ``quantized`` stored quantised (Huffman-coded codes
    if ``huffman``) and everything else float32. Taught in: 04_quantization"""
    q = sum(l.huffman_bytes() if huffman else l.bytes for l in quantized.values())
    return other_bytes(model, layers=list(quantized)) + q


def with_weights(model: nn.Module, quantized: dict) -> nn.Module:
    """A copy of ``model`` computing with the dequantised weights (name → :class:`QuantizedLayer` or
    W (Q, R)). Taught in: 04_quantization"""
    W = {n: (q.W_hat if isinstance(q, QuantizedLayer) else np.asarray(q, dtype=np.float32))
         for n, q in quantized.items()}
    return set_layer_weights(copy.deepcopy(model), W)


def relative_error(weights: dict, quantized: dict) -> float:
    """``Σ ||W − Ŵ||² / Σ ||W||²`` over all layers (``quantized``: name → :class:`QuantizedLayer` or Ŵ):
    the share of the weights' energy lost, free of sampling noise unlike a test accuracy.
    Taught in: 04_quantization"""
    err = sum(float(np.sum((np.asarray(weights[n], np.float64)
                            - (q.W_hat if isinstance(q, QuantizedLayer) else np.asarray(q, np.float64))) ** 2))
              for n, q in quantized.items())
    power = sum(float(np.sum(np.asarray(weights[n], np.float64) ** 2)) for n in quantized)
    return err / power if power > 0 else 0.0


def sweep(model: nn.Module, score: Callable[[nn.Module], float], *, methods=None, bits=(2, 4, 8),
          layers=None) -> list[dict]:
    """Post-training quantisation of every layer in ``layers`` (default every Linear) for each method
    and bit width it takes; returns one row per (method, bits):
    ``{"method", "label", "bits", "accuracy", "bytes", "size_fraction", "relative_error"}``
    where ``accuracy = score(quantised copy)`` and ``size_fraction`` is against the float32 model.

    Taught in: 04_quantization
    """
    methods = list(METHODS) if methods is None else list(methods)
    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        raise ValueError(f"methods {unknown} are unknown; choose from {tuple(METHODS)}")
    weights = layer_weights(model, layers=layers)
    dense = size_report(model).total_bytes
    rows = []
    for method in methods:
        label, lo, hi = METHODS[method]
        for b in bits:
            if not lo <= b <= hi:
                continue
            qz = quantize_weights(weights, method=method, n_bits=b)
            nbytes = model_bytes(model, qz)
            acc = float(score(with_weights(model, qz)))
            rows.append({"method": method, "label": label, "bits": int(b), "accuracy": acc,
                         "bytes": int(nbytes), "size_fraction": nbytes / dense,
                         "relative_error": relative_error(weights, qz)})
    return rows


def fake_quant_finetune(model: nn.Module, X_train, y_train, X_val=None, y_val=None, *, n_bits: int, epochs: int,
                        lr: float = 1e-3, seed: int = 0, layers=None, progress: bool = True, device=None):
    """Quantisation-aware fine-tuning: a copy of ``model`` whose layers are fake-quantised
    (:class:`~thinlab.nn.FakeQuant`: symmetric, one scale per output channel, straight-through
    gradient) and fine-tuned for ``epochs`` (cosine decay from ``lr``, input statistics kept).

    Returns ``(model, history)``; ``size_report(model)`` counts its packed codes and scales.

    Taught in: 04_quantization
    """
    if not isinstance(n_bits, int) or isinstance(n_bits, bool) or not 2 <= n_bits <= 16:
        raise ValueError(f"n_bits={n_bits!r}: fake quantisation is symmetric and needs an int in [2, 16]")
    q = compress(model, method="quant", n_bits=n_bits, layers=layers)
    hist = finetune(q, X_train, y_train, X_val, y_val, epochs=epochs, lr=lr, seed=seed, progress=progress,
                    desc=f"fake-quant {n_bits}-bit fine-tune", device=device)
    return q, hist


def bits_per_weight(n_bytes: int, n_weights: int) -> float:
    """Average stored bits per weight. Taught in: 04_quantization"""
    return 8 * n_bytes / n_weights if n_weights else math.nan
