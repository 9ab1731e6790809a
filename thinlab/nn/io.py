"""Save a compressed model to one small ``.npz`` (arrays stored uncompressed, plus JSON metadata) and
load it back to identical outputs. The file holds exactly what :func:`size_report` counts (CSR
arrays at their index width, factors, buckets, packed codes and scales, dense biases and buffers);
the rest is the container's fixed overhead (zip and .npy headers, the JSON).

Taught in: 06_pipeline
"""
from __future__ import annotations

import copy

import json
from pathlib import Path

import numpy as np
import torch
from torch.nn.utils import parametrize

from thinlab._io import atomic_file
from thinlab._validate import check_path
from thinlab.nn._io_check import (_FIX, FORMAT, CompressedFileError, _check_dense, _check_layer_arrays,
                                     _check_meta)
from thinlab.nn.parametrizations import DeepThin, FakeQuant, LowRank, Masked, Shared, fake_quant_rows
from thinlab.prune import csr_decode, csr_encode, CSR
from thinlab.quant import pack_bits, unpack_bits, kmeans_code_bits


def _q_export(t: torch.Tensor, bits: int, key: str, arrays: dict) -> None:
    """Store a 2-D tensor quantised per row: packed offset codes (uint8) + float32 scales."""
    _, codes, scale = fake_quant_rows(t.detach(), bits)
    arrays[key + ".codes"] = pack_bits(codes.numpy().astype(np.int64).ravel() + 2 ** (bits - 1), n_bits=bits)
    arrays[key + ".scale"] = scale.numpy().astype(np.float32)


def _q_import(arrays, key: str, bits: int, shape) -> torch.Tensor:
    count = int(np.prod(shape))
    codes = unpack_bits(arrays[key + ".codes"], n_bits=bits, count=count).astype(np.int64) - 2 ** (bits - 1)
    codes = torch.as_tensor(codes.reshape(shape[0], -1), dtype=torch.float32)
    return (codes * torch.as_tensor(arrays[key + ".scale"])[:, None]).reshape(shape)


def _tensor_out(t, bits, key, arrays):
    if bits is None:
        arrays[key] = t.detach().cpu().numpy().astype(np.float32)
    else:
        _q_export(t, bits, key, arrays)


def _tensor_in(arrays, key, bits, shape):
    if bits is None:
        return torch.as_tensor(arrays[key])
    return _q_import(arrays, key, bits, shape)


def _export_layer(name: str, mod, arrays: dict) -> dict:
    P = mod.parametrizations.weight[0]
    pl = mod.parametrizations.weight
    cfg = {"method": P.method, "weight_shape": list(P.weight_shape), "quant_bits": P.quant_bits}
    if isinstance(P, Masked):
        # CSR over the mask's positions (a kept weight that happens to be 0 stays kept)
        mask = P.mask.reshape(P.rows, P.cols).numpy() != 0
        W = (pl.original * P.mask).detach().reshape(P.rows, P.cols)
        pos = csr_encode(mask.astype(np.float32))
        arrays[name + ".indices"], arrays[name + ".indptr"] = pos.indices, pos.indptr
        cfg.update(storage=P.storage, nnz=int(pos.data.size))
        if P.quant_bits is None or P.frozen:
            arrays[name + ".data"] = W.numpy()[mask].astype(np.float32)  # row-major = CSR order
        else:
            _, codes, scale = fake_quant_rows(W, P.quant_bits)
            arrays[name + ".codes"] = pack_bits(codes.numpy()[mask].astype(np.int64) + 2 ** (P.quant_bits - 1),
                                                n_bits=P.quant_bits)
            arrays[name + ".scale"] = scale.numpy().astype(np.float32)
    elif isinstance(P, (LowRank, DeepThin)):
        _tensor_out(pl.original0, P.quant_bits, name + ".a", arrays)
        _tensor_out(pl.original1, P.quant_bits, name + ".b", arrays)
        cfg.update({"rank": P.rank} if isinstance(P, LowRank) else {"m": P.m, "n": P.n, "r": P.r, "seed": P.seed})
    elif isinstance(P, Shared):
        cfg.update(n_values=P.n_values, seed=P.seed)
        if P.method == "hashed":
            arrays[name + ".values"] = pl.original.detach().numpy().astype(np.float32)
        else:  # k-means: packed cluster codes + codebook
            arrays[name + ".codes"] = pack_bits(P.idx.numpy().ravel(), n_bits=kmeans_code_bits(P.n_values))
            arrays[name + ".values"] = pl.original.detach().numpy().astype(np.float32)
    elif isinstance(P, FakeQuant):
        _tensor_out(pl.original.reshape(P.rows, P.cols), P.quant_bits, name + ".w", arrays)
    return cfg


