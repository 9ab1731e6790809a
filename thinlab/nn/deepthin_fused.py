"""DeepThin inference in torch without materialising W: the fused product on any device.

A DeepThin-compressed layer in evaluation mode, with no autograd graph wanted (``model.eval()``
under ``torch.no_grad()`` or ``torch.inference_mode()``, as :func:`thinlab.train.predict` runs),
gets from its parametrization a :class:`FusedWeight` instead of the dense weight: a tensor of
the weight's shape that owns no storage. ``F.linear(x, FusedWeight, bias)`` – what ``nn.Linear``
calls – runs the fused product, on one of two kernels (:func:`inference_kernel`):

- on the CPU, float32 rows go to the numpy kernel :class:`thinlab.deepthin.FusedDeepThin`
  (:func:`cpu_layer`: built once per layer and rebuilt when its stored factors or torch's thread
  count change), through zero-copy numpy views;
- elsewhere (a GPU, or inside :func:`torch_operations`), :func:`fused_linear` runs the same two
  stages in torch operations:

  1. correlation: ``torch.fft.rfft`` of the input rows, times the spectra of W^f's rows (phase-
     ramped by n − g), ``torch.fft.irfft`` – all c_k[s] for the Q + n shifts; then one gather
     reads each class's segments (an index tensor built once per layer and device);
  2. combination: X^f gathered per class (X^f rows i0_a + l·Q/g + p, zero past a column's rows)
     and one batched GEMM over the classes (``torch.einsum``) on a GPU; on the CPU a broadcast
     product summed over the segments, because torch's CPU ``bmm`` runs the tiny per-class
     matrices one at a time.

Why two kernels: on this course's 2-core machine a DNN of the course's shape (2000 → 3 × 512 →
12, random weights, its 3 hidden layers DeepThin at 1/100; one thread) took 0.98 / 2.81 ms per
forward at batch 1 / 32 in torch operations with the batched GEMM, 0.86 / 2.25 ms with the
broadcast combination, and 0.44 / 1.26 ms through the numpy kernel, against 0.53 / 1.61 ms for the
same model with dense weights.

Any other use of a FusedWeight (printing it, ``.detach().numpy()``, a convolution, ...) builds
the dense weight first and proceeds as usual, so nothing else changes. Training (or any call
with gradients enabled) keeps the plain parametrization: W = relayout(X^f·W^f), differentiable.
:func:`dense_inference` switches the fused path off, e.g. to time the two side by side.

Taught in: 03_deepthin (and timed again in 06_pipeline)
"""
from __future__ import annotations

import weakref
from contextlib import contextmanager

import numpy as np
import torch

from thinlab.deepthin import _plan
from thinlab.deepthin.fused import FusedDeepThin

_ENABLED = [True]
_CPU_KERNEL = [True]
#: per DeepThin parametrization: (key, the factors' storages, its FusedDeepThin) for CPU inference
_CPU_LAYERS: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()
#: largest broadcast product (B · r · P · R numbers) the CPU combination builds in one go
BROADCAST_MAX = 1 << 20


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


@contextmanager
def torch_operations():
    """Within the block, the fused product runs in torch operations (:func:`fused_linear`) on the
    CPU too, instead of the numpy kernel :class:`~thinlab.deepthin.FusedDeepThin`; e.g. to test or
    time the torch path on a machine without a GPU.

    Taught in: 03_deepthin
    """
    old = _CPU_KERNEL[0]
    _CPU_KERNEL[0] = False
    try:
        yield
    finally:
        _CPU_KERNEL[0] = old


def cpu_layer(parametrization, Xf: torch.Tensor, Wf: torch.Tensor, stored) -> FusedDeepThin:
    """The numpy fused kernel of a DeepThin layer, built once and kept while its factors are unchanged.

    ``Xf``, ``Wf``: the factors the forward pass uses (quantised where the layer quantises);
    ``stored``: the layer's stored tensors they come from. The kernel is rebuilt when either stored
    tensor changed (its storage or its version counter: optimizer steps, ``load_state_dict`` and
    ``copy_`` all bump it) or torch's thread count did; the entry keeps the storages alive so that
    their addresses cannot be reused by other tensors while it stands.

    Taught in: 03_deepthin
    """
    threads = torch.get_num_threads()
    key = (threads, tuple((t.data_ptr(), t._version) for t in stored))
    hit = _CPU_LAYERS.get(parametrization)
    if hit is not None and hit[0] == key:
        return hit[2]
    P = parametrization
    layer = FusedDeepThin(Xf.detach().float().numpy().copy(), Wf.detach().float().numpy().copy(),
                          Q=P.cols, R=P.rows, threads=threads)
    _CPU_LAYERS[P] = (key, [t.untyped_storage() for t in stored], layer)
    return layer


