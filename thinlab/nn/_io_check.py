"""The checks :func:`thinlab.nn.load_compressed` runs on a file before it builds anything (private).

Every array is checked against the file's metadata and the rebuilt architecture: presence, exact
shape and dtype, finiteness, CSR index ranges, packed code counts and ranges, positive scales;
and every parameter of the rebuilt model must get a value from the file.

Taught in: 06_pipeline
"""
from __future__ import annotations

import numpy as np
import torch

from thinlab.nn import methods
from thinlab.nn.methods import want as _want

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
    if bits is not None and not (isinstance(bits, int) and not isinstance(bits, bool) and 2 <= bits <= 16):
        raise bad(f"layer {mname!r} has quant_bits={bits!r}, expected None or 2…16")
    rows, cols = shape[0], int(np.prod(shape[1:]))
    key = f"{mname}.weight" if mname else "weight"
    try:
        m = methods.get(method, need="check_file")
    except (TypeError, ValueError):
        raise bad(f"layer {mname!r} names an unknown method {method!r} (written by a newer thinlab?)") from None
    return m.check_file(key, cfg, arrays, rows, cols, bad)


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
