"""torch parametrizations that store a layer's weight in compressed form and rebuild it in forward.

Each class is registered with ``torch.nn.utils.parametrize.register_parametrization`` on a layer's
``weight``. Every one is trainable end to end (gradients flow into the compressed parameters),
knows its honest ``nbytes()`` (from the numpy kernels' byte formulas), and can ``export`` its stored
form as numpy arrays for :mod:`thinlab.nn.io`.

Orientation, converted here once: torch keeps ``Linear.weight`` as (out, in) = (R, Q), the transpose
of the paper's W (Q, R). Conv weights (out, in, kh, kw) are treated as the matrix (out, in·kh·kw).
DeepThin's re-layout is convenient in torch's orientation: the row-major elements of W_aux fill W
(Q, R) column by column, i.e. they fill ``weight`` (R, Q) row by row: ``weight = flat[:Q·R].view(R, Q)``.

Optional ``quant_bits`` quantises the stored tensors (symmetric, per row, fake-quantised with a
straight-through estimator while training) for the prune → factorize → quantize pipeline.

Taught in: 01_pruning (Masked), 02_svd (LowRank), 03_deepthin (DeepThin, Hashed),
04_quantization (FakeQuant, Shared k-means), 06_pipeline (quant_bits)
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from thinlab import hashednet
from thinlab.deepthin import deepthin_bytes, shuffle_permutation, unrelayout
from thinlab.nn.deepthin_fused import FusedWeight, device_plan, fused_enabled, layer_plan
from thinlab.lowrank import lowrank_bytes, truncated_svd
from thinlab.prune import csr_bytes, masked_bytes
from thinlab.quant import kmeans_code_bits
from thinlab.size import SEED_BYTES, packed_bits_bytes, shape_bytes

SCALE_BYTES = 4


def fake_quant_rows(t: torch.Tensor, n_bits: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Symmetric per-row quantisation of a 2-D tensor with a straight-through gradient.

    Returns (dequantised tensor with STE gradient, integer codes, float32 scales (rows,)).
    scale = max|row| / (2**(n_bits-1) - 1) (1 for an all-zero row); codes = round(t / scale).

    Taught in: 04_quantization, 06_pipeline
    """
    qmax = 2 ** (n_bits - 1) - 1
    scale = (t.detach().abs().amax(dim=1).double() / qmax).float()  # (rows,)
    scale = torch.where(scale > 0, scale, torch.ones_like(scale))
    codes = torch.clamp(torch.round(t.detach() / scale[:, None]), -qmax, qmax)
    deq = codes * scale[:, None]
    return t + (deq - t).detach(), codes.to(torch.int32), scale


def quant_rows_bytes(shape, n_bits: int) -> int:
    """Bytes of a 2-D tensor quantised per row: packed codes + one float32 scale per row + shape. Taught in: 04_quantization, 06_pipeline"""
    return packed_bits_bytes(int(np.prod(shape)), n_bits) + SCALE_BYTES * int(shape[0]) + shape_bytes(shape)


def _check_bits(quant_bits):
    if quant_bits is not None and not (isinstance(quant_bits, int) and 2 <= quant_bits <= 16):
        raise ValueError(f"quant_bits={quant_bits!r} must be None or an int in [2, 16] (symmetric codes need ≥ 2)")
    return quant_bits


class _Base(nn.Module):
    """Shared plumbing: the weight's torch shape, its matrix view (rows = out), optional quantisation."""

    method = "dense"

    def __init__(self, weight_shape, quant_bits=None):
        super().__init__()
        self.weight_shape = tuple(int(s) for s in weight_shape)
        self.rows = self.weight_shape[0]
        self.cols = int(np.prod(self.weight_shape[1:]))
        self.quant_bits = _check_bits(quant_bits)
        self.frozen = False  # True after loading: stored tensors are already quantised values

    def _q(self, t):
        if self.quant_bits is None or self.frozen:
            return t
        return fake_quant_rows(t, self.quant_bits)[0]

    def _tensor_bytes(self, shape) -> int:
        """Bytes of one stored 2-D tensor: float32 values, or packed codes + scales."""
        if self.quant_bits is None:
            return 4 * int(np.prod(shape)) + shape_bytes(shape)
        return quant_rows_bytes(shape, self.quant_bits)

    def dense_bytes(self) -> int:
        return 4 * self.rows * self.cols

    def extra_repr(self) -> str:
        q = f", quant_bits={self.quant_bits}" if self.quant_bits else ""
        return f"weight_shape={self.weight_shape}, bytes={self.nbytes():,}{q}"


