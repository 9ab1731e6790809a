"""The registry of compression methods: one entry per method, read by everything that handles methods.

Each :class:`Method` declares what the rest of thinlab needs to know about it:

* its **label** and the **lesson** that teaches it;
* how it is **sized**: by ``size_fraction`` (compressed / dense bytes; its **plan** solves a byte
  budget for a set of layers into its hyper-parameters: nnz, rank, DeepThin m·n·r, buckets) or by
  ``n_bits`` (with the bit widths it takes);
* its torch **parametrization** (:meth:`Method.build`), its random re-initialisation for training
  from scratch, and its stored tensors (:meth:`Method.n_stored`), whose exact bytes the
  parametrization's ``nbytes()`` gives;
* its **export** to, **import** from and **file check** of the ``.npz`` format of
  :func:`thinlab.nn.save_compressed`;
* for the post-training quantisers of lesson 04, its numpy **quantize** (W, n_bits) →
  :class:`thinlab.quant.QuantizedLayer`.

:func:`thinlab.nn.compress`, :func:`~thinlab.nn.save_compressed` / :func:`~thinlab.nn.load_compressed`,
the paper comparison (:mod:`thinlab.experiments.compare`), the quantisation sweeps
(:mod:`thinlab.experiments.quant_sweep`), the Pareto chart and the bits explorer all look methods up
here; none of them branches on a method's name. Adding a method is one :func:`register` call plus its
kernel; ``tests/test_methods_contract.py`` then runs it through the same checks as every other method.

Taught in: 01_pruning … 06_pipeline
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch

from thinlab import deepthin, hashednet, lowrank, prune, quant
from thinlab.nn.parametrizations import DeepThin, FakeQuant, LowRank, Masked, Shared, fake_quant_rows
from thinlab.size import packed_bits_bytes

_F32, _U8 = np.dtype(np.float32), np.dtype(np.uint8)


@dataclass(frozen=True)
class Method:
    """One compression method (see the module docstring for what each field is for).

    Taught in: 01_pruning … 06_pipeline
    """

    name: str
    label: str
    lesson: str
    sized_by: str                                    # "size_fraction" or "n_bits"
    bits: tuple = (2, 16)                            # n_bits it takes (sized_by "n_bits" or a quantiser)
    takes_quant_bits: bool = False                   # may its stored tensors be quantised too (pipeline)?
    takes_rank: bool = False                         # may compress(rank=…) size it instead?
    takes_storage: bool = False                      # csr / bitmask choice
    factorizes: bool = False                         # stores factors (pipeline stage 2)
    gradual: bool = False                            # trained from scratch: starts dense, the mask shrinks
    codebook: bool = False                           # n_bits sizes a codebook of 2**n_bits shared values
    plans_network: bool = False                      # compress plans all chosen layers together
    group: str = ""                                  # family, for charts (≤ 10 colours)
    plan: Callable | None = None                     # (shapes, size_fraction, **kw) → {layer: detail}
    layer_bytes: Callable | None = None              # (shape (Q, R), detail) → stored bytes of one layer
    make: Callable | None = None                     # (weight, W (Q, R), opts, detail) → parametrization
    reinit: Callable | None = None                   # (pl, P, rng, std) → None
    export: Callable | None = None                   # (P, pl, key, arrays) → settings for the file
    load: Callable | None = None                     # (key, cfg, arrays, shape) → (P, originals)
    check_file: Callable | None = None               # (key, cfg, arrays, rows, cols, bad) → array names
    quantize: Callable | None = None                 # (W (Q, R), n_bits) → quant.QuantizedLayer
    aliases: tuple = field(default_factory=tuple)

    @property
    def compresses(self) -> bool:
        """Can :func:`thinlab.nn.compress` store a torch layer this way?"""
        return self.make is not None

    def check_bits(self, n_bits) -> int:
        """``n_bits`` as an int if this method takes it, else a ``ValueError`` naming the range."""
        lo, hi = self.bits
        if isinstance(n_bits, bool) or not isinstance(n_bits, (int, np.integer)) or not lo <= n_bits <= hi:
            raise ValueError(f"n_bits={n_bits!r}: {self.label} takes an integer number of bits in [{lo}, {hi}]")
        return int(n_bits)

    def build(self, weight: torch.Tensor, *, detail=None, **opts):
        """The parametrization storing ``weight`` (torch (out, in, …)) this way.

        ``detail``: this layer's entry of :meth:`plan` (network-planned methods); otherwise the
        layer is sized on its own from ``opts`` (``size_fraction``, ``n_bits``, ``rank``, …).
        """
        W = weight.detach().cpu().numpy().reshape(weight.shape[0], -1).T   # torch (out, in·k) → paper (Q, R)
        return self.make(weight, W, opts, detail)

    def layout(self, shapes: dict, size_fraction: float, **kw) -> dict:
        """The plan for layers ``shapes`` (name → paper (Q, R)) at ``size_fraction`` of their dense bytes:
        ``{"bytes", "size_fraction" (achieved), "detail" (per layer)}``."""
        if self.plan is None:
            raise ValueError(f"method {self.name!r} is sized by n_bits, not by a byte budget")
        detail = self.plan(shapes, size_fraction, **kw)
        nbytes = sum(self.layer_bytes(shapes[k], d) for k, d in detail.items())
        dense = sum(4 * q * r for q, r in shapes.values())
        return {"bytes": int(nbytes), "size_fraction": nbytes / dense, "detail": detail}

    def n_stored(self, P, pl) -> int:
        """How many numbers the layer stores (nonzeros for a mask, else its parameters)."""
        return P.nnz() if isinstance(P, Masked) else sum(p.numel() for p in pl.parameters())


REGISTRY: dict[str, Method] = {}
_ALIASES: dict[str, str] = {}


def register(method: Method) -> Method:
    """Add ``method`` to the registry (its name and aliases must be new). Returns it.

    Taught in: 01_pruning … 06_pipeline
    """
    names = (method.name, *method.aliases)
    taken = [n for n in names if n in REGISTRY or n in _ALIASES]
    if taken:
        raise ValueError(f"method names {taken} are registered already; pick new names")
    if method.sized_by not in ("size_fraction", "n_bits"):
        raise ValueError(f"sized_by={method.sized_by!r}; choose 'size_fraction' or 'n_bits'")
    REGISTRY[method.name] = method
    for a in method.aliases:
        _ALIASES[a] = method.name
    return method


def get(name, *, need: str | None = None) -> Method:
    """The registered method ``name`` (or an alias of it); ``need`` ("make", "quantize", "plan")
    requires that capability. Unknown names get a ``ValueError`` listing the choices.

    Taught in: 01_pruning … 06_pipeline
    """
    if not isinstance(name, str):
        raise TypeError(f"method {name!r} is a {type(name).__name__}, not a name; choose one of {names(need)}")
    m = REGISTRY.get(_ALIASES.get(name, name))
    if m is None or (need is not None and getattr(m, need) is None):
        what = {"make": " to compress with", "quantize": " to quantise with", "plan": " sized by a byte budget"}
        raise ValueError(f"unknown method {name!r}{what.get(need, '')}; choose one of {names(need)}")
    return m


def names(need: str | None = None) -> tuple:
    """Names of the registered methods (with capability ``need``), in registration order.

    Taught in: 01_pruning … 06_pipeline
    """
    return tuple(n for n, m in REGISTRY.items() if need is None or getattr(m, need) is not None)


def quantizers() -> dict:
    """name → (label, fewest bits, most bits) of every post-training quantiser (lesson 04's sweep).

    Taught in: 04_quantization
    """
    return {n: (m.label, *m.bits) for n, m in REGISTRY.items() if m.quantize is not None}


# ── stored tensors: float32, or packed codes + one scale per row ──────────────────────────────────────

def _tensor_out(t, bits, key, arrays):
    if bits is None:
        arrays[key] = t.detach().cpu().numpy().astype(np.float32)
        return
    _, codes, scale = fake_quant_rows(t.detach(), bits)
    arrays[key + ".codes"] = quant.pack_bits(codes.numpy().astype(np.int64).ravel() + 2 ** (bits - 1), n_bits=bits)
    arrays[key + ".scale"] = scale.numpy().astype(np.float32)


def _tensor_in(arrays, key, bits, shape):
    if bits is None:
        return torch.as_tensor(arrays[key])
    count = int(np.prod(shape))
    codes = quant.unpack_bits(arrays[key + ".codes"], n_bits=bits, count=count).astype(np.int64) - 2 ** (bits - 1)
    codes = torch.as_tensor(codes.reshape(shape[0], -1), dtype=torch.float32)
    return (codes * torch.as_tensor(arrays[key + ".scale"])[:, None]).reshape(shape)


def _layer(key: str) -> str:
    """The layer name of a weight's array key ("hidden.0.weight" → "hidden.0")."""
    return key[:-len(".weight")] if key.endswith(".weight") else key


def _is_count(v, low=1, high=None) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v >= low and (high is None or v <= high)


def want(arrays, key, shape, dtype, bad) -> np.ndarray:
    """``arrays[key]`` with exactly ``shape`` and ``dtype`` ("int": any integer dtype), finite; else ``bad(…)``. Taught in: 06_pipeline"""
    if key not in arrays:
        raise bad(f"the array {key!r} is missing")
    a = arrays[key]
    if not (a.dtype.kind in "iu" if dtype == "int" else a.dtype == dtype):
        raise bad(f"the array {key!r} has dtype {a.dtype}, expected {dtype if dtype != 'int' else 'an integer dtype'}")
    if a.shape != tuple(shape):
        raise bad(f"the array {key!r} has shape {a.shape}, expected {tuple(shape)} (transposed, or another layer's?)")
    if a.dtype.kind == "f" and not np.isfinite(a).all():
        raise bad(f"the array {key!r} holds {int(np.isnan(a).sum())} NaN and {int(np.isinf(a).sum())} inf values")
    return a


def _want_scale(arrays, key, rows, bad):
    scale = want(arrays, key, (rows,), _F32, bad)
    if (scale <= 0).any():
        raise bad(f"the array {key!r} holds scales ≤ 0")


def _want_tensor(arrays, key, bits, shape, bad) -> set:
    if bits is None:
        want(arrays, key, shape, _F32, bad)
        return {key}
    want(arrays, key + ".codes", (packed_bits_bytes(shape[0] * shape[1], bits),), _U8, bad)
    _want_scale(arrays, key + ".scale", shape[0], bad)
    return {key + ".codes", key + ".scale"}


def _two_factors_export(extra):
    def export(P, pl, key, arrays):
        _tensor_out(pl.original0, P.quant_bits, key + ".a", arrays)
        _tensor_out(pl.original1, P.quant_bits, key + ".b", arrays)
        return extra(P)
    return export


# ── prune ─────────────────────────────────────────────────────────────────────────────────────────────

def _prune_plan(shapes, size_fraction, *, storage="csr", **_):
    out = {}
    for k, (q, r) in shapes.items():                              # stored in torch's (out, in) = (R, Q) layout
        nnz = prune.nnz_for_budget((r, q), size_fraction * 4 * q * r, storage=storage)
        if nnz < 1:
            least = (prune.csr_bytes if storage == "csr" else prune.masked_bytes)((r, q), 1) / (4 * q * r)
            raise ValueError(f"size_fraction={size_fraction:.4g} leaves no weight of layer {k!r} ({q}×{r}) in "
                             f"{storage.upper()} form; use size_fraction ≥ {least:.3g}")
        out[k] = {"nnz": nnz}
    return out


def _prune_make(weight, W, o, detail):
    storage = o.get("storage") or "csr"
    Q, R = W.shape
    nnz = (detail or _prune_plan({o.get("name", "layer"): (Q, R)}, o["size_fraction"], storage=storage)
           [o.get("name", "layer")])["nnz"]
    mask = prune.magnitude_mask(W, sparsity=(Q * R - nnz) / (Q * R)).T.reshape(weight.shape)  # (Q, R) → torch
    return Masked(torch.as_tensor(mask.astype(np.float32)), storage=storage, quant_bits=o.get("quant_bits"))


def _prune_export(P, pl, key, arrays):
    mask = P.mask.reshape(P.rows, P.cols).numpy() != 0                 # a kept weight that is 0 stays kept
    W = (pl.original * P.mask).detach().reshape(P.rows, P.cols)
    if P.storage == "csr":                                             # where the values go: CSR index
        pos = prune.csr_encode(mask.astype(np.float32))
        arrays[key + ".indices"], arrays[key + ".indptr"] = pos.indices, pos.indptr
    else:                                                              # … or one bit per weight
        arrays[key + ".bitmask"] = np.packbits(mask.ravel())
    if P.quant_bits is None or P.frozen:
        arrays[key + ".data"] = W.numpy()[mask].astype(np.float32)    # row-major = CSR order
    else:
        _, codes, scale = fake_quant_rows(W, P.quant_bits)
        arrays[key + ".codes"] = quant.pack_bits(codes.numpy()[mask].astype(np.int64) + 2 ** (P.quant_bits - 1),
                                                 n_bits=P.quant_bits)
        arrays[key + ".scale"] = scale.numpy().astype(np.float32)
    return {"storage": P.storage, "nnz": int(mask.sum())}


def _prune_mask(key, cfg, arrays, rows, cols) -> np.ndarray:
    """The (rows, cols) bool mask a file stores as a CSR index or a packed bitmask."""
    if cfg.get("storage", "csr") == "bitmask":
        return np.unpackbits(arrays[key + ".bitmask"], count=rows * cols).reshape(rows, cols).astype(bool)
    nnz = cfg["nnz"]
    return prune.csr_decode(prune.CSR(data=np.ones(nnz, np.float32), indices=arrays[key + ".indices"],
                                      indptr=arrays[key + ".indptr"], shape=(rows, cols))) != 0


def _prune_load(key, cfg, arrays, shape):
    rows, cols, bits, nnz = shape[0], int(np.prod(shape[1:])), cfg["quant_bits"], cfg["nnz"]
    mask = _prune_mask(key, cfg, arrays, rows, cols)
    if key + ".data" in arrays:
        data = arrays[key + ".data"]
    else:
        codes = quant.unpack_bits(arrays[key + ".codes"], n_bits=bits, count=nnz).astype(np.int64) - 2 ** (bits - 1)
        r = np.repeat(np.arange(rows), mask.sum(axis=1))                  # (nnz,) row of each value
        data = (codes.astype(np.float32) * arrays[key + ".scale"][r]).astype(np.float32)
    W = np.zeros((rows, cols), np.float32)
    W[mask] = data
    P = Masked(torch.as_tensor(mask.reshape(shape).astype(np.float32)), storage=cfg.get("storage", "csr"),
               quant_bits=bits)
    return P, [torch.as_tensor(W.reshape(shape))]


def _prune_check(key, cfg, arrays, rows, cols, bad):
    nnz, bits, storage = cfg.get("nnz"), cfg.get("quant_bits"), cfg.get("storage", "csr")
    if not _is_count(nnz, 0, rows * cols) or storage not in ("csr", "bitmask"):
        raise bad(f"layer {_layer(key)!r} has nnz={nnz!r} / storage={storage!r}; expected 0…{rows * cols} and "
                  "'csr' or 'bitmask'")
    if storage == "bitmask":
        want(arrays, key + ".bitmask", (-(-rows * cols // 8),), _U8, bad)
        where = {key + ".bitmask"}
    else:
        want(arrays, key + ".indices", (nnz,), "int", bad)
        want(arrays, key + ".indptr", (rows + 1,), "int", bad)
        where = {key + ".indices", key + ".indptr"}
    try:
        mask = _prune_mask(key, cfg, arrays, rows, cols)
    except ValueError as exc:
        raise bad(f"layer {_layer(key)!r} has a broken CSR index ({exc})") from exc
    if int(mask.sum()) != nnz:
        raise bad(f"layer {_layer(key)!r} has a {storage} index naming {int(mask.sum())} positions, not nnz={nnz} "
                  "(a position named twice?)")
    if bits is None or key + ".data" in arrays:                   # float32 values (also once quantised and frozen)
        want(arrays, key + ".data", (nnz,), _F32, bad)
        return where | {key + ".data"}
    want(arrays, key + ".codes", (packed_bits_bytes(nnz, bits),), _U8, bad)
    _want_scale(arrays, key + ".scale", rows, bad)
    return where | {key + ".codes", key + ".scale"}


def _reinit_original(pl, P, rng, std):
    pl.original.copy_(torch.as_tensor(rng.normal(0, std, tuple(pl.original.shape)), dtype=torch.float32))


register(Method(
    "prune", "magnitude pruning (CSR)", "01_pruning", "size_fraction", takes_quant_bits=True, takes_storage=True,
    gradual=True,
    group="pruning", plan=_prune_plan, layer_bytes=lambda s, d: prune.csr_bytes((s[1], s[0]), d["nnz"]),  # the comparison stores CSR
    make=_prune_make, reinit=_reinit_original, export=_prune_export, load=_prune_load, check_file=_prune_check))


# ── low rank ──────────────────────────────────────────────────────────────────────────────────────────

def _lowrank_make(weight, W, o, detail):
    Q, R = W.shape
    k = (detail or {}).get("rank") or o.get("rank") or lowrank.rank_for_budget((Q, R), size_fraction=o["size_fraction"])
    return LowRank(tuple(weight.shape), rank=k, quant_bits=o.get("quant_bits"))


def _lowrank_reinit(pl, P, rng, std):
    a = np.sqrt(std / np.sqrt(P.rank))                              # entries of U·V have std ≈ std
    pl.original0.copy_(torch.as_tensor(rng.normal(0, a, (P.rows, P.rank)), dtype=torch.float32))
    pl.original1.copy_(torch.as_tensor(rng.normal(0, a, (P.rank, P.cols)), dtype=torch.float32))


def _lowrank_load(key, cfg, arrays, shape):
    rows, cols, bits = shape[0], int(np.prod(shape[1:])), cfg["quant_bits"]
    return (LowRank(shape, rank=cfg["rank"], quant_bits=bits),
            [_tensor_in(arrays, key + ".a", bits, (rows, cfg["rank"])),
             _tensor_in(arrays, key + ".b", bits, (cfg["rank"], cols))])


def _lowrank_check(key, cfg, arrays, rows, cols, bad):
    rank, bits = cfg.get("rank"), cfg.get("quant_bits")
    if not _is_count(rank, 1, min(rows, cols)):
        raise bad(f"layer {_layer(key)!r} has rank={rank!r}, expected 1…{min(rows, cols)}")
    return _want_tensor(arrays, key + ".a", bits, (rows, rank), bad) | \
        _want_tensor(arrays, key + ".b", bits, (rank, cols), bad)


register(Method(
    "lowrank", "low rank (truncated SVD)", "02_svd", "size_fraction", takes_quant_bits=True, takes_rank=True,
    factorizes=True,
    group="low rank", plan=lambda shapes, size_fraction, **_: {k: {"rank": r} for k, r in
                                                             lowrank.network_ranks(shapes, size_fraction=size_fraction).items()},
    layer_bytes=lambda s, d: lowrank.lowrank_bytes(s, d["rank"]), make=_lowrank_make, reinit=_lowrank_reinit,
    export=_two_factors_export(lambda P: {"rank": P.rank}), load=_lowrank_load, check_file=_lowrank_check))


# ── DeepThin (plain and shuffled) ─────────────────────────────────────────────────────────────────────

def _deepthin(shuffled: bool):
    def plan(shapes, size_fraction, *, rank=None, **_):
        p = deepthin.plan_network(shapes, size_fraction=size_fraction, shuffled=shuffled, rank=rank)
        return {k: {"m": s.m, "n": s.n, "r": s.r, "gcd": s.gcd} for k, s in p.layers.items()}

    def make(weight, W, o, detail):
        if detail is None:
            s = deepthin.deepthin_size(*W.shape, size_fraction=o["size_fraction"], shuffled=shuffled)
            detail = {"m": s.m, "n": s.n, "r": s.r}
        return DeepThin(tuple(weight.shape), m=detail["m"], n=detail["n"], r=detail["r"],
                        seed=o.get("seed", 0) if shuffled else None, quant_bits=o.get("quant_bits"))

    def reinit(pl, P, rng, std):
        Xf, Wf = deepthin.init_factors(P.m, P.n, P.r, target_std=std, rng=rng)
        pl.original0.copy_(torch.as_tensor(Xf))
        pl.original1.copy_(torch.as_tensor(Wf))

    def load(key, cfg, arrays, shape):
        bits = cfg["quant_bits"]
        return (DeepThin(shape, m=cfg["m"], n=cfg["n"], r=cfg["r"], seed=cfg["seed"], quant_bits=bits),
                [_tensor_in(arrays, key + ".a", bits, (cfg["m"], cfg["r"])),
                 _tensor_in(arrays, key + ".b", bits, (cfg["r"], cfg["n"]))])

    def check(key, cfg, arrays, rows, cols, bad):
        m, n, r, seed, bits = cfg.get("m"), cfg.get("n"), cfg.get("r"), cfg.get("seed"), cfg.get("quant_bits")
        if not (_is_count(m) and _is_count(n) and _is_count(r)) or m * n < rows * cols:
            raise bad(f"layer {_layer(key)!r} has m, n, r = {m!r}, {n!r}, {r!r}; expected counts with m·n ≥ {rows * cols}")
        if (seed is None) == shuffled or (seed is not None and not _is_count(seed, 0)):
            raise bad(f"layer {_layer(key)!r} ({cfg.get('method')}) has seed={seed!r}; the shuffled variant needs a seed ≥ 0, "
                      "the plain one none")
        return _want_tensor(arrays, key + ".a", bits, (m, r), bad) | _want_tensor(arrays, key + ".b", bits, (r, n), bad)

    return dict(plan=plan, make=make, reinit=reinit, load=load, check_file=check,
                layer_bytes=lambda s, d: deepthin.deepthin_bytes(d["m"], d["n"], d["r"], shuffled=shuffled),
                export=_two_factors_export(lambda P: {"m": P.m, "n": P.n, "r": P.r, "seed": P.seed}))


register(Method("deepthin", "DeepThin", "03_deepthin", "size_fraction", takes_quant_bits=True, plans_network=True,
                factorizes=True,
                group="DeepThin", **_deepthin(False)))
register(Method("deepthin_shuffled", "DeepThin, shuffled layout", "03_deepthin", "size_fraction",
                takes_quant_bits=True, plans_network=True, factorizes=True, group="DeepThin", **_deepthin(True)))


# ── weight sharing: HashedNets and k-means ────────────────────────────────────────────────────────────

def _hashed_make(weight, W, o, detail):
    Q, R = W.shape
    shape, seed = tuple(weight.shape), o.get("seed", 0)
    k = (detail or {}).get("buckets") or hashednet.buckets_for_size_fraction(Q, R, size_fraction=o["size_fraction"])
    idx, sign = hashednet.hash_index(Q, R, n_buckets=k, seed=seed)      # (Q, R) each
    return Shared(shape, idx=idx.T.reshape(shape), sign=sign.T.reshape(shape), n_values=k, seed=seed, method="hashed")


def _hashed_load(key, cfg, arrays, shape):
    rows, cols = shape[0], int(np.prod(shape[1:]))
    idx, sign = hashednet.hash_index(cols, rows, n_buckets=cfg["n_values"], seed=cfg["seed"])
    P = Shared(shape, idx=idx.T.reshape(shape), sign=sign.T.reshape(shape), n_values=cfg["n_values"],
               seed=cfg["seed"], method="hashed")
    return P, [torch.as_tensor(arrays[key + ".values"])]


def _values_export(codes: bool):
    def export(P, pl, key, arrays):
        arrays[key + ".values"] = pl.original.detach().numpy().astype(np.float32)
        if codes:                                                     # packed cluster codes + codebook
            arrays[key + ".codes"] = quant.pack_bits(P.idx.numpy().ravel(), n_bits=quant.kmeans_code_bits(P.n_values))
        return {"n_values": P.n_values, "seed": P.seed}
    return export


def _shared_check(hashed: bool):
    def check(key, cfg, arrays, rows, cols, bad):
        k, seed = cfg.get("n_values"), cfg.get("seed")
        if not _is_count(k, 1, rows * cols) or (hashed and not _is_count(seed, 0)):
            raise bad(f"layer {_layer(key)!r} has n_values={k!r}, seed={seed!r}; expected 1…{rows * cols} values and a seed ≥ 0")
        want(arrays, key + ".values", (k,), _F32, bad)
        if hashed:
            return {key + ".values"}
        bits = quant.kmeans_code_bits(k)
        packed = want(arrays, key + ".codes", (packed_bits_bytes(rows * cols, bits),), _U8, bad)
        if int(quant.unpack_bits(packed, n_bits=bits, count=rows * cols).max()) >= k:
            raise bad(f"layer {_layer(key)!r} has cluster codes ≥ its {k} shared values")
        return {key + ".values", key + ".codes"}
    return check


register(Method(
    "hashed", "HashedNets", "03_deepthin", "size_fraction", group="hashing",
    plan=lambda shapes, size_fraction, **_: {k: {"buckets": hashednet.buckets_for_size_fraction(q, r, size_fraction=size_fraction)}
                                            for k, (q, r) in shapes.items()},
    layer_bytes=lambda s, d: hashednet.hashed_bytes(d["buckets"]), make=_hashed_make, reinit=_reinit_original,
    export=_values_export(codes=False), load=_hashed_load, check_file=_shared_check(True)))


def _kmeans_make(weight, W, o, detail):
    n_bits = o["n_bits"]
    res = quant.kmeans_quantize(weight.detach().cpu().numpy(), n_clusters=2 ** n_bits, init="linear")
    return Shared(tuple(weight.shape), idx=res.codes.astype(np.int64), n_values=2 ** n_bits, method="kmeans")


def _kmeans_load(key, cfg, arrays, shape):
    rows, cols, k = shape[0], int(np.prod(shape[1:])), cfg["n_values"]
    idx = quant.unpack_bits(arrays[key + ".codes"], n_bits=quant.kmeans_code_bits(k), count=rows * cols)
    return (Shared(shape, idx=idx.astype(np.int64).reshape(shape), n_values=k, method="kmeans"),
            [torch.as_tensor(arrays[key + ".values"])])


register(Method(
    "kmeans", "k-means codebook", "04_quantization", "n_bits", bits=(1, 16), group="quantisation", codebook=True,
    make=_kmeans_make, reinit=_reinit_original, export=_values_export(codes=True), load=_kmeans_load,
    check_file=_shared_check(False), quantize=quant.kmeans_layer))


# ── uniform quantisation (fake-quantised in torch) and the other post-training quantisers ─────────────

def _quant_export(P, pl, key, arrays):
    _tensor_out(pl.original.reshape(P.rows, P.cols), P.quant_bits, key + ".w", arrays)
    return {}


def _quant_load(key, cfg, arrays, shape):
    rows, cols, bits = shape[0], int(np.prod(shape[1:])), cfg["quant_bits"]
    return FakeQuant(shape, n_bits=bits), [_tensor_in(arrays, key + ".w", bits, (rows, cols)).reshape(shape)]


def _quant_check(key, cfg, arrays, rows, cols, bad):
    if cfg.get("quant_bits") is None:
        raise bad(f"layer {_layer(key)!r} (quant) has no quant_bits")
    return _want_tensor(arrays, key + ".w", cfg["quant_bits"], (rows, cols), bad)


register(Method(
    "quant", "uniform symmetric, per channel", "04_quantization", "n_bits", bits=(2, 16), group="quantisation",
    make=lambda weight, W, o, d: FakeQuant(tuple(weight.shape), n_bits=o["n_bits"]), reinit=_reinit_original,
    export=_quant_export, load=_quant_load, check_file=_quant_check))

for _name, _label, _bits, _fn, _aliases in [
        ("fixed", "fixed point W/F (best F)", (2, 32), quant.fixed_layer, ()),
        ("uniform_sym", "uniform symmetric, per tensor", (2, 16),
         lambda W, b: quant.uniform_layer(W, b, symmetric=True), ("uniform",)),
        ("uniform_asym", "uniform asymmetric, per tensor", (1, 16),
         lambda W, b: quant.uniform_layer(W, b, symmetric=False), ()),
        ("uniform_sym_channel", "uniform symmetric, per channel", (2, 16),
         lambda W, b: quant.uniform_layer(W, b, symmetric=True, per_channel=True), ()),
        ("uniform_asym_channel", "uniform asymmetric, per channel", (1, 16),
         lambda W, b: quant.uniform_layer(W, b, symmetric=False, per_channel=True), ()),
        ("omse", "uniform symmetric + OMSE clip", (2, 8), quant.omse_layer, ()),
        ("multibit", "greedy multi-bit", (1, 8), quant.multibit_layer, ())]:
    register(Method(_name, _label, "04_quantization", "n_bits", bits=_bits, group="quantisation", quantize=_fn,
                    aliases=_aliases))

#: the methods :func:`thinlab.nn.compress` can apply, in registration order
METHODS = names("make")