def _import_layer(name: str, mod, cfg: dict, arrays) -> None:
    from thinlab import hashednet

    shape, bits, method = tuple(cfg["weight_shape"]), cfg["quant_bits"], cfg["method"]
    rows, cols = shape[0], int(np.prod(shape[1:]))
    if method == "prune":
        indices, indptr, nnz = arrays[name + ".indices"], arrays[name + ".indptr"], cfg["nnz"]
        mask = csr_decode(CSR(data=np.ones(nnz, np.float32), indices=indices, indptr=indptr,
                              shape=(rows, cols))) != 0  # (rows, cols)
        if name + ".data" in arrays:
            data = arrays[name + ".data"]
        else:
            codes = unpack_bits(arrays[name + ".codes"], n_bits=bits, count=nnz).astype(np.int64) - 2 ** (bits - 1)
            r = np.repeat(np.arange(rows), np.diff(indptr.astype(np.int64)))  # (nnz,) row of each value
            data = (codes.astype(np.float32) * arrays[name + ".scale"][r]).astype(np.float32)
        W = np.zeros((rows, cols), np.float32)
        W[mask] = data
        P = Masked(torch.as_tensor(mask.reshape(shape).astype(np.float32)), storage=cfg.get("storage", "csr"),
                   quant_bits=bits)
        originals = [torch.as_tensor(W.reshape(shape))]
    elif method == "lowrank":
        P = LowRank(shape, rank=cfg["rank"], quant_bits=bits)
        originals = [_tensor_in(arrays, name + ".a", bits, (rows, cfg["rank"])),
                     _tensor_in(arrays, name + ".b", bits, (cfg["rank"], cols))]
    elif method.startswith("deepthin"):
        P = DeepThin(shape, m=cfg["m"], n=cfg["n"], r=cfg["r"], seed=cfg["seed"], quant_bits=bits)
        originals = [_tensor_in(arrays, name + ".a", bits, (cfg["m"], cfg["r"])),
                     _tensor_in(arrays, name + ".b", bits, (cfg["r"], cfg["n"]))]
    elif method == "hashed":
        idx, sign = hashednet.hash_index(cols, rows, n_buckets=cfg["n_values"], seed=cfg["seed"])
        P = Shared(shape, idx=idx.T.reshape(shape), sign=sign.T.reshape(shape), n_values=cfg["n_values"],
                   seed=cfg["seed"], method="hashed")
        originals = [torch.as_tensor(arrays[name + ".values"])]
    elif method == "kmeans":
        k = cfg["n_values"]
        idx = unpack_bits(arrays[name + ".codes"], n_bits=kmeans_code_bits(k), count=rows * cols).astype(np.int64)
        P = Shared(shape, idx=idx.reshape(shape), n_values=k, method="kmeans")
        originals = [torch.as_tensor(arrays[name + ".values"])]
    elif method == "quant":
        P = FakeQuant(shape, n_bits=bits)
        originals = [_tensor_in(arrays, name + ".w", bits, (rows, cols)).reshape(shape)]
    else:
        raise ValueError(f"file names an unknown method {method!r} for layer {name!r}; it was written by a newer "
                         "thinlab or is corrupt")
    P.frozen = bits is not None  # stored values are already quantised: do not quantise again
    parametrize.register_parametrization(mod, "weight", P, unsafe=True)
    pl = mod.parametrizations.weight
    with torch.no_grad():
        if len(originals) == 1:
            pl.original = torch.nn.Parameter(originals[0].to(torch.float32).contiguous())
        else:
            pl.original0 = torch.nn.Parameter(originals[0].to(torch.float32).contiguous())
            pl.original1 = torch.nn.Parameter(originals[1].to(torch.float32).contiguous())


