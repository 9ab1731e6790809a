"""Half precision in torch on the CPU: which ops work, FP32 → FP16 model transfer, and training steps
in pure FP16 (the seed thesis's setup) or mixed precision (FP32 master weights, half forward and
backward, dynamic loss scaling).

On torch 2.13 (:func:`probe_cpu_half_ops`, from :mod:`thinlab.half_probe`) conv2d, pooling, linear,
batch norm, LSTM, softmax / cross-entropy and their backward passes all work in float16. What does
not, and how it is handled:

* Adam in pure float16: its default ``eps=1e-8`` rounds to 0 (NaN on any zero gradient: pure mode
  refuses it), and even with ``eps=1e-4`` the second moment 0.001·g² underflows for |g| ≲ 5e-3.
  Use SGD with momentum for pure FP16, or mixed mode, where Adam's state is float32.
* ``torch.autocast("cpu", dtype=torch.float16)`` fails on LSTM (no oneDNN FP16 LSTM), so mixed mode
  runs the model on a half copy of its weights with ``torch.func.functional_call`` instead.
* The loss is computed in float32 from upcast logits: a scaled loss (2.3 · 65536) overflows float16.
  Mixed mode keeps normalisation layers in float32, as autocast does.

Taught in: 05_fp16_transfer
"""
from __future__ import annotations

import contextlib
import copy
import functools
import warnings
from typing import Callable, NamedTuple

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

from thinlab.fp16 import DynamicLossScaler
from thinlab.half_probe import HALF_DTYPES, _check_dtype, probe_cpu_half_ops  # noqa: F401 (re-exported: same API)

NORM_TYPES = (nn.modules.batchnorm._BatchNorm, nn.LayerNorm, nn.GroupNorm)
MODES = ("pure", "mixed")


def _check_module(model, name: str = "model") -> None:
    if not isinstance(model, nn.Module):
        raise TypeError(f"{name} must be a torch.nn.Module; got {type(model).__name__}")


def _check_mode(mode) -> None:
    if mode not in MODES:
        raise ValueError(f"mode={mode!r}; choose 'pure' (everything half) or 'mixed' (FP32 master weights)")


def _check_scaler(loss_scaler) -> None:
    if not isinstance(loss_scaler, DynamicLossScaler):
        raise TypeError(f"loss_scaler must be a thinlab.fp16.DynamicLossScaler; got {type(loss_scaler).__name__}")


# ---------------------------------------------------------------- conversion

def _cast_inputs(module, args, *, dtype):
    """Forward pre-hook: floating tensor inputs are cast to ``dtype``."""
    return tuple(a.to(dtype) if torch.is_tensor(a) and a.is_floating_point() else a for a in args)


def to_half(model: nn.Module, *, dtype=torch.float16) -> nn.Module:
    """A copy of ``model`` with every floating parameter and buffer in ``dtype`` (``model`` is unchanged).

    The copy casts its floating inputs to ``dtype`` (a forward pre-hook), so it runs on the same
    float32 features. Taught in: 05_fp16_transfer
    """
    _check_module(model)
    _check_dtype(dtype)
    half = copy.deepcopy(model).to(dtype)
    half.register_forward_pre_hook(functools.partial(_cast_inputs, dtype=dtype))
    return half


def half_cast_report(model_fp32: nn.Module, *, dtype=torch.float16) -> list[dict]:
    """What casting ``model_fp32`` to ``dtype`` loses, one dict per floating parameter / buffer:
    ``name, numel, max_abs, max_abs_error, underflow_fraction`` (nonzero → 0), ``overflow`` (→ ±inf).

    Taught in: 05_fp16_transfer
    """
    _check_module(model_fp32, "model_fp32")
    _check_dtype(dtype)
    rows = []
    for name, t in list(model_fp32.named_parameters()) + list(model_fp32.named_buffers()):
        if not t.is_floating_point() or t.numel() == 0:
            continue
        t = t.detach().float()
        h = t.to(dtype).float()
        nonzero, finite = t != 0, torch.isfinite(h)
        rows.append({"name": name, "numel": t.numel(), "max_abs": float(t.abs().max()),
                     "max_abs_error": float((h - t)[finite].abs().max()) if finite.any() else float("inf"),
                     "underflow_fraction": float((h[nonzero] == 0).float().mean()) if nonzero.any() else 0.0,
                     "overflow": int((~finite).sum())})
    return rows


