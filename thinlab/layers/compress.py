"""Compress chosen layers of any torch model with one call, and report its honest size.

``compress(model, method=..., size_fraction=...)`` returns a trainable copy whose chosen layers
(every ``nn.Linear`` by default) store their weights in compressed form (see
:mod:`thinlab.layers.parametrizations`); ``size_report(model)`` counts every stored byte: the
compressed layers by their kernels' byte formulas, all other parameters and buffers densely.

Taught in: 01_pruning … 06_pipeline
"""
from __future__ import annotations

import copy

import numpy as np
import torch
from torch import nn
from torch.nn.utils import parametrize

from thinlab import deepthin, hashednet, lowrank, prune
from thinlab.layers._util import device_of
from thinlab.layers.parametrizations import DeepThin, FakeQuant, LowRank, Masked, Shared
from thinlab.quant import kmeans_quantize
from thinlab.size import LayerSize, SizeReport, dtype_bytes

METHODS = ("prune", "lowrank", "deepthin", "deepthin_shuffled", "hashed", "kmeans", "quant")


def compressible_layers(model: nn.Module, *, kinds=(nn.Linear,), min_params: int = 0) -> list[str]:
    """Names of the modules of ``kinds`` with at least ``min_params`` weights (default: every Linear)."""
    return [name for name, m in model.named_modules()
            if isinstance(m, kinds) and m.weight.numel() >= min_params and ".parametrizations" not in name]


def _matrix_shape(weight: torch.Tensor) -> tuple[int, int]:
    """Paper (Q, R) = (in·kh·kw, out) of a torch weight (out, in, ...)."""
    return int(np.prod(weight.shape[1:])), int(weight.shape[0])


def _csr_nnz_for_budget(shape2, budget: float) -> int:
    """Largest nnz whose CSR bytes fit the budget (binary search on the monotone csr_bytes)."""
    lo, hi = 0, shape2[0] * shape2[1]
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if prune.csr_bytes(shape2, mid) <= budget:
            lo = mid
        else:
            hi = mid - 1
    return lo


def _parametrization(method, weight, *, size_fraction, n_bits, quant_bits, seed, storage, rank, name,
                     dt_size=None):
    shape = tuple(weight.shape)
    Q, R = _matrix_shape(weight)
    dense = 4 * Q * R
    W = weight.detach().cpu().numpy().reshape(R, Q).T  # torch (out, in·k) → paper W (Q, R)
    if method == "prune":
        budget = size_fraction * dense
        nnz = _csr_nnz_for_budget((R, Q), budget) if storage == "csr" else None
        if storage != "csr":
            lo, hi = 0, Q * R  # bitmask storage: values + 1 bit per weight
            while lo < hi:
                mid = (lo + hi + 1) // 2
                lo, hi = (mid, hi) if prune.masked_bytes((R, Q), mid) <= budget else (lo, mid - 1)
            nnz = lo
        if nnz < 1:
            raise ValueError(f"size_fraction={size_fraction} leaves no weight of layer {name!r} {shape} in "
                             f"{storage.upper()} form; use size_fraction ≥ "
                             f"{prune.csr_bytes((R, Q), 1) / dense:.3g}")
        sparsity = (Q * R - nnz) / (Q * R)
        mask = prune.magnitude_mask(W, sparsity=sparsity).T.reshape(shape)  # paper (Q, R) → torch shape
        return Masked(torch.as_tensor(mask.astype(np.float32)), storage=storage, quant_bits=quant_bits)
    if method == "lowrank":
        k = rank or lowrank.rank_for_budget((Q, R), size_fraction=size_fraction)
        return LowRank(shape, rank=k, quant_bits=quant_bits)
    if method in ("deepthin", "deepthin_shuffled"):
        shuffled = method == "deepthin_shuffled"
        s = dt_size or deepthin.deepthin_size(Q, R, size_fraction=size_fraction, shuffled=shuffled)
        return DeepThin(shape, m=s.m, n=s.n, r=s.r, seed=seed if shuffled else None, quant_bits=quant_bits)
    if method == "hashed":
        k = hashednet.buckets_for_size_fraction(Q, R, size_fraction=size_fraction)
        idx, sign = hashednet.hash_index(Q, R, n_buckets=k, seed=seed)  # (Q, R) each
        return Shared(shape, idx=idx.T.reshape(shape), sign=sign.T.reshape(shape), n_values=k, seed=seed,
                      method="hashed")
    if method == "kmeans":
        if n_bits is None:
            raise ValueError("method='kmeans' needs n_bits (the codebook has 2**n_bits shared values)")
        res = kmeans_quantize(weight.detach().cpu().numpy(), n_clusters=2 ** n_bits, init="linear")
        return Shared(shape, idx=res.codes.astype(np.int64), n_values=2 ** n_bits, method="kmeans")
    if method == "quant":
        if n_bits is None:
            raise ValueError("method='quant' needs n_bits, e.g. n_bits=8")
        return FakeQuant(shape, n_bits=n_bits)
    raise ValueError(f"unknown method {method!r}; choose one of {METHODS}")


