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
from thinlab.nn import methods


def _export_layer(name: str, mod, arrays: dict) -> dict:
    """Write one compressed layer's stored tensors into ``arrays``; returns its settings for the file."""
    P = mod.parametrizations.weight[0]
    cfg = {"method": P.method, "weight_shape": list(P.weight_shape), "quant_bits": P.quant_bits}
    cfg.update(methods.get(P.method).export(P, mod.parametrizations.weight, name, arrays))
    return cfg


def _import_layer(name: str, mod, cfg: dict, arrays) -> None:
    """Rebuild one compressed layer from its settings and arrays (already checked by the file checks)."""
    shape, bits = tuple(cfg["weight_shape"]), cfg["quant_bits"]
    P, originals = methods.get(cfg["method"], need="load").load(name, cfg, arrays, shape)
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
