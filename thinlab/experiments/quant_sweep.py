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
from typing import Callable

import numpy as np
import torch
from torch import nn

from thinlab import quant
from thinlab.nn import methods
from thinlab.quant import QuantizedLayer
from thinlab.quant.layer import CHANNEL_AXIS  # noqa: F401 (the output-channel axis of W (Q, R), part of this API)
from thinlab.nn.compress import compress, compressible_layers, size_report
from thinlab.train import finetune
from thinlab.nn.weights import layer_weights, set_layer_weights

#: quantiser key → (label, fewest bits it takes, most bits it takes), from the method registry
METHODS = methods.quantizers()


def quantize_layer(W, *, method: str, n_bits: int) -> QuantizedLayer:
    """Quantise one weight matrix W (Q, R) with the registered quantiser ``method`` at ``n_bits``
    (:func:`thinlab.nn.methods.quantizers` lists them, with the bits each takes).

    Returns a :class:`~thinlab.quant.QuantizedLayer` (dequantised weight, honest bytes, stored codes).

    Taught in: 04_quantization
    """
    m = methods.get(method, need="quantize")
    n_bits = m.check_bits(n_bits)
    W = np.asarray(W)
    if W.ndim != 2:
        raise ValueError(f"W has shape {W.shape}; expected a 2-D weight (Q, R) = (in, out), "
                         "e.g. from thinlab.nn.layer_weights(model)")
    return m.quantize(W, n_bits)


def quantize_weights(weights: dict, *, method: str, n_bits: int) -> dict[str, QuantizedLayer]:
    """:func:`quantize_layer` on every W of ``weights`` (name → W (Q, R)).

    A codebook quantiser (k-means) leaves out a tiny W with no more weights than its 2**n_bits
    shared values (a CNN's first 3x3 convolution at 8 bits): its codebook alone would outweigh the
    float32 weights, so that W stays float32 and is counted densely by :func:`model_bytes`.

    Taught in: 04_quantization
    """
    small = methods.get(method, need="quantize").codebook
    return {name: quantize_layer(W, method=method, n_bits=n_bits) for name, W in weights.items()
            if not (small and np.size(W) <= 2 ** n_bits)}


def weight_tensors(model: nn.Module) -> dict[str, np.ndarray]:
    """Every weight matrix of ``model`` – Linear, convolution and recurrent – as W (Q, R) = (in·k, out),
    keyed by its parameter name (``"fc1.weight"``, ``"features.0.weight"``, ``"lstm.weight_hh_l0"``):
    every parameter with two or more dimensions. Biases, batch-norm scales and the input statistics
    (one-dimensional) are left out: they stay float32 and are counted densely.

    An LSTM's ``weight_ih_l0`` (4·hidden, in) becomes W (in, 4·hidden): one output channel per gate unit.

    Taught in: 04_quantization
    """
    return {n: p.detach().cpu().numpy().astype(np.float32).reshape(p.shape[0], -1).T.copy()  # (out, in, ...) → (Q, R)
            for n, p in model.named_parameters() if p.ndim >= 2 and ".parametrizations" not in n}


def _split_names(model: nn.Module, names) -> tuple[list, list]:
    """``names`` → (Linear / conv module names, parameter names); a clear error for anything else."""
    mods, params = dict(model.named_modules()), dict(model.named_parameters())
    as_module = [n for n in names if n in mods and n not in params and hasattr(mods[n], "weight")]
    as_param = [n for n in names if n not in as_module]
    unknown = [n for n in as_param if n not in params or params[n].ndim < 2]
    if unknown:
        raise KeyError(f"{unknown} are neither weight layers nor weight matrices of this model; choose layers "
                       f"from layer_weights(model) or parameters from weight_tensors(model): {list(weight_tensors(model))}")
    return as_module, as_param


def other_bytes(model: nn.Module, *, layers=None) -> int:
    """Bytes of everything of ``model`` except the weights of ``layers`` (default every Linear; module
    names like ``"hidden.0"`` or parameter names like ``"lstm.weight_hh_l0"``): biases, other parameters
    and buffers, stored densely. Taught in: 04_quantization"""
    names = compressible_layers(model) if layers is None else list(layers)
    as_module, as_param = _split_names(model, names)
    skip = {f"{n}.weight" for n in as_module} | set(as_param)
    return sum(r.bytes for r in size_report(model).layers if r.name not in skip)


def model_bytes(model: nn.Module, quantized: dict[str, QuantizedLayer], *, huffman: bool = False) -> int:
    """Total bytes of ``model`` with the layers in ``quantized`` stored quantised (Huffman-coded codes
    if ``huffman``) and everything else float32. Taught in: 04_quantization"""
    q = sum(l.huffman_bytes() if huffman else l.bytes for l in quantized.values())
    return other_bytes(model, layers=list(quantized)) + q


def with_weights(model: nn.Module, quantized: dict) -> nn.Module:
    """A copy of ``model`` computing with the dequantised weights (name → :class:`QuantizedLayer` or
    W (Q, R); a name is a layer as :func:`thinlab.nn.layer_weights` gives, or a parameter as
    :func:`weight_tensors` gives). Taught in: 04_quantization"""
    W = {n: (q.W_hat if isinstance(q, QuantizedLayer) else np.asarray(q, dtype=np.float32))
         for n, q in quantized.items()}
    as_module, as_param = _split_names(model, list(W))
    out = set_layer_weights(copy.deepcopy(model), {n: W[n] for n in as_module})
    params = dict(out.named_parameters())
    with torch.no_grad():
        for n in as_param:
            p = params[n]
            want = (int(np.prod(p.shape[1:])), int(p.shape[0]))
            if W[n].shape != want:
                raise ValueError(f"weights[{n!r}] has shape {W[n].shape}, expected {want} (Q, R) as weight_tensors gives")
            p.copy_(torch.as_tensor(np.ascontiguousarray(W[n].T).reshape(tuple(p.shape)), dtype=p.dtype))  # (Q, R) → (out, in, ...)
    return out


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
          layers=None, weights: dict | None = None) -> list[dict]:
    """Post-training quantisation of every layer in ``layers`` (default every Linear) – or of every
    matrix of ``weights`` (e.g. :func:`weight_tensors`: conv and LSTM weights too) – for each method
    and bit width it takes; returns one row per (method, bits):
    ``{"method", "label", "bits", "accuracy", "bytes", "size_fraction", "relative_error"}``
    where ``accuracy = score(quantised copy)`` and ``size_fraction`` is against the float32 model.

    Taught in: 04_quantization
    """
    methods = list(METHODS) if methods is None else list(methods)
    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        raise ValueError(f"methods {unknown} are unknown; choose from {tuple(METHODS)}")
    if weights is not None and layers is not None:
        raise ValueError("pass layers (Linear layer names) or weights (name → W), not both")
    weights = layer_weights(model, layers=layers) if weights is None else weights
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
                         "relative_error": relative_error(weights, {**weights, **qz})})
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
