"""Deploy what you compressed: ONNX export, onnxruntime FP32 and int8, and honest bytes, latency, accuracy.

*Storage* compression (CSR, codebooks, Huffman, DeepThin factors: lessons 01-06) makes the file small;
the weights are decoded back to float32 before anything runs. *Runtime* compression runs the arithmetic
itself in int8 (onnxruntime's integer kernels). This module takes any course model to a runtime:

* :func:`export_onnx`: a plain float32 copy (compressed layers materialised to dense weights) exported
  with torch's ``torch.export``-based ONNX exporter, checked against torch on real inputs;
* :func:`quantize_int8`: onnxruntime int8, dynamic (weights int8, activations quantised per batch at run
  time: MatMul / Gemm / LSTM) or static (activation ranges fixed beforehand from a calibration set of
  training features, :func:`calibration_set`: Conv, Gemm, ReLU, max-pool);
* :func:`session`, :func:`run`, :func:`compare`: run a file, and measure how far it is from torch;
* :func:`latency`: median milliseconds per call at batch 1 and 32, every runner timed round by round
  on the same number of threads; :func:`fused_forward`: DeepThin's fused numpy path for a DNN.

Relative difference of two logit arrays: ``max|a − b| / max|a|`` (``a`` = torch).

Taught in: 07_deploy
"""
from __future__ import annotations

import contextlib
import importlib
import io
import logging
import os
import re
import shutil
import time
import warnings
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from thinlab._threads import limited_threads
from thinlab._io import atomic_file, temp_dir_beside

#: the packages deployment needs, as pip requirements (they are thinlab dependencies)
PACKAGES = {"onnx": "onnx>=1.23", "onnxruntime": "onnxruntime>=1.31", "onnxscript": "onnxscript>=0.7"}
INPUT, OUTPUT = "features", "logits"
#: largest relative difference an FP32 export may show against torch
FP32_RTOL = 1e-4
#: operators each int8 mode rewrites (onnxruntime turns Gemm into MatMul before dynamic quantisation)
INT8_OPS = {"dynamic": ["MatMul", "Gemm", "LSTM"],
            "static": ["Conv", "Gemm", "MatMul", "Relu", "MaxPool", "Flatten", "Reshape"]}


class DeployError(ValueError):
    """A model, file or option deployment cannot handle; the message names it and the fix."""


class MissingRuntimeError(ImportError):
    """A package deployment needs is not installed; the message says what to install."""


def require(name: str):
    """Import ``name`` (one of :data:`PACKAGES`) or raise :class:`MissingRuntimeError` naming the package.

    Taught in: 07_deploy
    """
    try:
        return importlib.import_module(name)
    except ImportError as exc:
        raise MissingRuntimeError(
            f"thinlab.deploy needs the package {name!r}, which cannot be imported here ({exc}). Install it with "
            f"`pip install '{PACKAGES.get(name, name)}'`; it is a thinlab dependency, so `pip install -e .` in the "
            "thinlab folder installs it too.") from None


@contextlib.contextmanager
def _quiet():
    """Silence the exporter's and quantiser's warnings and log lines (they are about their own internals)."""
    loggers = [logging.getLogger(n) for n in ("torch.onnx", "torch.export", "torch._dynamo", "onnxscript", "")]
    levels = [lg.level for lg in loggers]
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        for lg in loggers:
            lg.setLevel(logging.ERROR)
        try:
            yield
        finally:
            for lg, lv in zip(loggers, levels):
                lg.setLevel(lv)


def materialize(model: nn.Module) -> nn.Module:
    """A plain float32 CPU copy of ``model`` in eval mode, every compressed layer's weight decoded to dense.

    Taught in: 07_deploy
    """
    from thinlab.nn.compress import uncompressed
    from thinlab.nn.deepthin_fused import dense_inference

    if not isinstance(model, nn.Module):
        raise DeployError(f"expected a torch nn.Module (e.g. from thinlab.models.build_model), got "
                          f"{type(model).__name__}")
    with dense_inference():                           # bake real dense weights, not DeepThin's fused stand-in
        return uncompressed(model).float().cpu().eval()