def transfer_fp32_to_fp16(model_fp32: nn.Module, *, dtype=torch.float16) -> nn.Module:
    """Initialise a half model from a trained FP32 model (the thesis's FP32 → FP16 transfer).

    Checks that ``model_fp32`` is float32 and that no weight overflows ``dtype``, then returns
    :func:`to_half` of it; continue training with ``half_train_step(..., mode="pure")``.

    Taught in: 05_fp16_transfer
    """
    _check_module(model_fp32, "model_fp32")
    _check_dtype(dtype)
    for name, t in list(model_fp32.named_parameters()) + list(model_fp32.named_buffers()):
        if t.is_floating_point() and t.dtype != torch.float32:
            raise ValueError(f"model_fp32 has {name} in {t.dtype}; expected an FP32 model: call .float() first")
    for r in half_cast_report(model_fp32, dtype=dtype):
        if r["overflow"]:
            raise ValueError(f"{r['name']} has {r['overflow']} value(s) beyond the {dtype} range (max |w| = "
                             f"{r['max_abs']:.3g}); clip or rescale those weights, or use dtype=torch.bfloat16")
    return to_half(model_fp32, dtype=dtype)


# ---------------------------------------------------------------- training steps

class HalfStep(NamedTuple):
    """One step's result; unpacks as ``loss, logits, skipped`` (the ``step_fn`` contract of
    ``thinlab.train.fit``): the unscaled float32 loss, detached float32 logits, whether skipped.

    Taught in: 05_fp16_transfer
    """

    loss: float
    logits: torch.Tensor
    skipped: bool


@contextlib.contextmanager
def _fp32_norms(model: nn.Module, dtype):
    """Run normalisation layers in float32 (inputs up, outputs back down to ``dtype``)."""
    handles = []
    for m in model.modules():
        if isinstance(m, NORM_TYPES):
            handles.append(m.register_forward_pre_hook(functools.partial(_cast_inputs, dtype=torch.float32)))
            handles.append(m.register_forward_hook(lambda mod, args, out: out.to(dtype)))
    try:
        yield
    finally:
        for h in handles:
            h.remove()


def _mixed_forward(model: nn.Module, x: torch.Tensor, dtype):
    """Forward on a ``dtype`` copy of the weights (norm layers stay float32): ``(logits, half params)``."""
    keep = {f"{prefix}.{n}".lstrip(".") for prefix, m in model.named_modules() if isinstance(m, NORM_TYPES)
            for n, _ in list(m.named_parameters(recurse=False)) + list(m.named_buffers(recurse=False))}
    params_h = {n: p.detach().to(dtype).requires_grad_(p.requires_grad)
                for n, p in model.named_parameters() if n not in keep}
    bufs = {n: b for n, b in model.named_buffers() if b.is_floating_point() and n not in keep}
    bufs_h = {n: b.to(dtype) for n, b in bufs.items()}
    before = {n: b.clone() for n, b in bufs_h.items()}
    with _fp32_norms(model, dtype):
        logits = functional_call(model, {**params_h, **bufs_h}, (x.to(dtype) if x.is_floating_point() else x,))
    with torch.no_grad():
        for n, b in bufs_h.items():  # a buffer the forward changed goes back to the master copy
            if not torch.equal(b, before[n]):
                bufs[n].copy_(b)
    return logits, params_h