def inference_kernel(device) -> str:
    """Which kernel a DeepThin layer's fused forward runs on ``device`` for float32 rows: ``"numpy"``
    (:class:`~thinlab.deepthin.FusedDeepThin`, on the CPU) or ``"torch"`` (:func:`fused_linear`).

    Taught in: 03_deepthin
    """
    return "numpy" if torch.device(device).type == "cpu" and _CPU_KERNEL[0] else "torch"


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
    X^f row of every (class, slot, segment) – m (a zero row) where there is none –, ``xf_rows_pta``
    the same as (P, T, A), ``A``, ``T``, ``P``.

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
    return dict(N=N, ramp=ramp, rows=rows.reshape(-1), xf_rows=xf_rows,
                xf_rows_pta=np.ascontiguousarray(xf_rows.transpose(2, 1, 0)), A=A, T=T, P=P)


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
    if B == 0:                                                                # no rows (FFTs refuse length 0)
        out = x.new_zeros(B, R) if bias is None else bias.to(x.dtype).expand(B, R).clone()
        return out.reshape(*lead, R)
    xs = x.reshape(B, Q).float()
    spec = torch.fft.rfft(xs, n=N)                                           # (B, N//2 + 1)
    wspec = torch.conj(torch.fft.rfft(Wf.float(), n=N)) * plan["ramp"]       # (r, N//2 + 1)
    c = torch.fft.irfft(spec[:, None, :] * wspec, n=N)                       # (B, r, N): c_k[s] at s + n − g
    C = c.index_select(2, plan["rows"]).reshape(B, r, P, A)                  # (B, r, P·A) → (B, r, P, A)
    Xz = torch.cat([Xf.float(), Xf.new_zeros(1, r, dtype=torch.float32)])    # (m + 1, r): a zero row last
    if x.device.type == "cuda":                                               # one batched GEMM over the classes
        G = Xz[plan["xf_rows"]]                                              # (A, T, P, r)
        Y = torch.einsum("bkpa,atpk->bta", C, G)                             # (B, T, A)
    else:
        # torch's CPU bmm runs tiny per-class matrices one by one (2-3 µs each, A of them): a
        # broadcast product summed over the r·P factors is 3-6x faster at these shapes
        G = Xz.T[:, plan["xf_rows_pta"]].reshape(r * P, T, A)                # (r, P, T, A) → (r·P, T, A)
        Cf = C.reshape(B, r * P, 1, A)
        if B * r * P * T * A <= BROADCAST_MAX:
            Y = (Cf * G).sum(1)                                              # (B, r·P, T, A) → (B, T, A)
        else:                                                                # large: accumulate, no big temporary
            Y = Cf[:, 0] * G[0]
            for k in range(1, r * P):
                Y.addcmul_(Cf[:, k], G[k])
    Y = Y.reshape(B, T * A)[:, :R]                                           # (B, T, A) → (B, T·A) → (B, R)
    if bias is not None:
        Y = Y + bias
    return Y.to(x.dtype).contiguous().reshape(*lead, R)


def device_plan(plan: dict, device) -> dict:
    """:func:`layer_plan`'s arrays as tensors on ``device`` (the ramp as complex64).

    Taught in: 03_deepthin
    """
    out = dict(plan)
    out["ramp"] = torch.as_tensor(plan["ramp"].astype(np.complex64), device=device)
    out["rows"] = torch.as_tensor(plan["rows"], device=device)
    out["xf_rows"] = torch.as_tensor(plan["xf_rows"], device=device)
    out["xf_rows_pta"] = torch.as_tensor(plan["xf_rows_pta"], device=device)
    return out


class FusedWeight(torch.Tensor):
    """Stands for a DeepThin layer's weight (R, Q) in evaluation mode; owns no storage.

    ``F.linear`` with it runs :func:`fused_linear`; every other operation gets the dense
    weight (:meth:`dense`) in its place.

    Taught in: 03_deepthin
    """

    @staticmethod
    def __new__(cls, parametrization, Xf: torch.Tensor, Wf: torch.Tensor, stored):
        t = torch.Tensor._make_wrapper_subclass(cls, parametrization.weight_shape, dtype=Xf.dtype,
                                                device=Xf.device, requires_grad=False)
        t._P, t._Xf, t._Wf = parametrization, Xf, Wf
        t._stored = tuple(stored)                # the stored tensors Xf and Wf come from (see cpu_layer)
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
            P, x = w._P, args[0]
            if inference_kernel(x.device) == "numpy" and x.dtype == w._Xf.dtype == torch.float32 and x.numel():
                layer = cpu_layer(P, w._Xf, w._Wf, w._stored)             # the numpy kernel: fastest on a CPU
                with torch._C.DisableTorchFunctionSubclass():
                    Y = layer(x.detach().reshape(-1, P.cols).numpy())      # (B, R), maybe Fortran order
                    # row-major, as F.linear returns it
                    Y = np.ascontiguousarray(Y) if bias is None else np.add(Y, bias.detach().float().numpy(), order="C")
                    return torch.from_numpy(Y).reshape(*x.shape[:-1], P.rows)
            return fused_linear(x, w._Xf, w._Wf, Q=P.cols, R=P.rows, plan=P.fused_plan(w._Xf.device),
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