def _features(X, name: str = "X") -> np.ndarray:
    X = np.asarray(X, dtype=np.float32)
    if X.ndim != 3 or len(X) == 0:
        raise DeployError(f"{name} has shape {X.shape}; expected real features (N ≥ 1, frames, n_mels), e.g. "
                          "ds.X_train[:64] from thinlab.data.load_dataset")
    return np.ascontiguousarray(X)


def _op_base(name: str) -> str:
    """'aten._linalg_svd.default' / 'aten::linalg_svdvals' → 'linalg_svd' / 'linalg_svdvals'."""
    return re.split(r"::|\.", name)[1 if re.match(r"\w+(::|\.)", name) else 0].lstrip("_")


def _operator_error(exc: Exception, program, model) -> DeployError:
    """Turn an exporter failure into an error naming the operator, the layer that uses it and the fix."""
    text = "\n".join(str(e) for e in (exc, exc.__cause__, exc.__context__) if e is not None)
    m = re.search(r"op='([\w.]+)'", text) or re.search(r"(aten::\w+|aten\.\w+)", text)
    op = m.group(1) if m else None
    layers = []
    if op and program is not None:               # the traced graph knows which layer called what
        base = _op_base(op)
        for node in program.graph.nodes:
            target = str(node.target)
            if node.op == "call_function" and (_op_base(target).startswith(base) or base.startswith(_op_base(target))):
                stack = list((node.meta.get("nn_module_stack") or {}).values())
                if stack:
                    path, cls = stack[-1]
                    layers.append(f"{path or '(the model)'} ({getattr(cls, '__name__', str(cls).split('.')[-1])})")
    if not layers:                                # else: the layers that are neither torch's nor thinlab's
        layers = [f"{n} ({type(m).__name__})" for n, m in model.named_modules()
                  if n and not type(m).__module__.startswith(("torch.", "thinlab."))]
    what = f"operator {op}" if op else "an operator"
    where = f" used by layer {', '.join(dict.fromkeys(layers))}" if layers else f" in {type(model).__name__}"
    detail = re.search(r"(No ONNX function found for[^\n]*|Unsupported[^\n]*)", text)
    first = detail.group(1) if detail else (text.strip().splitlines() or [type(exc).__name__])[0]
    return DeployError(f"ONNX has no translation for {what}{where} ({first[:200]}). Fix: rewrite that layer with "
                       "operators ONNX has (matmul, conv, elementwise, pooling, LSTM), or compute it outside the "
                       "exported model.")


@dataclass
class ExportReport:
    """What :func:`export_onnx` wrote: path, file bytes, operators, and its difference from torch."""

    path: Path
    bytes: int
    ops: dict
    max_rel_diff: float
    agreement: float
    seconds: float


