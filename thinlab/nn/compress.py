"""Compress chosen layers of any torch model with one call, and report its honest size.

``compress(model, method=..., size_fraction=...)`` returns a trainable copy whose chosen layers
(every ``nn.Linear`` by default) store their weights in compressed form (see
:mod:`thinlab.nn.parametrizations`); ``size_report(model)`` counts every stored byte: the
compressed layers by their kernels' byte formulas, all other parameters and buffers densely.

Taught in: 01_pruning … 06_pipeline
"""
from __future__ import annotations

import copy

import numpy as np
import torch
from torch import nn
from torch.nn.utils import parametrize

from thinlab._validate import as_weight, check_choice, check_int, check_names, check_real
from thinlab.nn import methods
from thinlab.nn._util import device_of
from thinlab.size import LayerSize, SizeReport, dtype_bytes

#: the methods compress can apply (the registry's, :mod:`thinlab.nn.methods`)
METHODS = methods.METHODS


def check_model(model, name: str = "model") -> nn.Module:
    """``model`` if it is a ``torch.nn.Module``, else a ``TypeError`` that says how to get one.

    Taught in: 01_pruning … 06_pipeline
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"{name} is a {type(model).__name__}, not a torch.nn.Module; pass a model, e.g. "
                        "thinlab.models.build_model('dnn', 10)")
    return model


def compressible_layers(model: nn.Module, *, kinds=(nn.Linear,), min_params: int = 0) -> list[str]:
    """Names of the modules of ``kinds`` with at least ``min_params`` weights (default: every Linear). Taught in: 01_pruning … 06_pipeline"""
    check_model(model)
    min_params = check_int(min_params, name="min_params", low=0, hint="pass a number of weights, e.g. 1000")
    return [name for name, m in model.named_modules()
            if isinstance(m, kinds) and m.weight.numel() >= min_params and ".parametrizations" not in name]


def _matrix_shape(weight: torch.Tensor) -> tuple[int, int]:
    """Paper (Q, R) = (in·kh·kw, out) of a torch weight (out, in, ...)."""
    return int(np.prod(weight.shape[1:])), int(weight.shape[0])


def compress(model: nn.Module, *, method: str, size_fraction: float | None = None, layers=None,
             n_bits: int | None = None, quant_bits: int | None = None, seed: int = 0, storage: str = "csr",
             rank: int | None = None, init: str = "project", layout: dict | None = None) -> nn.Module:
    """A trainable copy of ``model`` whose chosen layers are stored compressed.

    Parameters
    ----------
    method : one of ``METHODS``.
    size_fraction : compressed / dense bytes per chosen layer (the paper's α) for prune, lowrank,
        deepthin(_shuffled) and hashed; quant and kmeans take ``n_bits`` instead.
    layers : module names (default: every ``nn.Linear``).
    quant_bits : also quantise the stored tensors (prune, lowrank, deepthin) to this many bits.
    seed : hash seed (hashed) or permutation seed (deepthin_shuffled).
    layout : per-layer settings planned for the whole network (the ``detail`` of
        ``methods.get(method).layout(...)``, e.g. ranks or DeepThin m, n, r); ``None`` plans here.
    init : ``"project"`` fits the compressed parameters to the trained weights (SVD projection,
        least-squares buckets, magnitude mask); ``"random"`` re-initialises them for training from
        scratch (DeepThin: the paper's initialisation).

    Taught in: 01_pruning … 06_pipeline
    """
    check_model(model)
    size_fraction, n_bits, quant_bits, seed, storage, rank, init = _check_options(
        method, size_fraction=size_fraction, n_bits=n_bits, quant_bits=quant_bits, seed=seed, storage=storage,
        rank=rank, init=init)
    names = compressible_layers(model) if layers is None else \
        check_names(layers, name="layers", example=compressible_layers(model)[:2] or ["hidden.0"])
    modules = dict(model.named_modules())
    for name in names:  # every chosen layer is checked before anything is built
        _check_layer(model, modules, name, method=method, n_bits=n_bits, rank=rank)
    device = device_of(model)               # compressed on the CPU (numpy kernels), returned where it was
    model = copy.deepcopy(model).cpu()
    modules = dict(model.named_modules())
    m = methods.get(method, need="make")
    plan = dict(layout or {})
    if not plan and m.plans_network and rank is None:
        # network-level targeting: layers stuck at their lower bound hand their overhead to the others
        plan = m.plan({n: _matrix_shape(modules[n].weight) for n in names}, size_fraction)
    for name in names:
        mod = modules[name]
        try:
            P = m.build(mod.weight, detail=plan.get(name), size_fraction=size_fraction, n_bits=n_bits,
                        quant_bits=quant_bits, seed=seed, storage=storage, rank=rank, name=name)
        except ValueError as exc:  # a kernel's message says what and how; say which layer too
            msg = str(exc)
            raise type(exc)(msg if repr(name) in msg else f"layer {name!r}: {msg}") from exc
        parametrize.register_parametrization(mod, "weight", P, unsafe=True)
        if init == "random":
            _reinit(mod, P, seed, m)
    return model.to(device)                 # the parametrizations' tensors follow the model's device


def _check_options(method, *, size_fraction, n_bits, quant_bits, seed, storage, rank, init):
    """Every option of :func:`compress` checked against the method; ignored options are refused."""
    m = methods.get(method, need="make")
    bits_methods = tuple(n for n in METHODS if methods.get(n).sized_by == "n_bits")
    quant_bits_methods = tuple(n for n in METHODS if methods.get(n).takes_quant_bits)
    if rank is not None:
        if not m.takes_rank:
            raise ValueError(f"rank={rank!r} applies to method='lowrank' only; method={method!r} is sized by "
                             f"{m.sized_by}: pass that instead")
        rank = check_int(rank, name="rank", low=1, hint="pass the rank of the factors, e.g. rank=8 (at most "
                         "min(in, out) of every chosen layer), or size_fraction= instead")
        if size_fraction is not None:
            raise ValueError(f"got rank={rank} and size_fraction={size_fraction!r}; pass one: rank= fixes the "
                             "factors, size_fraction= picks the largest rank that fits")
    elif m.sized_by == "size_fraction":
        hint = (f"method={method!r} needs a size_fraction in (0, 1] (compressed / dense bytes), e.g. 0.05 for a 20x "
                "smaller layer")
        if size_fraction is None:
            raise ValueError(f"size_fraction=None: {hint}" + ("; or pass rank=" if m.takes_rank else ""))
        size_fraction = check_real(size_fraction, name="size_fraction", low=0.0, high=1.0, low_open=True, hint=hint)
    elif size_fraction is not None:
        raise ValueError(f"size_fraction={size_fraction!r} does not apply to method={method!r}, which is sized by "
                         f"n_bits (bits per weight); pass n_bits=… instead")
    if m.sized_by == "n_bits":
        lo, hi = m.bits
        if n_bits is None:
            raise ValueError(f"method={method!r} needs n_bits, e.g. n_bits=8"
                             + (" (the codebook has 2**n_bits shared values)" if m.codebook else ""))
        n_bits = check_int(n_bits, name="n_bits", low=lo, high=hi,
                           hint=f"pass bits per weight, e.g. n_bits=4 ({m.label} takes {lo} … {hi}"
                           + (", symmetric codes need ≥ 2)" if lo >= 2 else ")"))
    elif n_bits is not None:
        raise ValueError(f"n_bits={n_bits!r} applies to methods {bits_methods}; to also quantise the stored tensors "
                         f"of method={method!r} pass quant_bits=… instead")
    if quant_bits is not None:
        if not m.takes_quant_bits:
            raise ValueError(f"quant_bits={quant_bits!r} applies to methods {quant_bits_methods}; "
                             + (f"method={method!r} takes n_bits" if m.sized_by == "n_bits" else
                                f"method={method!r} stores its own values: leave quant_bits=None"))
        quant_bits = check_int(quant_bits, name="quant_bits", low=2, high=16,
                               hint="pass bits per stored value, e.g. quant_bits=8 (symmetric codes need ≥ 2)")
    seed = check_int(seed, name="seed", low=0, high=2**63 - 1, hint="pass a whole number ≥ 0, e.g. seed=0")
    storage = check_choice(storage, name="storage", choices=("csr", "bitmask"))
    if storage != "csr" and not methods.get(method).takes_storage:
        raise ValueError(f"storage={storage!r} applies to method='prune' only; leave the default 'csr'")
    init = check_choice(init, name="init", choices=("project", "random"))
    return size_fraction, n_bits, quant_bits, seed, storage, rank, init


def _check_layer(model, modules, name, *, method, n_bits, rank) -> None:
    """Layer ``name`` exists, holds a finite weight of ≥ 2 dimensions, is not compressed yet, and fits."""
    if name not in modules or not isinstance(getattr(modules[name], "weight", None), torch.Tensor):
        raise ValueError(f"layer {name!r} not found (or has no weight); compressible layers: "
                         f"{compressible_layers(model)}")
    mod = modules[name]
    if parametrize.is_parametrized(mod, "weight"):
        raise ValueError(f"layer {name!r} is already compressed; compress the original model instead")
    if mod.weight.dim() < 2:
        raise ValueError(f"layer {name!r} has a {mod.weight.dim()}-D weight {tuple(mod.weight.shape)} (a norm or "
                         f"embedding scale, not a matrix); compress Linear / Conv layers: {compressible_layers(model)}")
    if not mod.weight.dtype.is_floating_point:
        raise TypeError(f"layer {name!r} weight has dtype {mod.weight.dtype}; compress a float model "
                        "(model.float())")
    as_weight(mod.weight.detach().cpu().float().numpy(), name=f"layer {name!r} weight")  # the NaN / inf policy
    Q, R = _matrix_shape(mod.weight)
    if rank is not None and rank > min(Q, R):
        raise ValueError(f"rank={rank} is above layer {name!r}'s full rank min(in, out) = {min(Q, R)} "
                         f"(weight {tuple(mod.weight.shape)}); use rank ≤ {min(Q, R)} or leave that layer out")
    if methods.get(method).codebook and 2 ** n_bits > Q * R:  # a codebook larger than the layer
        raise ValueError(f"n_bits={n_bits} gives 2**{n_bits} = {2 ** n_bits} shared values, more than the {Q * R} "
                         f"weights of layer {name!r}; use n_bits ≤ {(Q * R).bit_length() - 1} or leave that layer out")


@torch.no_grad()
def _reinit(mod, P, seed, method):
    """Random initialisation of the compressed parameters (training from scratch), the method's own."""
    if method.reinit is None:
        return
    std = float(np.sqrt(2.0 / (P.cols + P.rows)))  # Glorot for the dense layer being replaced
    method.reinit(mod.parametrizations.weight, P, np.random.default_rng(seed), std)


def _is_internal(name: str) -> bool:
    return name.startswith("parametrizations") or ".parametrizations" in name


def size_report(model: nn.Module) -> SizeReport:
    """Honest bytes of every stored tensor of ``model``: compressed weights by their formulas, every
    other parameter and buffer densely at its dtype. Matches :func:`thinlab.nn.save_compressed`.

    Taught in: 01_pruning … 06_pipeline
    """
    check_model(model)
    rows = []
    for mname, mod in model.named_modules():
        if _is_internal(mname):
            continue
        prefix = f"{mname}." if mname else ""
        if parametrize.is_parametrized(mod, "weight"):
            P = mod.parametrizations.weight[0]
            n_stored = methods.get(P.method).n_stored(P, mod.parametrizations.weight)
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
    """A plain copy with every parametrization baked into ordinary dense weights. Taught in: 01_pruning … 06_pipeline"""
    model = copy.deepcopy(check_model(model))
    for _, mod in model.named_modules():
        if parametrize.is_parametrized(mod, "weight"):
            # a deep copy shares torch's generated Parametrized* class with the original, and removing
            # deletes the property from that class: give the copy a class of its own first
            cls = mod.__class__
            mod.__class__ = type(cls.__name__, cls.__bases__, dict(cls.__dict__))
            parametrize.remove_parametrizations(mod, "weight", leave_parametrized=True)
    return model
