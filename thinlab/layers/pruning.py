"""torch side of pruning: a model's layer weights as numpy (paper orientation) and back, fixed masks
stored as CSR, magnitude pruning of a whole model (per layer or global), structured neuron pruning
that really shrinks the DNN, and gradual pruning while fine-tuning (Zhu & Gupta 2017).

The numpy kernels in :mod:`thinlab.prune` choose what to remove; this module only converts at the
torch boundary and trains. Orientation is converted here, once: torch keeps ``Linear.weight`` as
(out, in) = (R, Q); the dicts below hold the paper's W (Q, R) = ``weight.T`` (a conv weight
(out, in, kh, kw) is treated as the matrix (in·kh·kw, out)).

A pruned layer carries a :class:`~thinlab.layers.Masked` parametrization (``weight = original * mask``),
so gradients never revive a pruned weight and :func:`~thinlab.layers.size_report` counts its CSR bytes.

Taught in: 01_pruning
"""
from __future__ import annotations

import copy

import numpy as np
import torch
from torch import nn
from torch.nn.utils import parametrize

from thinlab import prune, train
from thinlab.layers._util import device_of, plain_step
from thinlab.layers.compress import compress, compressible_layers, size_report
from thinlab.layers.parametrizations import Masked
from thinlab.models import build_model


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
    a fixed :class:`~thinlab.layers.Masked` parametrization, stored as CSR (or ``storage="bitmask"``).

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


def prune_model(model: nn.Module, *, sparsity: float, layers=None, scope: str = "layer",
                storage: str = "csr") -> nn.Module:
    """Magnitude-prune ``layers`` of a copy of ``model`` in one shot.

    ``scope="layer"`` prunes ``sparsity`` of every layer (:func:`thinlab.prune.magnitude_mask`);
    ``scope="global"`` prunes ``sparsity`` of all their weights pooled under one threshold
    (:func:`thinlab.prune.global_magnitude_mask`), so layers end up with different sparsities.

    Taught in: 01_pruning
    """
    weights = layer_weights(model, layers=layers)
    if scope == "layer":
        masks = {n: prune.magnitude_mask(W, sparsity=sparsity) for n, W in weights.items()}
    elif scope == "global":
        masks = prune.global_magnitude_mask(weights, sparsity=sparsity)
    else:
        raise ValueError(f"scope={scope!r}; choose 'layer' (same sparsity per layer) or 'global' (one threshold)")
    return apply_masks(model, masks, storage=storage)


def prune_to_bytes(model: nn.Module, *, n_bytes: int, layers=None, storage: str = "csr") -> nn.Module:
    """Magnitude-prune ``layers`` with one size_fraction so that the whole model (every stored tensor,
    as :func:`~thinlab.layers.size_report` counts it) takes at most ``n_bytes``.

    Taught in: 01_pruning
    """
    names = compressible_layers(model) if layers is None else list(layers)
    rows = size_report(model).layers
    chosen = sum(r.bytes for r in rows if r.name in {f"{n}.weight" for n in names})
    other = size_report(model).total_bytes - chosen
    fraction = (n_bytes - other) / chosen
    if not 0 < fraction <= 1:
        raise ValueError(f"n_bytes={n_bytes:,} cannot be met by pruning {names}: the other tensors take "
                         f"{other:,} bytes and the chosen layers {chosen:,} dense; pass n_bytes in "
                         f"({other:,}, {other + chosen:,}]")
    return compress(model, method="prune", size_fraction=fraction, layers=names, storage=storage)


@torch.no_grad()
def shrink_dnn(model: nn.Module, *, sparsity: float | None = None, keep=None, norm: str = "l1"):
    """Structured pruning of the DNN: remove hidden units (smallest incoming-weight norm first) from
    every hidden layer and return a new, smaller, plain DNN that computes what the masked one would.

    Parameters
    ----------
    model : a :class:`thinlab.models.DNN` (plain, not masked)
    sparsity : fraction of each hidden layer's units to remove, or
    keep : units to keep, one int for all hidden layers or one per layer. Pass exactly one.
    norm : "l1" or "l2", see :func:`thinlab.prune.prune_neurons`.

    Returns
    -------
    (small DNN, dict hidden-layer name → ascending kept unit indices)

    Taught in: 01_pruning
    """
    if not hasattr(model, "hidden") or not hasattr(model, "out"):
        raise TypeError(f"shrink_dnn needs a thinlab DNN (build_model('dnn', ...)), got {type(model).__name__}")
    layers = [*model.hidden, model.out]
    n_hidden = len(model.hidden)
    keeps = [keep] * n_hidden if keep is None or np.isscalar(keep) else list(keep)
    if len(keeps) != n_hidden:
        raise ValueError(f"keep has {len(keeps)} entries for {n_hidden} hidden layers; pass one int or one per layer")
    Ws = [_to_paper(l.weight) for l in layers]  # each (Q, R)
    bs = [l.bias.detach().numpy().copy() for l in layers]
    kept = {}
    for i in range(n_hidden):
        Ws[i], bs[i], Ws[i + 1], idx = prune.prune_neurons(Ws[i], bs[i], Ws[i + 1], keep=keeps[i],
                                                             sparsity=sparsity, norm=norm)
        kept[f"hidden.{i}"] = idx
    spec = {k: v for k, v in getattr(model, "thinlab_spec", {}).items() if k not in ("name", "n_classes")}
    spec.update(hidden=tuple(W.shape[1] for W in Ws[:n_hidden]), n_frames=model.n_frames, n_mels=model.n_mels,
                time_pool=model.time_pool, dropout=model.drop.p)
    small = build_model("dnn", model.out.out_features, **spec)
    small.norm.load_state_dict(model.norm.state_dict())
    for layer, W, b in zip([*small.hidden, small.out], Ws, bs):
        layer.weight.copy_(_to_torch(W, layer.weight.shape))
        layer.bias.copy_(torch.as_tensor(b))
    return small.to(device_of(model)), kept