def export_onnx(model: nn.Module, path, X, *, check: bool = True, rtol: float = FP32_RTOL,
                n_check: int = 64) -> ExportReport:
    """Export ``model`` (materialised, see :func:`materialize`) to the ONNX file ``path`` (written atomically).

    The batch size stays free. With ``check`` the file is run by onnxruntime on the first ``n_check``
    rows of ``X`` (real features, (N, frames, n_mels)); when its logits differ from torch's by more than
    ``rtol`` (relative, see the module docstring) the file is removed and :class:`DeployError` raised.
    An operator ONNX cannot express raises :class:`DeployError` naming it and the layer that uses it.

    Taught in: 07_deploy
    """
    onnx = require("onnx")
    require("onnxscript")
    from onnxscript import optimizer

    X = _features(X)
    plain = materialize(model)
    x = torch.from_numpy(np.resize(X[:2], (2, *X.shape[1:])).copy())  # (2, frames, mels): batch 1 would fix it
    t0, program = time.perf_counter(), None
    with _quiet():
        try:
            program = torch.export.export(plain, (x,), dynamic_shapes=({0: torch.export.Dim("batch")},))
            onnx_program = torch.onnx.export(program, (x,), dynamo=True, external_data=False, verbose=False,
                                             input_names=[INPUT], output_names=[OUTPUT], optimize=False)
        except Exception as exc:                      # the exporter's errors are long: name the operator
            raise _operator_error(exc, program, plain) from exc
        # fold constant weight rearrangements (the LSTM's gate reordering) so quantisers see plain weights
        proto = optimizer.optimize(onnx_program.model_proto, input_size_limit=1 << 30, output_size_limit=1 << 30)
    onnx.checker.check_model(proto)
    path = Path(path)
    with atomic_file(path, "wb") as f:
        f.write(proto.SerializeToString())
    rep = ExportReport(path, path.stat().st_size, dict(Counter(n.op_type for n in proto.graph.node)),
                       float("nan"), float("nan"), time.perf_counter() - t0)
    if check:
        got = compare(plain, session(path), X[:n_check])
        rep.max_rel_diff, rep.agreement = got["max_rel_diff"], got["agreement"]
        if not got["max_rel_diff"] <= rtol:
            path.unlink()                             # a refused export leaves no file behind
            raise DeployError(f"the ONNX export of {type(model).__name__} differs from torch by "
                              f"{got['max_rel_diff']:.2e} (relative), more than rtol={rtol:g}; the exporter records "
                              "one trace of forward, so randomness or Python-side state in it is not reproduced: "
                              "remove them from the inference path (eval mode) and export again")
    return rep


def session(path, *, threads: int = 1):
    """An onnxruntime CPU session on ``path`` with ``threads`` intra-op threads (one inter-op thread).

    Raises FileNotFoundError for a missing file and :class:`DeployError` for one that is not a valid model.

    Taught in: 07_deploy
    """
    ort = require("onnxruntime")
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no ONNX file at {path}; write one with thinlab.deploy.export_onnx")
    if not isinstance(threads, int) or isinstance(threads, bool) or threads < 1:
        raise DeployError(f"threads={threads!r}; expected a positive int")
    so = ort.SessionOptions()
    so.intra_op_num_threads, so.inter_op_num_threads = threads, 1
    so.log_severity_level = 3
    try:
        return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
    except Exception as exc:
        msg = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
        raise DeployError(f"{path} ({path.stat().st_size:,} bytes) is not a valid ONNX model: onnxruntime says "
                          f"{msg!r}. The file may be truncated, corrupt or not ONNX at all; write it again with "
                          "thinlab.deploy.export_onnx (or quantize_int8)") from None


def run(sess, X, *, batch_size: int = 64) -> np.ndarray:
    """Logits (N, classes) of an onnxruntime session on features X (N, frames, n_mels). Taught in: 07_deploy"""
    X = _features(X)
    name = sess.get_inputs()[0].name
    return np.concatenate([sess.run(None, {name: X[i:i + batch_size]})[0] for i in range(0, len(X), batch_size)])


@torch.no_grad()
def torch_logits(model: nn.Module, X, *, batch_size: int = 64) -> np.ndarray:
    """Logits of a torch model (eval mode, on the CPU) on X (N, frames, n_mels). Taught in: 07_deploy"""
    X = torch.from_numpy(_features(X))
    model = model.eval().cpu()
    return torch.cat([model(X[i:i + batch_size]) for i in range(0, len(X), batch_size)]).float().numpy()


def compare(model: nn.Module, sess, X) -> dict:
    """How far the session's logits are from ``model``'s on X: ``max_rel_diff`` and ``agreement`` (share of
    clips with the same top-1 class), over ``n`` clips. Taught in: 07_deploy"""
    ref, got = torch_logits(model, X), run(sess, X)
    return {"max_rel_diff": float(np.abs(got - ref).max() / max(np.abs(ref).max(), 1e-12)),
            "agreement": float((got.argmax(1) == ref.argmax(1)).mean()), "n": int(len(ref))}