def save_compressed(model, path) -> int:
    """Write ``model`` (built by :func:`thinlab.models.build_model`, maybe compressed) to ``path``
    atomically; returns the file's size in bytes. Taught in: 06_pipeline"""
    from thinlab.nn.compress import check_model

    check_model(model)
    path = check_path(path, name="path")
    spec = getattr(model, "thinlab_spec", None)
    if spec is None:
        raise ValueError("this model has no thinlab_spec: build it with thinlab.models.build_model so the file "
                         "can say how to rebuild it")
    arrays, layers, dense = {}, {}, []
    if any(t.device.type != "cpu" for t in model.state_dict().values()):
        model = copy.deepcopy(model).cpu()          # arrays are written from CPU copies
    for mname, mod in model.named_modules():
        if mname.startswith("parametrizations") or ".parametrizations" in mname:
            continue
        prefix = f"{mname}." if mname else ""
        if parametrize.is_parametrized(mod, "weight"):
            layers[mname] = _export_layer(prefix + "weight", mod, arrays)
        for tensors, kind in ((mod._parameters, "param"), (mod._buffers, "buffer")):
            for tname, t in tensors.items():
                if t is None or (kind == "buffer" and tname in mod._non_persistent_buffers_set):
                    continue
                arrays[prefix + tname] = t.detach().cpu().numpy()
                dense.append(prefix + tname)
    meta = json.dumps({"format": FORMAT, "model": spec, "layers": layers, "dense": dense})
    arrays["__meta__"] = np.frombuffer(meta.encode(), dtype=np.uint8)
    path = Path(path)
    with atomic_file(path, "wb") as f:
        np.savez(f, **arrays)
    return path.stat().st_size


def load_compressed(path):
    """Rebuild a model written by :func:`save_compressed`; its outputs equal the saved model's.

    Everything in the file is checked against its metadata before the model is built: the
    architecture, every array's presence, shape and dtype, CSR index ranges, packed code counts
    and ranges, and that every value is finite; nothing is ever unpickled.

    Raises
    ------
    FileNotFoundError
        No such file.
    CompressedFileError (a ValueError)
        Anything else wrong with the file, with what was expected and the fix.

    Taught in: 06_pipeline
    """
    from thinlab.models import build_model

    path = check_path(path, name="path")
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist (or is a folder); pass the file save_compressed wrote")
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
        meta = json.loads(bytes(arrays.pop("__meta__")).decode())
    except Exception as exc:
        raise CompressedFileError(f"{path} is not a thinlab compressed model ({type(exc).__name__}: {exc}); write one "
                                  "with save_compressed") from exc

    def bad(problem):
        return CompressedFileError(f"{path}: {problem}; {_FIX}")

    _check_meta(meta, bad)
    spec = dict(meta["model"])
    try:
        model = build_model(spec.pop("name"), spec.pop("n_classes"), **spec)
    except (TypeError, ValueError, KeyError) as exc:
        raise bad(f"its metadata describes a model this thinlab cannot build ({exc})") from exc
    modules = dict(model.named_modules())
    used = set()
    for mname, cfg in meta["layers"].items():
        used |= _check_layer_arrays(mname, cfg, modules, arrays, bad)
    targets = _check_dense(meta["dense"], modules, arrays, meta["layers"], bad)
    used |= set(meta["dense"])
    extra = sorted(set(arrays) - used)
    if extra:
        raise bad(f"it holds arrays its metadata does not use: {extra[:5]}")
    try:
        for mname, cfg in meta["layers"].items():
            _import_layer(f"{mname}.weight" if mname else "weight", modules[mname], cfg, arrays)
        with torch.no_grad():
            for key, target in targets.items():
                target.copy_(torch.as_tensor(arrays[key]))
    except (KeyError, IndexError, RuntimeError, ValueError, TypeError) as exc:  # not reached when the checks pass
        raise bad(f"it could not be loaded ({type(exc).__name__}: {exc})") from exc
    model.eval()
    return model