class Masked(_Base):
    """Pruned weight: ``weight * mask`` (mask a fixed 0/1 buffer). Stored as CSR (or a bitmask).

    Taught in: 01_pruning
    """

    method = "prune"

    def __init__(self, mask: torch.Tensor, *, storage: str = "csr", quant_bits=None):
        super().__init__(mask.shape, quant_bits)
        if storage not in ("csr", "bitmask"):
            raise ValueError(f"storage={storage!r}; choose 'csr' or 'bitmask'")
        self.storage = storage
        self.register_buffer("mask", mask.to(torch.float32))

    def forward(self, W):
        W = W * self.mask
        if self.quant_bits is None or self.frozen:
            return W
        return fake_quant_rows(W.reshape(self.rows, -1), self.quant_bits)[0].reshape(W.shape) * self.mask

    def nnz(self) -> int:
        return int(self.mask.sum().item())

    def nbytes(self) -> int:
        shape2 = (self.rows, self.cols)
        if self.quant_bits is None:
            f = csr_bytes if self.storage == "csr" else masked_bytes
            return f(shape2, self.nnz())
        # quantised values (packed) + per-row scales + the same index structure as float32 CSR
        index_part = (csr_bytes if self.storage == "csr" else masked_bytes)(shape2, self.nnz()) - 4 * self.nnz()
        return packed_bits_bytes(self.nnz(), self.quant_bits) + SCALE_BYTES * self.rows + index_part


class LowRank(_Base):
    """Rank-r factorisation ``weight (R, Q) = U (R, r) · V (r, Q)`` (paper: W = A·B, U = Bᵀ, V = Aᵀ).

    ``right_inverse`` initialises the factors by truncated SVD of the current weight.
    Taught in: 02_svd
    """

    method = "lowrank"

    def __init__(self, weight_shape, *, rank: int, quant_bits=None):
        super().__init__(weight_shape, quant_bits)
        self.rank = int(rank)

    def forward(self, U, V):
        return (self._q(U) @ self._q(V)).reshape(self.weight_shape)

    def right_inverse(self, weight):
        W = weight.detach().reshape(self.rows, self.cols).T.cpu().numpy()  # torch (R, Q·k) → paper W (Q, R)
        A, B = truncated_svd(W, rank=self.rank)  # A (Q, r), B (r, R)
        return torch.from_numpy(np.ascontiguousarray(B.T)), torch.from_numpy(np.ascontiguousarray(A.T))

    def nbytes(self) -> int:
        if self.quant_bits is None:
            return lowrank_bytes((self.cols, self.rows), self.rank)
        return self._tensor_bytes((self.rows, self.rank)) + self._tensor_bytes((self.rank, self.cols))