def calibration_set(X_train, y_train, *, n: int = 128, seed: int = 0) -> np.ndarray:
    """Up to ``n`` training clips, the same number from every class (seeded), for static int8 calibration.

    Taught in: 07_deploy
    """
    X, y = _features(X_train, "X_train"), np.asarray(y_train)
    if len(y) != len(X) or n < 1:
        raise DeployError(f"{len(X)} features vs {len(y)} labels, n={n}: expected one label per clip and n ≥ 1")
    rng = np.random.default_rng(seed)
    per_class = [rng.permutation(np.flatnonzero(y == c)) for c in np.unique(y)]
    order = [i for rank in range(max(map(len, per_class))) for idx in per_class if rank < len(idx)
             for i in idx[rank:rank + 1]]                       # round robin over the classes
    return X[np.sort(order[:n])]


class _Reader:
    """onnxruntime's calibration reader protocol: ``get_next()`` gives one input batch, then None."""

    def __init__(self, X, name, batch_size=32):
        self._batches = iter([{name: X[i:i + batch_size]} for i in range(0, len(X), batch_size)])

    def get_next(self):
        return next(self._batches, None)

    def rewind(self):  # pragma: no cover - part of the protocol, unused by MinMax calibration
        raise NotImplementedError


@dataclass
class QuantReport:
    """What :func:`quantize_int8` wrote: path, file bytes, mode, operators, and the 8-bit share of weights."""

    path: Path
    bytes: int
    mode: str
    ops: dict = field(default_factory=dict)
    int8_share: float = 0.0


def int8_share(path) -> float:
    """Share of the file's weight-matrix and kernel elements (tensors of ≥ 2 dims) stored as 8-bit integers
    (0: nothing was quantised).

    Taught in: 07_deploy
    """
    onnx = require("onnx")
    try:
        m = onnx.load(str(path))
    except Exception as exc:
        raise DeployError(f"{path} is not a readable ONNX file ({type(exc).__name__}); write it again with "
                          "thinlab.deploy.export_onnx") from None
    eight = {onnx.TensorProto.INT8, onnx.TensorProto.UINT8}
    # weight matrices and kernels only (≥ 2 dims): biases, scales and zero points are 1-D
    sizes = [(int(np.prod(t.dims)), t.data_type in eight) for t in m.graph.initializer if len(t.dims) >= 2]
    total = sum(s for s, _ in sizes)
    return sum(s for s, q in sizes if q) / total if total else 0.0


def quantize_int8(src, dst, *, mode: str = "dynamic", calibration=None, per_channel: bool = True) -> QuantReport:
    """Quantise the ONNX file ``src`` to int8 with onnxruntime and write it to ``dst`` (atomically).

    ``mode="dynamic"``: int8 weights for MatMul / Gemm / LSTM, activations quantised per batch at run time.
    ``mode="static"``: activation ranges fixed from ``calibration`` (training features, see
    :func:`calibration_set`; min-max), weights int8 per output channel, QDQ format (Conv, Gemm, ...).
    Raises :class:`DeployError` when no operator of the graph could be quantised.

    Taught in: 07_deploy
    """
    require("onnxruntime")
    from onnxruntime import quantization as q

    if mode not in INT8_OPS:
        raise DeployError(f"mode={mode!r}; choose 'dynamic' (MatMul, Gemm, LSTM: no calibration) or 'static' "
                          "(also Conv: needs calibration features)")
    if mode == "static":
        if calibration is None:
            raise DeployError("static int8 needs calibration features to fix the activation ranges: pass "
                              "calibration=deploy.calibration_set(ds.X_train, ds.y_train)")
        calibration = _features(calibration, "calibration")
    src, dst = Path(src), Path(dst)
    name = session(src).get_inputs()[0].name          # also: a clear error for a missing or corrupt src
    tmp = temp_dir_beside(dst)                         # a killed run's leftover is swept by the next one
    try:
        _quantize_into(q, src, tmp, mode, calibration, name, per_channel)
        share = int8_share(tmp / "int8.onnx")
        if share == 0:
            onnx = require("onnx")
            ops = sorted({n.op_type for n in onnx.load(str(tmp / "pre.onnx")).graph.node})
            raise DeployError(f"{mode} int8 found nothing to quantise in {src.name} (its operators: {ops}); it "
                              f"rewrites {INT8_OPS[mode]}. Use mode='static' with calibration for a Conv model")
        os.replace(tmp / "int8.onnx", dst)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    onnx = require("onnx")
    ops = dict(Counter(n.op_type for n in onnx.load(str(dst)).graph.node))
    return QuantReport(dst, dst.stat().st_size, mode, ops, share)