def finetune(model: nn.Module, X_train, y_train, X_val=None, y_val=None, *, epochs: int, lr: float = 1e-3,
             seed: int = 0, batch_size: int = 64, progress: bool = True, step_fn=None,
             desc: str = "fine-tune", device=None) -> train.History:
    """Fine-tune a (pruned) model in place: AdamW with cosine decay from ``lr``, input statistics kept.

    Masks stay fixed: a masked weight is ``original * mask`` in every forward pass. ``device``: where
    to train (see :func:`thinlab.train.resolve_device`; ``None``: where the model is).

    Taught in: 01_pruning
    """
    return train.fit(model, X_train, y_train, X_val, y_val, epochs=epochs, lr=lr, seed=seed,
                     batch_size=batch_size, schedule="cosine", set_stats=False, progress=progress,
                     step_fn=step_fn, desc=desc, device=device)


def gradual_prune(model: nn.Module, X_train, y_train, X_val=None, y_val=None, *, final_sparsity: float,
                  epochs: int, layers=None, scope: str = "layer", begin: float = 0.0, end: float = 0.7,
                  n_updates: int = 10, power: float = 3, lr: float = 1e-3, seed: int = 0, batch_size: int = 64,
                  progress: bool = True, device=None):
    """Prune a copy of ``model`` gradually while fine-tuning it (Zhu & Gupta 2017).

    Sparsity follows :func:`thinlab.prune.polynomial_sparsity` from 0 at ``begin`` to
    ``final_sparsity`` at ``end`` (fractions of all training steps), updated ``n_updates`` times;
    at each update the smallest-magnitude weights still alive are masked. The rest of the run
    fine-tunes at ``final_sparsity``.

    Returns
    -------
    (masked model, :class:`thinlab.train.History`, list of rows ``{"step", "sparsity"}`` per step)

    Taught in: 01_pruning
    """
    if not 0 <= begin < end <= 1:
        raise ValueError(f"begin={begin}, end={end}: expected 0 ≤ begin < end ≤ 1 (fractions of the training steps)")
    names = compressible_layers(model) if layers is None else list(layers)
    masked = apply_masks(model, {n: np.ones_like(W, dtype=bool) for n, W in layer_weights(model, layers=names).items()})
    mods = _modules(masked, names)
    total = epochs * -(-len(y_train) // batch_size)
    t0 = min(int(round(begin * total)), total - 1)
    t1 = min(max(t0 + 1, int(round(end * total))), total)
    frequency = max(1, (t1 - t0) // max(1, n_updates))
    state = {"step": 0, "sparsity": 0.0}
    rows = []

    @torch.no_grad()
    def set_sparsity(s):
        weights = {n: _to_paper(m.weight) for n, m in mods.items()}  # masked weights: pruned ones are 0
        if scope == "global":
            masks = prune.global_magnitude_mask(weights, sparsity=s)
        else:
            masks = {n: prune.magnitude_mask(W, sparsity=s) for n, W in weights.items()}
        for n, m in mods.items():
            m.parametrizations.weight[0].mask.copy_(_to_torch(masks[n].astype(np.float32), m.weight.shape))
        state["sparsity"] = s

    loss_fn = nn.CrossEntropyLoss()

    def step_fn(m, xb, yb, opt):
        s = prune.polynomial_sparsity(state["step"], final_sparsity=final_sparsity, begin_step=t0, end_step=t1,
                                      frequency=frequency, power=power)
        if s != state["sparsity"]:
            set_sparsity(s)
        rows.append({"step": state["step"], "sparsity": state["sparsity"]})
        state["step"] += 1
        return plain_step(m, xb, yb, opt, loss_fn)

    hist = finetune(masked, X_train, y_train, X_val, y_val, epochs=epochs, lr=lr, seed=seed, batch_size=batch_size,
                    progress=progress, step_fn=step_fn, desc="gradual prune", device=device)
    if state["sparsity"] != final_sparsity:  # too few steps to reach the end of the schedule
        set_sparsity(final_sparsity)
    return masked, hist, rows
