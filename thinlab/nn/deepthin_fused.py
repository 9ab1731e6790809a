"""DeepThin inference in torch without materialising W: the fused product on any device.

A DeepThin-compressed layer in evaluation mode, with no autograd graph wanted (``model.eval()``
under ``torch.no_grad()`` or ``torch.inference_mode()``, as :func:`thinlab.train.predict` runs),
gets from its parametrization a :class:`FusedWeight` instead of the dense weight: a tensor of
the weight's shape that owns no storage. ``F.linear(x, FusedWeight, bias)`` – what ``nn.Linear``
calls – runs :func:`fused_linear`, the same two stages as :class:`thinlab.deepthin.FusedDeepThin`
in torch operations:

1. correlation: ``torch.fft.rfft`` of the input rows, times the spectra of W^f's rows (phase-
   ramped by n − g), ``torch.fft.irfft`` – all c_k[s] for the Q + n shifts; then one gather
   reads each class's segments (an index tensor built once per layer and device);
2. combination: X^f gathered per class (X^f rows i0_a + l·Q/g + p, zero past a column's rows)
   and one batched GEMM over the classes (``torch.einsum``), the classes numbered by first
   column so the result is Y's columns in order.

Any other use of a FusedWeight (printing it, ``.detach().numpy()``, a convolution, ...) builds
the dense weight first and proceeds as usual, so nothing else changes. Training (or any call
with gradients enabled) keeps the plain parametrization: W = relayout(X^f·W^f), differentiable.
:func:`dense_inference` switches the fused path off, e.g. to time the two side by side.

Taught in: 03_deepthin (and timed again in 06_pipeline)
"""
from __future__ import annotations

from contextlib import contextmanager

import numpy as np
import torch

from thinlab.deepthin import _plan

_ENABLED = [True]


@contextmanager
def dense_inference():
    """Within the block, DeepThin layers in evaluation mode rebuild W as in training (the plain
    parametrization) instead of running the fused product.

    Taught in: 03_deepthin
    """
    old = _ENABLED[0]
    _ENABLED[0] = False
    try:
        yield
    finally:
        _ENABLED[0] = old


def fused_enabled() -> bool:
    """True unless inside :func:`dense_inference`.

    Taught in: 03_deepthin
    """
    return _ENABLED[0]