def _quantize_into(q, src: Path, tmp: Path, mode: str, calibration, name: str, per_channel: bool) -> None:
    """onnxruntime's pre-processing, then its dynamic or static quantiser: ``tmp/pre.onnx`` → ``tmp/int8.onnx``."""
    with _quiet():
        pre, out = tmp / "pre.onnx", tmp / "int8.onnx"
        q.quant_pre_process(str(src), str(pre), skip_symbolic_shape=True)
        if mode == "dynamic":
            q.quantize_dynamic(str(pre), str(out), op_types_to_quantize=INT8_OPS[mode], per_channel=per_channel,
                               weight_type=q.QuantType.QInt8)
        else:
            q.quantize_static(str(pre), str(out), _Reader(calibration, name), quant_format=q.QuantFormat.QDQ,
                              op_types_to_quantize=INT8_OPS[mode], per_channel=per_channel,
                              activation_type=q.QuantType.QUInt8, weight_type=q.QuantType.QInt8,
                              calibrate_method=q.CalibrationMethod.MinMax)


def torch_bytes(model: nn.Module) -> int:
    """Bytes of ``torch.save(model.state_dict())``: the FP32 file torch itself would ship. Taught in: 07_deploy"""
    buf = io.BytesIO()
    torch.save({k: v.detach().cpu() for k, v in model.state_dict().items()}, buf)
    return len(buf.getvalue())


def torch_runner(model: nn.Module, *, fused: bool = True):
    """``fn(X) -> logits`` running ``model`` eagerly on the CPU in inference mode. Compressed layers rebuild their
    weights from the stored form on every call (decode, then run), except DeepThin layers, which run thinlab's
    fused torch product (W never built) unless ``fused=False``. Taught in: 07_deploy"""
    from thinlab.nn.deepthin_fused import dense_inference

    model = model.eval().cpu()
    mode = contextlib.nullcontext if fused else dense_inference

    def fn(X):
        with torch.inference_mode(), mode():
            return model(torch.from_numpy(X)).numpy()
    return fn


def onnx_runner(sess):
    """``fn(X) -> logits`` running an onnxruntime session. Taught in: 07_deploy"""
    name = sess.get_inputs()[0].name
    return lambda X: sess.run(None, {name: X})[0]


