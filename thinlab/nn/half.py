"""Half precision in torch on the CPU: which ops work, FP32 → FP16 model transfer, and training steps
in pure FP16 (the seed thesis's setup) or mixed precision (FP32 master weights, half forward and
backward, dynamic loss scaling).

On torch 2.13 (:func:`probe_cpu_half_ops` below) conv2d, pooling, linear,
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

from thinlab.precision import DynamicLossScaler

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
        raise TypeError(f"loss_scaler must be a thinlab.precision.DynamicLossScaler; got {type(loss_scaler).__name__}")


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
    loss_scaler : :class:`thinlab.precision.DynamicLossScaler`, updated once per call.
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


# ── which half-precision ops work on this CPU ─────────────────────────────────────────────────────

HALF_DTYPES = (torch.float16, torch.bfloat16)


def _check_dtype(dtype) -> None:
    if dtype not in HALF_DTYPES:
        raise ValueError(f"dtype={dtype!r} must be torch.float16 or torch.bfloat16")


def _close(out, ref) -> bool:
    """Finite and within 2 % of the float32 result's magnitude, for every output tensor."""
    pairs = zip(out, ref) if isinstance(out, tuple) else [(out, ref)]
    return all(bool(torch.isfinite(o).all())
               and float((o.float() - r).abs().max()) <= 2e-2 * (float(r.abs().max()) + 1e-3) for o, r in pairs)


def _probes() -> dict[str, Callable]:
    """Each probe maps a dtype to the op's output(s), computed from the same float32 inputs."""
    g = torch.Generator().manual_seed(0)
    x4, w4, b4 = torch.randn(2, 3, 8, 8, generator=g), torch.randn(4, 3, 3, 3, generator=g), torch.randn(4, generator=g)
    x2, w2, seq = torch.randn(5, 6, generator=g), torch.randn(3, 6, generator=g), torch.randn(2, 7, 6, generator=g)
    target, lstm = torch.tensor([0, 2, 1, 1, 0]), nn.LSTM(6, 5, batch_first=True)
    grad = torch.randn(6, generator=g) * 1e-3
    grad[0] = 0.0  # an exact zero gradient, as dead ReLUs give

    def backward(out, dt, leaves):  # a fixed random upstream gradient (a plain sum gives 0 through batch_norm)
        out.backward(torch.randn(out.shape, generator=torch.Generator().manual_seed(1)).to(dt))
        return tuple(t.grad for t in leaves)

    def grads(f, *inputs):
        def run(dt):
            leaves = [t.clone().to(dt).requires_grad_() for t in inputs]
            return backward(f(*leaves), dt, leaves)
        return run

    def lstm_run(dt, grad_too=False):
        m = copy.deepcopy(lstm).to(dt)
        out = m(seq.to(dt))[0]
        return backward(out, dt, list(m.parameters())) if grad_too else out

    def opt_steps(make, dt):  # three steps from the same gradient
        p = nn.Parameter(torch.linspace(-1, 1, 6).to(dt))
        p.grad, opt = grad.to(dt), make([p])
        for _ in range(3):
            opt.step()
        return p.detach()

    def autocast_lstm(dt):
        with torch.autocast("cpu", dtype=dt):
            return lstm(seq)[0]

    def dropout(dt):  # random, so checked by its rule: every output is 0 or 2x the input
        out, xin = F.dropout(x4.to(dt), 0.5, training=True).float(), x4.to(dt).float()
        return bool(((out == 0) | torch.isclose(out, 2 * xin, rtol=1e-2)).all())

    opt = functools.partial
    return {
        "conv2d": lambda dt: F.conv2d(x4.to(dt), w4.to(dt), b4.to(dt)),
        "conv2d_backward": grads(F.conv2d, x4, w4),
        "max_pool2d": lambda dt: F.max_pool2d(x4.to(dt), 2),
        "linear": lambda dt: F.linear(x2.to(dt), w2.to(dt)),
        "linear_backward": grads(F.linear, x2, w2),
        "batch_norm": lambda dt: F.batch_norm(x4.to(dt), None, None, b4[:3].to(dt), b4[:3].to(dt), training=True),
        "batch_norm_backward": grads(lambda x: F.batch_norm(x, None, None, training=True), x4),
        "layer_norm": lambda dt: F.layer_norm(x4.to(dt), (8,)),
        "dropout": dropout,
        "lstm": lstm_run,
        "lstm_backward": functools.partial(lstm_run, grad_too=True),
        "softmax": lambda dt: F.softmax(x2.to(dt), dim=1),
        "cross_entropy": lambda dt: F.cross_entropy(x2.to(dt), target),
        "cross_entropy_backward": grads(lambda x: F.cross_entropy(x, target), x2),
        "sgd_momentum_step": opt(opt_steps, lambda ps: torch.optim.SGD(ps, lr=0.1, momentum=0.9)),
        "adam_step_default_eps": opt(opt_steps, lambda ps: torch.optim.Adam(ps, lr=1e-2)),
        "adam_step_eps_1e-4": opt(opt_steps, lambda ps: torch.optim.Adam(ps, lr=1e-2, eps=1e-4)),
        "autocast_lstm": autocast_lstm,
    }


def probe_cpu_half_ops(*, dtype=torch.float16) -> dict[str, bool]:
    """Which ops work in ``dtype`` on this CPU: ``{op name: True/False}``.

    An op passes if it runs, gives finite values and matches float32 within 2 % of the result's
    magnitude. Backward passes start from a fixed random upstream gradient; optimizer probes take
    three steps on gradients of about 1e-3 with one exact zero; ``dropout`` is checked by its rule;
    ``autocast_lstm`` runs an FP32 LSTM under ``torch.autocast("cpu", dtype)``. On torch 2.13 all
    pass in float16 except ``adam_step_default_eps`` (NaN), ``adam_step_eps_1e-4`` (the second
    moment underflows) and ``autocast_lstm``; in bfloat16 all pass.

    Taught in: 05_fp16_transfer
    """
    _check_dtype(dtype)
    results = {}
    for name, run in _probes().items():
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                out = run(dtype)
                results[name] = out if isinstance(out, bool) else _close(out, run(torch.float32))
        except Exception:  # an unsupported op raises: that is the answer being probed for
            results[name] = False
    return results
