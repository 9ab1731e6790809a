"""The checks :func:`thinlab.nn.load_compressed` runs on a file before it builds anything (private).

Every array is checked against the file's metadata and the rebuilt architecture: presence, exact
shape and dtype, finiteness, CSR index ranges, packed code counts and ranges, positive scales;
and every parameter of the rebuilt model must get a value from the file.

Taught in: 06_pipeline
"""
from __future__ import annotations

import numpy as np
import torch

from thinlab.prune import CSR, csr_decode
from thinlab.quant import kmeans_code_bits, unpack_bits
from thinlab.size import packed_bits_bytes

FORMAT = "thinlab-compressed/1"
_F32, _U8 = np.dtype(np.float32), np.dtype(np.uint8)
_FIX = ("it was not written by save_compressed of this thinlab, or was changed since; save the model again with "
        "thinlab.nn.save_compressed(model, path)")


class CompressedFileError(ValueError):
    """A file that :func:`load_compressed` refuses: the message names the file, the problem and the fix."""


def _check_meta(meta, bad) -> None:
    if not isinstance(meta, dict):
        raise bad("its metadata is not a JSON object")
    if meta.get("format") != FORMAT:
        raise bad(f"it has format {meta.get('format')!r}, expected {FORMAT!r}")
    spec, layers, dense = meta.get("model"), meta.get("layers"), meta.get("dense")
    if not isinstance(spec, dict) or not isinstance(spec.get("name"), str) or "n_classes" not in spec:
        raise bad(f"its metadata has no model description (name, n_classes); got {spec!r}")
    if not isinstance(layers, dict) or not all(isinstance(k, str) and isinstance(v, dict) for k, v in layers.items()):
        raise bad("its metadata 'layers' is not a mapping of layer name → settings")
    if not isinstance(dense, list) or not all(isinstance(k, str) for k in dense) or len(set(dense)) != len(dense):
        raise bad("its metadata 'dense' is not a list of distinct array names")


def _is_count(v, low=1, high=None) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v >= low and (high is None or v <= high)


def _want(arrays, key, shape, dtype, bad) -> np.ndarray:
    """``arrays[key]`` with exactly ``shape`` (None: any length) and ``dtype`` (a kind letter for ints), finite."""
    if key not in arrays:
        raise bad(f"the array {key!r} is missing")
    a = arrays[key]
    kind_ok = a.dtype.kind in "iu" if dtype == "int" else a.dtype == dtype
    if not kind_ok:
        raise bad(f"the array {key!r} has dtype {a.dtype}, expected {dtype if dtype != 'int' else 'an integer dtype'}")
    if a.shape != tuple(shape):
        raise bad(f"the array {key!r} has shape {a.shape}, expected {tuple(shape)} (transposed, or another layer's?)")
    if a.dtype.kind == "f" and not np.isfinite(a).all():
        raise bad(f"the array {key!r} holds {int(np.isnan(a).sum())} NaN and {int(np.isinf(a).sum())} inf values")
    return a


def _want_tensor(arrays, key, bits, shape, bad) -> set:
    """A stored 2-D tensor: float32 ``shape``, or packed ``bits`` codes + one positive scale per row."""
    if bits is None:
        _want(arrays, key, shape, _F32, bad)
        return {key}
    _want(arrays, key + ".codes", (packed_bits_bytes(shape[0] * shape[1], bits),), _U8, bad)
    scale = _want(arrays, key + ".scale", (shape[0],), _F32, bad)
    if (scale <= 0).any():
        raise bad(f"the array {key + '.scale'!r} holds scales ≤ 0")
    return {key + ".codes", key + ".scale"}


