"""Exercise check for lesson 07: an int8 ONNX export that agrees with torch on a small fixture.

The student writes ``export_int8(model, path, calibration) -> path``: export ``model`` to ONNX and
quantise it to int8 with onnxruntime (``calibration`` holds training features, for static int8).
The check runs the file on the fixture's held-out clips and compares it with torch.

Taught in: 07_deploy
"""
from __future__ import annotations

import copy
import functools
import tempfile
from pathlib import Path

import numpy as np

from thinlab.checks._common import call as _call, fail as _fail

#: what "agrees" means here: top-1 agreement at least this, logits at most this far (relative) from torch
MIN_AGREEMENT = 0.95
MAX_REL_DIFF = 0.05
#: the int8 file must hold at least this share of its weights as 8-bit integers
MIN_INT8_SHARE = 0.9


@functools.lru_cache(maxsize=1)
def _fixture():
    """A small DNN (4 words, 10 frames × 8 bands) trained on log-mel-like features; its train / test clips."""
    from thinlab import train
    from thinlab.models import build_model

    rng = np.random.default_rng(7)
    C, F, M, N = 4, 10, 8, 240
    protos = rng.normal(0, 1.5, (C, F, M))                               # one pattern per word
    y = np.arange(N) % C
    X = (-4.0 + 2.0 * (protos[y] + rng.normal(0, 1, (N, F, M)))).astype(np.float32)  # far from mean 0, std 1
    train.seed_everything(7)
    model = build_model("dnn", C, n_frames=F, n_mels=M, hidden=(48, 48), time_pool=2, dropout=0.0)
    train.fit(model, X[:160], y[:160], epochs=8, batch_size=32, lr=3e-3, seed=7, progress=False, device="cpu")
    return model.eval(), X[:160], X[160:]


def export_int8_reference(model, path, calibration):
    """Export ``model`` to ONNX beside ``path``, quantise it to int8 (dynamic: no calibration needed), write it
    to ``path`` and return ``path``. Taught in: 07_deploy"""
    from thinlab import deploy

    path = Path(path)
    fp32 = path.with_name(path.stem + "_fp32.onnx")
    deploy.export_onnx(model, fp32, calibration)
    deploy.quantize_int8(fp32, path, mode="dynamic")
    return path


def check_export_int8(fn) -> str:
    """Check the student's ``export_int8(model, path, calibration) -> path`` on the fixture: the file must be
    a valid ONNX model, hold its weights in 8 bits and agree with torch. Taught in: 07_deploy"""
    from thinlab import deploy

    model, X_calib, X_test = _fixture()
    with tempfile.TemporaryDirectory(prefix="thinlab-check-") as tmp:
        path = Path(tmp) / "fixture_int8.onnx"
        got = _call(fn, copy.deepcopy(model), path, X_calib.copy())
        path = Path(got) if isinstance(got, (str, Path)) else path
        if not path.is_file():
            _fail(f"no file at {path} after export_int8 returned {got!r}",
                  "write the int8 model to the path you were given and return that path")
        try:
            sess = deploy.session(path)
        except deploy.DeployError as exc:
            _fail(f"the file you wrote is not a model onnxruntime can run: {exc}",
                  "write it with deploy.quantize_int8 (from a file written by deploy.export_onnx)")
        share = deploy.int8_share(path)
        if share < MIN_INT8_SHARE:
            _fail(f"only {share:.0%} of the weights in your file are 8-bit integers; the rest are float32",
                  "export_onnx writes float32: pass its file to deploy.quantize_int8 and return the int8 file")
        res = deploy.compare(model, sess, X_test)
        if res["agreement"] < MIN_AGREEMENT or not res["max_rel_diff"] <= MAX_REL_DIFF:
            _fail(f"your int8 model picks torch's word on {res['agreement']:.0%} of the {res['n']} test clips and its "
                  f"logits differ by {res['max_rel_diff']:.3f} (relative); expected ≥ {MIN_AGREEMENT:.0%} and "
                  f"≤ {MAX_REL_DIFF}",
                  "static int8 fixes each activation's range from the calibration set: calibrate on the real "
                  "training features you were given (not zeros or random numbers), or use mode='dynamic', which "
                  "measures the ranges on every batch")
        nbytes = path.stat().st_size
    return (f"✓ export_int8 is right: {nbytes:,} bytes, {share:.0%} of the weights in 8 bits, same word as torch on "
            f"{res['agreement']:.0%} of {res['n']} clips, largest relative logit difference {res['max_rel_diff']:.4f}")


SOLUTIONS = {"export_int8": export_int8_reference}