class DeepThin(_Base):
    """DeepThin: ``W_aux = X^f (m, r) · W^f (r, n)``, its row-major elements fill the weight.

    ``seed`` set → the shuffled variant (a fixed seeded permutation of the m·n positions).
    ``right_inverse`` projects the current weight: un-re-layout it into (m, n) (zeros in the unused
    tail) and take the rank-r truncated SVD; :func:`thinlab.deepthin.init_factors` gives the paper's
    random initialisation for training from scratch instead.
    Taught in: 03_deepthin
    """

    method = "deepthin"

    def __init__(self, weight_shape, *, m: int, n: int, r: int, seed: int | None = None, quant_bits=None):
        super().__init__(weight_shape, quant_bits)
        self.m, self.n, self.r, self.seed = int(m), int(n), int(r), seed
        Q, R = self.cols, self.rows
        if self.m * self.n < Q * R:
            raise ValueError(f"m·n = {m}·{n} < Q·R = {Q}·{R}: W_aux cannot fill the weight; use deepthin_size")
        perm = None if seed is None else torch.from_numpy(shuffle_permutation(self.m, self.n, seed=seed)[: Q * R])
        self.register_buffer("perm", perm, persistent=False)
        if seed is not None:
            self.method = "deepthin_shuffled"

    def forward(self, Xf, Wf):
        stored = (Xf, Wf)
        Xf, Wf = self._q(Xf), self._q(Wf)
        if self.perm is None and not self.training and not torch.is_grad_enabled() and fused_enabled():
            return FusedWeight(self, Xf, Wf, stored)  # inference: nn.Linear runs the fused product, W never built
        flat = (Xf @ Wf).reshape(-1)  # (m, n) → (m·n,) row-major
        flat = flat[: self.rows * self.cols] if self.perm is None else flat[self.perm]
        return flat.reshape(self.weight_shape)  # (Q·R,) fills weight (R, Q) row by row = W (Q, R) by columns

    def fused_plan(self, device) -> dict:
        """Index plan of the fused product (:func:`thinlab.nn.deepthin_fused.layer_plan`) on ``device``."""
        plans = self.__dict__.setdefault("_fused_plans", {})
        if str(device) not in plans:
            plans[str(device)] = device_plan(layer_plan(self.cols, self.rows, self.m, self.n), device)
        return plans[str(device)]

    def right_inverse(self, weight):
        W = weight.detach().reshape(self.rows, self.cols).T.cpu().numpy().astype(np.float32)  # paper (Q, R)
        perm = None if self.seed is None else shuffle_permutation(self.m, self.n, seed=self.seed)
        W_aux = unrelayout(W, m=self.m, n=self.n, perm=perm)  # (m, n)
        A, B = truncated_svd(W_aux, rank=min(self.r, self.m, self.n))  # (m, r), (r, n)
        if A.shape[1] < self.r:  # rank capped by a thin W_aux: pad with zero factors
            A = np.pad(A, ((0, 0), (0, self.r - A.shape[1])))
            B = np.pad(B, ((0, self.r - B.shape[0]), (0, 0)))
        return torch.from_numpy(np.ascontiguousarray(A)), torch.from_numpy(np.ascontiguousarray(B))

    def nbytes(self) -> int:
        if self.quant_bits is None:
            return deepthin_bytes(self.m, self.n, self.r, shuffled=self.seed is not None)
        return (self._tensor_bytes((self.m, self.r)) + self._tensor_bytes((self.r, self.n))
                + (SEED_BYTES if self.seed is not None else 0))


class Shared(_Base):
    """Weight sharing: ``weight = values[idx] (· sign)``; gradients sum into the shared values.

    HashedNets (``idx``, ``sign`` from a seeded hash; bytes = buckets + seed + shape) and k-means
    weight sharing (``idx`` = cluster codes, no sign; bytes = packed codes + codebook + shape).
    ``right_inverse`` sets each shared value to the least-squares fit of the weights mapped to it.
    Taught in: 03_deepthin (hashed), 04_quantization (k-means)
    """

    def __init__(self, weight_shape, *, idx: np.ndarray, n_values: int, sign: np.ndarray | None = None,
                 seed: int | None = None, method: str = "hashed"):
        super().__init__(weight_shape)
        self.n_values, self.seed, self.method = int(n_values), seed, method
        self.register_buffer("idx", torch.as_tensor(np.asarray(idx, dtype=np.int64)).reshape(self.weight_shape),
                             persistent=False)
        self.register_buffer("sign", None if sign is None else
                             torch.as_tensor(np.asarray(sign, dtype=np.float32)).reshape(self.weight_shape),
                             persistent=False)

    def forward(self, values):
        W = values[self.idx]
        return W if self.sign is None else W * self.sign

    def right_inverse(self, weight):
        w = weight.detach().reshape(-1).double()
        if self.sign is not None:
            w = w * self.sign.reshape(-1).double()
        idx = self.idx.reshape(-1)
        total = torch.zeros(self.n_values, dtype=torch.float64).index_add_(0, idx, w)
        count = torch.bincount(idx, minlength=self.n_values).clamp_min(1)
        return (total / count).float()

    def nbytes(self) -> int:
        if self.sign is not None:  # HashedNets: the buckets, the hash seed and the shape
            return hashednet.hashed_bytes(self.n_values)
        return packed_bits_bytes(self.rows * self.cols, kmeans_code_bits(self.n_values)) + 4 * self.n_values + \
            shape_bytes(self.weight_shape)


class FakeQuant(_Base):
    """Uniform symmetric per-output-channel quantisation with a straight-through estimator.

    Stored as packed ``n_bits`` codes + one float32 scale per output channel + shape.
    Taught in: 04_quantization
    """

    method = "quant"

    def __init__(self, weight_shape, *, n_bits: int):
        super().__init__(weight_shape, quant_bits=n_bits)

    def forward(self, W):
        return self._q(W.reshape(self.rows, self.cols)).reshape(self.weight_shape)

    def nbytes(self) -> int:
        return packed_bits_bytes(self.rows * self.cols, self.quant_bits) + SCALE_BYTES * self.rows + \
            shape_bytes(self.weight_shape)