def compress(model: nn.Module, *, method: str, size_fraction: float | None = None, layers=None,
             n_bits: int | None = None, quant_bits: int | None = None, seed: int = 0, storage: str = "csr",
             rank: int | None = None, init: str = "project") -> nn.Module:
    """A trainable copy of ``model`` whose chosen layers are stored compressed.

    Parameters
    ----------
    method : one of ``METHODS``.
    size_fraction : compressed / dense bytes per chosen layer (the paper's α) for prune, lowrank,
        deepthin(_shuffled) and hashed; quant and kmeans take ``n_bits`` instead.
    layers : module names (default: every ``nn.Linear``).
    quant_bits : also quantise the stored tensors (prune, lowrank, deepthin) to this many bits.
    seed : hash seed (hashed) or permutation seed (deepthin_shuffled).
    init : ``"project"`` fits the compressed parameters to the trained weights (SVD projection,
        least-squares buckets, magnitude mask); ``"random"`` re-initialises them for training from
        scratch (DeepThin: the paper's initialisation).

    Taught in: 01_pruning … 06_pipeline
    """
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; choose one of {METHODS}")
    needs_fraction = method in ("prune", "lowrank", "deepthin", "deepthin_shuffled", "hashed") and rank is None
    if needs_fraction and (size_fraction is None or not 0 < size_fraction <= 1):
        raise ValueError(f"size_fraction={size_fraction!r}: method={method!r} needs a size_fraction in (0, 1], "
                         "e.g. 0.05 for a 20x smaller layer")
    if init not in ("project", "random"):
        raise ValueError(f"init={init!r}; choose 'project' or 'random'")
    device = device_of(model)               # compressed on the CPU (numpy kernels), returned where it was
    model = copy.deepcopy(model).cpu()
    names = compressible_layers(model) if layers is None else list(layers)
    modules = dict(model.named_modules())
    plan = {}
    if method.startswith("deepthin") and rank is None:
        # network-level targeting: layers stuck at their lower bound hand their overhead to the others
        shapes = {n: _matrix_shape(modules[n].weight) for n in names if n in modules}
        plan = deepthin.plan_network(shapes, size_fraction=size_fraction,
                                     shuffled=method == "deepthin_shuffled").layers
    for name in names:
        if name not in modules or not hasattr(modules[name], "weight"):
            raise ValueError(f"layer {name!r} not found (or has no weight); compressible layers: "
                             f"{compressible_layers(model)}")
        mod = modules[name]
        if parametrize.is_parametrized(mod, "weight"):
            raise ValueError(f"layer {name!r} is already compressed; compress the original model instead")
        P = _parametrization(method, mod.weight, size_fraction=size_fraction, n_bits=n_bits, quant_bits=quant_bits,
                             seed=seed, storage=storage, rank=rank, name=name, dt_size=plan.get(name))
        parametrize.register_parametrization(mod, "weight", P, unsafe=True)
        if init == "random":
            _reinit(mod, P, seed)
    return model.to(device)                 # the parametrizations' tensors follow the model's device


@torch.no_grad()
def _reinit(mod, P, seed):
    """Random initialisation of the compressed parameters (training from scratch)."""
    rng = np.random.default_rng(seed)
    orig = mod.parametrizations.weight.original if hasattr(mod.parametrizations.weight, "original") else None
    Q, R = P.cols, P.rows
    std = float(np.sqrt(2.0 / (Q + R)))  # Glorot for the dense layer being replaced
    if isinstance(P, DeepThin):
        Xf, Wf = deepthin.init_factors(P.m, P.n, P.r, target_std=std, rng=rng)
        mod.parametrizations.weight.original0.copy_(torch.as_tensor(Xf))
        mod.parametrizations.weight.original1.copy_(torch.as_tensor(Wf))
    elif isinstance(P, LowRank):
        a = np.sqrt(std / np.sqrt(P.rank))  # entries of U·V have std ≈ std
        mod.parametrizations.weight.original0.copy_(torch.as_tensor(rng.normal(0, a, (P.rows, P.rank)), dtype=torch.float32))
        mod.parametrizations.weight.original1.copy_(torch.as_tensor(rng.normal(0, a, (P.rank, P.cols)), dtype=torch.float32))
    elif orig is not None:
        orig.copy_(torch.as_tensor(rng.normal(0, std, tuple(orig.shape)), dtype=torch.float32))


def _is_internal(name: str) -> bool:
    return name.startswith("parametrizations") or ".parametrizations" in name


def size_report(model: nn.Module) -> SizeReport:
    """Honest bytes of every stored tensor of ``model``: compressed weights by their formulas, every
    other parameter and buffer densely at its dtype. Matches :func:`thinlab.layers.save_compressed`.

    Taught in: 01_pruning … 06_pipeline
    """
    rows = []
    for mname, mod in model.named_modules():
        if _is_internal(mname):
            continue
        prefix = f"{mname}." if mname else ""
        if parametrize.is_parametrized(mod, "weight"):
            P = mod.parametrizations.weight[0]
            n_stored = sum(p.numel() for p in mod.parametrizations.weight.parameters())
            if isinstance(P, Masked):
                n_stored = P.nnz()
            rows.append(LayerSize(prefix + "weight", P.method, int(n_stored), int(P.nbytes()), P.dense_bytes()))
        for kind, tensors in (("param", mod._parameters), ("buffer", mod._buffers)):
            for tname, t in tensors.items():
                if t is None or (kind == "buffer" and tname in mod._non_persistent_buffers_set):
                    continue
                nb = t.numel() * dtype_bytes(str(t.dtype).replace("torch.", ""))
                rows.append(LayerSize(prefix + tname, "dense" if kind == "param" else "buffer", int(t.numel()),
                                      int(nb), int(nb)))
    return SizeReport(rows)


def uncompressed(model: nn.Module) -> nn.Module:
    """A plain copy with every parametrization baked into ordinary dense weights."""
    model = copy.deepcopy(model)
    for _, mod in model.named_modules():
        if parametrize.is_parametrized(mod, "weight"):
            # a deep copy shares torch's generated Parametrized* class with the original, and removing
            # deletes the property from that class: give the copy a class of its own first
            cls = mod.__class__
            mod.__class__ = type(cls.__name__, cls.__bases__, dict(cls.__dict__))
            parametrize.remove_parametrizations(mod, "weight", leave_parametrized=True)
    return model
