"""Weight access at the torch boundary: a model's layer weights as numpy in the paper's orientation
and back, and the fixed pruning masks a layer carries.

Orientation is converted here, once: torch keeps ``Linear.weight`` as (out, in) = (R, Q); the dicts
below hold the paper's W (Q, R) = ``weight.T`` (a conv weight (out, in, kh, kw) is treated as the
matrix (in·kh·kw, out)). A masked layer carries a :class:`~thinlab.nn.Masked` parametrization
(``weight = original * mask``), so gradients never revive a pruned weight.

Taught in: 01_pruning … 06_pipeline
"""
from __future__ import annotations

import copy

import numpy as np
import torch
from torch import nn
from torch.nn.utils import parametrize

from thinlab.nn.compress import compressible_layers
from thinlab.nn.parametrizations import Masked


def _modules(model: nn.Module, layers) -> dict[str, nn.Module]:
    mods = dict(model.named_modules())
    names = compressible_layers(model) if layers is None else list(layers)
    missing = [n for n in names if n not in mods or not hasattr(mods[n], "weight")]
    if missing:
        raise KeyError(f"layers {missing} are not weight layers of this model; choose from "
                       f"{compressible_layers(model)}")
    return {n: mods[n] for n in names}


def _to_paper(weight: torch.Tensor) -> np.ndarray:
    """torch (out, in, ...) → paper W (Q, R) = (in·kh·kw, out), a float32 numpy copy."""
    w = weight.detach().cpu().numpy().astype(np.float32)
    return w.reshape(w.shape[0], -1).T.copy()  # (R, Q) → (Q, R)


def _to_torch(W: np.ndarray, shape) -> torch.Tensor:
    """paper W (Q, R) → torch shape (out, in, ...)."""
    return torch.as_tensor(np.ascontiguousarray(np.asarray(W).T).reshape(shape))  # (Q, R) → (R, Q) → shape


def layer_weights(model: nn.Module, *, layers=None) -> dict[str, np.ndarray]:
    """The effective weights of ``layers`` (default: every ``nn.Linear``) as numpy copies W (Q, R).

    A masked layer gives its masked weight (zeros where pruned).

    Taught in: 01_pruning
    """
    return {n: _to_paper(m.weight) for n, m in _modules(model, layers).items()}


@torch.no_grad()
def set_layer_weights(model: nn.Module, weights: dict) -> nn.Module:
    """Copy ``weights`` (name → W (Q, R), as :func:`layer_weights` gives) into ``model`` in place; returns it.

    Taught in: 01_pruning
    """
    for name, mod in _modules(model, list(weights)).items():
        if parametrize.is_parametrized(mod, "weight"):
            raise ValueError(f"layer {name!r} is parametrized (masked / compressed); load weights into the "
                             "plain model, then prune it")
        W = np.asarray(weights[name])
        want = _to_paper(mod.weight).shape
        if W.shape != want:
            raise ValueError(f"weights[{name!r}] has shape {W.shape}, expected {want} (Q, R) = (in, out); "
                             "transpose a torch weight, or take it from layer_weights(model)")
        mod.weight.copy_(_to_torch(W, mod.weight.shape).to(mod.weight.dtype))
    return model


def apply_masks(model: nn.Module, masks: dict, *, storage: str = "csr") -> nn.Module:
    """A copy of ``model`` whose layers in ``masks`` (name → bool (Q, R), True = kept) are pruned by
    a fixed :class:`~thinlab.nn.Masked` parametrization, stored as CSR (or ``storage="bitmask"``).

    Taught in: 01_pruning
    """
    model = copy.deepcopy(model)
    for name, mod in _modules(model, list(masks)).items():
        M = np.asarray(masks[name], dtype=bool)
        if M.shape != _to_paper(mod.weight).shape:
            raise ValueError(f"masks[{name!r}] has shape {M.shape}, expected {_to_paper(mod.weight).shape} "
                             "(Q, R) like layer_weights(model)")
        if parametrize.is_parametrized(mod, "weight"):
            raise ValueError(f"layer {name!r} is already parametrized; mask the plain model instead")
        mask = _to_torch(M.astype(np.float32), mod.weight.shape).to(mod.weight.device)
        parametrize.register_parametrization(mod, "weight", Masked(mask, storage=storage), unsafe=True)
    return model


def layer_masks(model: nn.Module) -> dict[str, np.ndarray]:
    """name → bool mask (Q, R) of every masked layer of ``model``. Taught in: 01_pruning"""
    out = {}
    for name, mod in model.named_modules():
        if parametrize.is_parametrized(mod, "weight") and isinstance(mod.parametrizations.weight[0], Masked):
            out[name] = _to_paper(mod.parametrizations.weight[0].mask) > 0.5
    return out