def _check_step_args(model, batch, optimizer, loss_scaler, mode) -> torch.dtype:
    """Validate a step's arguments; returns the model's parameter dtype."""
    _check_module(model)
    _check_mode(mode)
    if not isinstance(optimizer, torch.optim.Optimizer):
        raise TypeError(f"optimizer must be a torch.optim.Optimizer; got {type(optimizer).__name__}")
    _check_scaler(loss_scaler)
    if not (isinstance(batch, (tuple, list)) and len(batch) == 2 and all(torch.is_tensor(t) for t in batch)):
        raise TypeError("batch must be a pair of tensors (x, y); e.g. (features[idx], labels[idx])")
    own = {id(p) for p in model.parameters()}
    if not all(id(p) in own for group in optimizer.param_groups for p in group["params"]):
        raise ValueError("the optimizer holds tensors that are not this model's parameters; build it on "
                         "model.parameters() of the model you pass (for pure mode: of to_half(model))")
    dtypes = {p.dtype for p in model.parameters() if p.is_floating_point()}
    if mode == "pure" and (len(dtypes) != 1 or not dtypes <= set(HALF_DTYPES)):
        raise ValueError(f"mode='pure' trains a half model but its parameters are {sorted(map(str, dtypes))}; convert "
                         "with to_half(model) and build the optimizer on its parameters, or use mode='mixed'")
    if mode == "mixed" and dtypes != {torch.float32}:
        raise ValueError(f"mode='mixed' keeps FP32 master weights but the parameters are {sorted(map(str, dtypes))}; "
                         "pass the FP32 model (and an optimizer over its parameters), or use mode='pure'")
    dtype = next(iter(dtypes))
    for group in optimizer.param_groups if mode == "pure" else []:
        eps = group.get("eps")
        if isinstance(eps, float) and torch.tensor(eps, dtype=dtype).item() == 0:
            raise ValueError(f"optimizer eps={eps:g} rounds to 0 in {dtype}, so Adam computes 0/0 = NaN for every zero "
                             "gradient; create it with eps=1e-4 for pure half training, or use mode='mixed'")
    return dtype


def half_train_step(model: nn.Module, batch, optimizer, loss_scaler: DynamicLossScaler, *,
                    mode: str = "mixed", dtype=torch.float16, loss_fn: Callable | None = None) -> HalfStep:
    """One training step in half precision with dynamic loss scaling; skips the step on overflow.

    Parameters
    ----------
    model : pure mode: a half model (:func:`to_half`); mixed mode: the FP32 model (the master weights).
    batch : ``(x, y)``: x float (B, ...) of any float dtype, y the targets of ``loss_fn``.
    optimizer : a torch optimizer over ``model.parameters()``.
    loss_scaler : :class:`thinlab.fp16.DynamicLossScaler`, updated once per call.
    mode : ``"pure"``: forward, backward, unscaling, optimizer state and step all in half (what falls
        below half's range is lost, as in the thesis); ``"mixed"``: a ``dtype`` copy of the weights
        runs forward and backward, gradients are copied to float32, unscaled there, and the
        optimizer updates the float32 masters.
    dtype : mixed mode's half dtype (pure mode uses the model's own).
    loss_fn : ``loss_fn(logits_fp32, y) -> scalar``; cross-entropy by default.

    Returns
    -------
    :class:`HalfStep` ``(loss, logits, skipped)``.

    Taught in: 05_fp16_transfer
    """
    model_dtype = _check_step_args(model, batch, optimizer, loss_scaler, mode)
    _check_dtype(dtype)
    loss_fn = F.cross_entropy if loss_fn is None else loss_fn
    (x, y), scale = batch, loss_scaler.scale_
    optimizer.zero_grad(set_to_none=True)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*RNN module weights are not part of single contiguous.*")
        if mode == "pure":
            logits, params_h = model(x.to(model_dtype) if x.is_floating_point() else x), {}
        else:
            logits, params_h = _mixed_forward(model, x, dtype)
        loss = loss_fn(logits.float(), y)  # float32: a scaled loss would overflow float16
        (loss * scale).backward()
    for n, p in model.named_parameters():  # mixed: half gradients → float32 masters
        if n in params_h and params_h[n].grad is not None:
            p.grad = params_h[n].grad.float()
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    skipped = loss_scaler.update(not all(bool(torch.isfinite(g).all()) for g in grads))
    if skipped:
        optimizer.zero_grad(set_to_none=True)
    else:
        with torch.no_grad():
            for g in grads:
                g.div_(scale)
        optimizer.step()
    return HalfStep(loss=float(loss.detach()), logits=logits.detach().float(), skipped=skipped)


def half_step_fn(loss_scaler: DynamicLossScaler, *, mode: str = "mixed", dtype=torch.float16,
                 loss_fn: Callable | None = None) -> Callable:
    """A ``step_fn(model, xb, yb, optimizer) -> (loss, logits, skipped)`` for ``thinlab.train.fit``
    that calls :func:`half_train_step` with this scaler. Taught in: 05_fp16_transfer"""
    _check_scaler(loss_scaler)
    _check_mode(mode)

    def step(model, xb, yb, optimizer):
        return half_train_step(model, (xb, yb), optimizer, loss_scaler, mode=mode, dtype=dtype, loss_fn=loss_fn)

    return step