def fused_forward(model: nn.Module):
    """``fn(X) -> logits`` for a thinlab DNN in numpy, its (unshuffled) DeepThin layers through
    :class:`thinlab.deepthin.FusedDeepThin` (W never built), every other layer as a dense product.
    When every layer is DeepThin they run as one :class:`thinlab.deepthin.FusedNetwork` (from two
    rows on, one compiled call for the whole stack where numba loads).

    Taught in: 07_deploy
    """
    from torch.nn.utils import parametrize

    from thinlab.deepthin import FusedDeepThin, FusedNetwork
    from thinlab.nn.parametrizations import DeepThin

    if not all(hasattr(model, a) for a in ("hidden", "out", "norm", "time_pool")):
        raise DeployError(f"fused_forward runs a thinlab DNN (build_model('dnn', ...)), got {type(model).__name__}")
    model = model.eval().cpu()
    layers = []
    for lin in [*model.hidden, model.out]:
        b = lin.bias.detach().numpy().astype(np.float32)
        P = lin.parametrizations.weight[0] if parametrize.is_parametrized(lin, "weight") else None
        if isinstance(P, DeepThin) and P.seed is None:
            pl = lin.parametrizations.weight
            with torch.no_grad():
                Xf, Wf = (P._q(t).numpy().astype(np.float32) for t in (pl.original0, pl.original1))
            layers.append((FusedDeepThin(Xf, Wf, Q=P.cols, R=P.rows), b))
        else:
            W = lin.weight.detach().numpy().T.astype(np.float32).copy()     # torch (out, in) → paper W (Q, R)
            layers.append((W.__rmatmul__, b))
    mean, std = (t.detach().numpy().astype(np.float32) for t in (model.norm.mean, model.norm.std))
    p, F, M = model.time_pool, model.n_frames, model.n_mels
    f = (F // p) * p

    net = (FusedNetwork([layer for layer, _ in layers], biases=[b for _, b in layers])   # ReLU between layers
           if all(isinstance(layer, FusedDeepThin) for layer, _ in layers) else None)

    def fn(X):
        h = (X - mean) / std
        h = h[:, :f].reshape(len(X), f // p, p, M).mean(2).reshape(len(X), -1)   # (B, f/p · mels)
        if net is not None:
            return net(h)
        for i, (layer, b) in enumerate(layers):
            h = layer(h) + b
            if i < len(layers) - 1:
                np.maximum(h, 0, out=h)
        return h
    return fn


def latency(runners: dict, X, *, batches=(1, 32), repeats: int = 30, warmup: int = 3, threads: int = 1) -> list:
    """Median milliseconds per call of each ``runners[name](X_batch)`` at each batch size.

    Runners are timed round by round (each round calls every runner once), so a burst of load from
    another process falls on all of them; torch and BLAS are held to ``threads`` threads (build the
    onnxruntime sessions with the same number). Rows: ``name``, ``batch``, ``ms`` (median), ``ms_min``,
    ``threads``, ``repeats``.

    Taught in: 07_deploy
    """
    from thinlab.experiments.timing import sample_times

    X = _features(X)
    if repeats < 1 or warmup < 0:
        raise DeployError(f"repeats={repeats}, warmup={warmup}: expected repeats ≥ 1 and warmup ≥ 0")
    rows = []
    with limited_threads(threads):
        for B in batches:
            xb = np.ascontiguousarray(np.resize(X, (B, *X.shape[1:])))   # (B, frames, mels), rows reused if short
            times = sample_times({name: (lambda fn=fn: fn(xb)) for name, fn in runners.items()}, repeat=repeats,
                                 warmup=warmup)
            rows += [{"name": name, "batch": B, "ms": 1e3 * float(np.median(t)), "ms_min": 1e3 * min(t),
                      "threads": threads, "repeats": repeats} for name, t in times.items()]
    return rows


def correct(fn, X, y, *, batch_size: int = 64) -> np.ndarray:
    """Per-clip correctness (bool (N,)) of a runner ``fn(X) -> logits`` on (X, y), for
    :mod:`thinlab.stats`' speaker-aware intervals and paired verdicts. Taught in: 07_deploy"""
    X, y = _features(X), np.asarray(y)
    if len(y) != len(X):
        raise DeployError(f"{len(X)} clips vs {len(y)} labels: expected one label per clip")
    pred = np.concatenate([np.asarray(fn(X[i:i + batch_size])).argmax(1) for i in range(0, len(X), batch_size)])
    return pred == y


def accuracy(fn, X, y, *, batch_size: int = 64) -> float:
    """Accuracy of a runner ``fn(X) -> logits`` on (X, y). Taught in: 07_deploy"""
    return float(correct(fn, X, y, batch_size=batch_size).mean())
