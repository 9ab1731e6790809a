"""Which half-precision ops work on this CPU: a probe that runs each op the course needs (conv,
pooling, linear, batch / layer norm, dropout, LSTM, softmax / cross-entropy, their backward passes,
SGD and Adam steps, autocast) in float16 or bfloat16 and compares it with float32.

Split out of :mod:`thinlab.half`, which re-exports :func:`probe_cpu_half_ops` and ``HALF_DTYPES``.

Taught in: 05_fp16_transfer
"""
from __future__ import annotations

import copy
import functools
import warnings
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

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