def layer_plan(Q: int, R: int, m: int, n: int) -> dict:
    """Index plan of a DeepThin layer for :func:`fused_linear` (numpy, device-free).

    Returns
    -------
    dict with ``N`` (FFT length), ``ramp`` (N//2 + 1,) complex phase delaying the correlation by
    n − g, ``rows`` (P·A,) buffer index of every (segment p, class a), ``xf_rows`` (A, T, P) the
    X^f row of every (class, slot, segment) – m (a zero row) where there is none –, ``A``, ``T``,
    ``P``.

    Taught in: 03_deepthin
    """
    plan = _plan.column_classes(Q, R, n, order="column")
    A, P, T = len(plan["offsets"]), plan["P"], plan["T"]
    g = int(np.gcd(n, Q))
    N = _plan.next_fast_len(max(Q + n - 1, P * n))
    rows = n * np.arange(P)[:, None] + (n - g - plan["offsets"])[None, :]      # (P, A)
    p = np.arange(P)
    xf = plan["i0"][:, None] + p                                              # (R, P) X^f row of each segment
    xf = np.where(p < plan["rows"][:, None], np.minimum(xf, m), m)            # m: the zero row
    xf_rows = np.full((A, T, P), m, dtype=np.int64)
    xf_rows[plan["cls"], plan["slot"]] = xf
    ramp = np.exp(-2j * np.pi * np.arange(N // 2 + 1) * (n - g) / N)
    return dict(N=N, ramp=ramp, rows=rows.reshape(-1), xf_rows=xf_rows, A=A, T=T, P=P)


def fused_linear(x: torch.Tensor, Xf: torch.Tensor, Wf: torch.Tensor, *, Q: int, R: int, plan: dict,
                 bias: torch.Tensor | None = None) -> torch.Tensor:
    """``x @ W + bias`` for the DeepThin W (Q, R) = relayout(X^f·W^f), without building W.

    Parameters
    ----------
    x : tensor (..., Q)
    Xf : tensor (m, r); Wf : tensor (r, n)
    plan : :func:`layer_plan`'s dict, its arrays as tensors on x's device (see :func:`device_plan`)
    bias : tensor (R,) or None

    Returns
    -------
    tensor (..., R), x's dtype (float32 arithmetic).

    Taught in: 03_deepthin
    """
    lead, B = x.shape[:-1], int(np.prod(x.shape[:-1], dtype=np.int64))
    r, N, A, T, P = Wf.shape[0], plan["N"], plan["A"], plan["T"], plan["P"]
    xs = x.reshape(B, Q).float()
    spec = torch.fft.rfft(xs, n=N)                                           # (B, N//2 + 1)
    wspec = torch.conj(torch.fft.rfft(Wf.float(), n=N)) * plan["ramp"]       # (r, N//2 + 1)
    c = torch.fft.irfft(spec[:, None, :] * wspec, n=N)                       # (B, r, N): c_k[s] at s + n − g
    C = c.index_select(2, plan["rows"]).reshape(B, r, P, A)                  # (B, r, P·A) → (B, r, P, A)
    Xz = torch.cat([Xf.float(), Xf.new_zeros(1, r, dtype=torch.float32)])    # (m + 1, r): a zero row last
    G = Xz[plan["xf_rows"]]                                                  # (A, T, P, r)
    Y = torch.einsum("bkpa,atpk->bta", C, G).reshape(B, T * A)[:, :R]        # (B, T, A) → (B, T·A) → (B, R)
    if bias is not None:
        Y = Y + bias
    return Y.to(x.dtype).reshape(*lead, R)


def device_plan(plan: dict, device) -> dict:
    """:func:`layer_plan`'s arrays as tensors on ``device`` (the ramp as complex64).

    Taught in: 03_deepthin
    """
    out = dict(plan)
    out["ramp"] = torch.as_tensor(plan["ramp"].astype(np.complex64), device=device)
    out["rows"] = torch.as_tensor(plan["rows"], device=device)
    out["xf_rows"] = torch.as_tensor(plan["xf_rows"], device=device)
    return out


class FusedWeight(torch.Tensor):
    """Stands for a DeepThin layer's weight (R, Q) in evaluation mode; owns no storage.

    ``F.linear`` with it runs :func:`fused_linear`; every other operation gets the dense
    weight (:meth:`dense`) in its place.

    Taught in: 03_deepthin
    """

    @staticmethod
    def __new__(cls, parametrization, Xf: torch.Tensor, Wf: torch.Tensor):
        t = torch.Tensor._make_wrapper_subclass(cls, parametrization.weight_shape, dtype=Xf.dtype,
                                                device=Xf.device, requires_grad=False)
        t._P, t._Xf, t._Wf = parametrization, Xf, Wf
        return t

    def dense(self) -> torch.Tensor:
        """The weight built the plain way: relayout(X^f·W^f) in torch's (R, Q) orientation.

        Taught in: 03_deepthin
        """
        P = self._P
        flat = (self._Xf @ self._Wf).reshape(-1)[: P.rows * P.cols]              # (m, n) → (m·n,) → first Q·R
        return flat.reshape(P.weight_shape)

    def __repr__(self, *, tensor_contents=None):
        return f"FusedWeight(shape={tuple(self.shape)}, m={self._P.m}, n={self._P.n}, r={self._P.r})"

    @classmethod
    def __torch_function__(cls, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func is torch.nn.functional.linear and len(args) >= 2 and type(args[1]) is cls \
                and not isinstance(args[0], cls):
            w = args[1]
            bias = args[2] if len(args) > 2 else kwargs.get("bias")
            P = w._P
            return fused_linear(args[0], w._Xf, w._Wf, Q=P.cols, R=P.rows, plan=P.fused_plan(w._Xf.device),
                                bias=bias)
        with torch._C.DisableTorchFunctionSubclass():
            return func(*_dense_args(args), **_dense_args(kwargs))

    @classmethod
    def __torch_dispatch__(cls, func, types, args=(), kwargs=None):
        return func(*_dense_args(args), **_dense_args(kwargs or {}))


def _dense_args(tree):
    """``tree`` (tuple / list / dict, nested) with every FusedWeight replaced by its dense weight."""
    if isinstance(tree, FusedWeight):
        with torch._C.DisableTorchFunctionSubclass():
            return tree.dense()
    if isinstance(tree, (tuple, list)):
        return type(tree)(_dense_args(t) for t in tree)
    if isinstance(tree, dict):
        return {k: _dense_args(v) for k, v in tree.items()}
    return tree