def _check_layer_arrays(mname, cfg, modules, arrays, bad) -> set:
    """Check one compressed layer's settings and arrays against the rebuilt model; returns the array names used."""
    mod = modules.get(mname)
    weight = getattr(mod, "weight", None)
    if not isinstance(weight, torch.Tensor):
        raise bad(f"layer {mname!r} does not exist in the rebuilt model (the architecture changed)")
    shape, bits, method = cfg.get("weight_shape"), cfg.get("quant_bits"), cfg.get("method")
    if not isinstance(shape, list) or tuple(shape) != tuple(weight.shape):
        raise bad(f"layer {mname!r} was saved with weight shape {shape}, but the rebuilt model's is "
                  f"{tuple(weight.shape)} (the architecture changed)")
    if bits is not None and not _is_count(bits, 2, 16):
        raise bad(f"layer {mname!r} has quant_bits={bits!r}, expected None or 2…16")
    rows, cols = shape[0], int(np.prod(shape[1:]))
    key = f"{mname}.weight" if mname else "weight"
    if method == "prune":
        nnz = cfg.get("nnz")
        if not _is_count(nnz, 0, rows * cols) or cfg.get("storage", "csr") not in ("csr", "bitmask"):
            raise bad(f"layer {mname!r} has nnz={nnz!r} / storage={cfg.get('storage')!r}; expected 0…{rows * cols} "
                      "and 'csr' or 'bitmask'")
        indices = _want(arrays, key + ".indices", (nnz,), "int", bad)
        indptr = _want(arrays, key + ".indptr", (rows + 1,), "int", bad)
        try:
            mask = csr_decode(CSR(data=np.ones(nnz, np.float32), indices=indices, indptr=indptr, shape=(rows, cols)))
        except ValueError as exc:
            raise bad(f"layer {mname!r} has a broken CSR index ({exc})") from exc
        if int((mask != 0).sum()) != nnz:
            raise bad(f"layer {mname!r} has a CSR index naming a position twice")
        if bits is None or key + ".data" in arrays:  # float32 values (also once quantised and frozen)
            _want(arrays, key + ".data", (nnz,), _F32, bad)
            return {key + ".indices", key + ".indptr", key + ".data"}
        _want(arrays, key + ".codes", (packed_bits_bytes(nnz, bits),), _U8, bad)
        scale = _want(arrays, key + ".scale", (rows,), _F32, bad)
        if (scale <= 0).any():
            raise bad(f"the array {key + '.scale'!r} holds scales ≤ 0")
        return {key + ".indices", key + ".indptr", key + ".codes", key + ".scale"}
    if method == "lowrank":
        rank = cfg.get("rank")
        if not _is_count(rank, 1, min(rows, cols)):
            raise bad(f"layer {mname!r} has rank={rank!r}, expected 1…{min(rows, cols)}")
        return _want_tensor(arrays, key + ".a", bits, (rows, rank), bad) | \
            _want_tensor(arrays, key + ".b", bits, (rank, cols), bad)
    if method in ("deepthin", "deepthin_shuffled"):
        m, n, r, seed = cfg.get("m"), cfg.get("n"), cfg.get("r"), cfg.get("seed")
        if not (_is_count(m) and _is_count(n) and _is_count(r)) or m * n < rows * cols:
            raise bad(f"layer {mname!r} has m, n, r = {m!r}, {n!r}, {r!r}; expected counts with m·n ≥ {rows * cols}")
        if (seed is None) != (method == "deepthin") or (seed is not None and not _is_count(seed, 0)):
            raise bad(f"layer {mname!r} ({method}) has seed={seed!r}; the shuffled variant needs a seed ≥ 0, the "
                      "plain one none")
        return _want_tensor(arrays, key + ".a", bits, (m, r), bad) | _want_tensor(arrays, key + ".b", bits, (r, n), bad)
    if method in ("hashed", "kmeans"):
        k, seed = cfg.get("n_values"), cfg.get("seed")
        if not _is_count(k, 1, rows * cols) or (method == "hashed" and not _is_count(seed, 0)):
            raise bad(f"layer {mname!r} has n_values={k!r}, seed={seed!r}; expected 1…{rows * cols} values and "
                      "a seed ≥ 0")
        _want(arrays, key + ".values", (k,), _F32, bad)
        if method == "hashed":
            return {key + ".values"}
        packed = _want(arrays, key + ".codes", (packed_bits_bytes(rows * cols, kmeans_code_bits(k)),), _U8, bad)
        if int(unpack_bits(packed, n_bits=kmeans_code_bits(k), count=rows * cols).max()) >= k:
            raise bad(f"layer {mname!r} has cluster codes ≥ its {k} shared values")
        return {key + ".values", key + ".codes"}
    if method == "quant":
        if bits is None:
            raise bad(f"layer {mname!r} (quant) has no quant_bits")
        return _want_tensor(arrays, key + ".w", bits, (rows, cols), bad)
    raise bad(f"layer {mname!r} names an unknown method {method!r} (written by a newer thinlab?)")


def _check_dense(dense, modules, arrays, layers, bad) -> dict:
    """Every dense parameter and persistent buffer: present, the model's shape and dtype, finite; and no
    parameter of the rebuilt model left without a value. Returns key → the tensor it fills."""
    targets = {}
    for key in dense:
        mname, _, tname = key.rpartition(".")
        mod = modules.get(mname)
        t = None if mod is None else (mod._parameters.get(tname) if tname in mod._parameters else
                                      mod._buffers.get(tname) if tname not in mod._non_persistent_buffers_set
                                      else None)
        if t is None:
            raise bad(f"the array {key!r} belongs to no parameter or buffer of the rebuilt model (the architecture "
                      "changed)")
        _want(arrays, key, tuple(t.shape), t.detach().cpu().numpy().dtype, bad)
        targets[key] = t
    for mname, mod in modules.items():
        prefix = f"{mname}." if mname else ""
        for tname, t in list(mod._parameters.items()) + [(n, b) for n, b in mod._buffers.items()
                                                         if n not in mod._non_persistent_buffers_set]:
            if t is not None and prefix + tname not in targets and not (tname == "weight" and mname in layers):
                raise bad(f"it holds no values for {prefix + tname!r} of the model (a file with metadata but no "
                          "arrays would load random weights)")
    return targets
