"""thinlab.deploy: ONNX export round trips for every model kind (plain and compressed), int8 within a stated
bound of FP32 on the real fixture, the fused DeepThin path, and bad input (unsupported operator, missing
runtime, corrupt file). Latency is measured (benchmarks/bench_deploy.py, lesson 07), never asserted here."""
from __future__ import annotations

import sys

import numpy as np
import pytest
import torch
from torch import nn

from thinlab import data, deploy, train
from thinlab.nn import compress
from thinlab.models import build_model

#: int8 may cost at most this much accuracy (absolute) against FP32 on the fixture's clips
INT8_ACC_BOUND = 0.05
#: and must pick the same word as FP32 on at least this share of them
INT8_AGREEMENT = 0.9


@pytest.fixture(scope="module")
def ds(real_fixture):
    """The in-repo real fixture (110 clips), features computed without touching any cache."""
    return data.load_dataset(str(real_fixture), task="10words", split="speaker", seed=0, cache=False,
                             progress=False, verbose=False)


def _all(ds):
    X = np.concatenate([ds.X_train, ds.X_val, ds.X_test]).astype(np.float32)
    return X, np.concatenate([ds.y_train, ds.y_val, ds.y_test])


def _model(kind, ds, **kw):
    torch.manual_seed(0)
    _, F, M = ds.X_train.shape
    m = build_model(kind, len(ds.labels), n_frames=F, n_mels=M, **kw)
    train.set_input_stats(m, ds.X_train)
    return m.eval()


@pytest.mark.parametrize("kind, op", [("cnn", "Conv"), ("lstm", "LSTM"), ("dnn", "Gemm"), ("dscnn", "Conv")])
def test_export_round_trip_each_model_kind(ds, tmp_path, kind, op):
    model = _model(kind, ds)
    X, _ = _all(ds)
    rep = deploy.export_onnx(model, tmp_path / f"{kind}.onnx", ds.X_train)
    assert rep.path.is_file() and rep.bytes == rep.path.stat().st_size and op in rep.ops
    assert rep.max_rel_diff <= deploy.FP32_RTOL and rep.agreement == 1.0
    n_params = sum(p.numel() for p in model.parameters())
    assert rep.bytes >= 4 * n_params * 0.99                       # the float32 weights are inside the file
    sess = deploy.session(rep.path)
    for B in (1, 7, len(X)):                                      # the batch size stays free
        got = deploy.run(sess, X[:B])
        ref = deploy.torch_logits(model, X[:B])
        assert got.shape == ref.shape == (B, len(ds.labels))
        assert np.abs(got - ref).max() <= deploy.FP32_RTOL * np.abs(ref).max()


@pytest.mark.parametrize("method, kw", [("prune", {"size_fraction": 0.2}),
                                        ("lowrank", {"size_fraction": 0.2, "quant_bits": 4}),
                                        ("deepthin", {"size_fraction": 0.1}), ("hashed", {"size_fraction": 0.1}),
                                        ("kmeans", {"n_bits": 4}), ("quant", {"n_bits": 4})])
def test_compressed_models_export_after_materializing(ds, tmp_path, method, kw):
    small = _model("dnn", ds, hidden=(64, 48))
    cm = compress(small, method=method, **kw)
    assert any(".parametrizations" in n for n, _ in cm.named_modules())
    rep = deploy.export_onnx(cm, tmp_path / f"{method}.onnx", ds.X_train)
    X, _ = _all(ds)
    got = deploy.compare(cm, deploy.session(rep.path), X)        # against the compressed torch model itself
    assert got["max_rel_diff"] <= deploy.FP32_RTOL and got["agreement"] == 1.0
    assert any(".parametrizations" in n for n, _ in cm.named_modules()), "export must not change the model"


@pytest.mark.parametrize("kind, mode", [("dnn", "dynamic"), ("lstm", "dynamic"), ("cnn", "static")])
def test_int8_accuracy_within_bound_of_fp32_on_the_real_fixture(ds, tmp_path, kind, mode):
    torch.manual_seed(0)
    _, F, M = ds.X_train.shape
    model = build_model(kind, len(ds.labels), n_frames=F, n_mels=M)
    train.fit(model, ds.X_train, ds.y_train, epochs=12, batch_size=16, seed=0, progress=False, device="cpu")
    model.eval()
    X, y = _all(ds)
    fp32 = deploy.export_onnx(model, tmp_path / "m.onnx", ds.X_train)
    calib = deploy.calibration_set(ds.X_train, ds.y_train, n=64) if mode == "static" else None
    q = deploy.quantize_int8(fp32.path, tmp_path / "m8.onnx", mode=mode, calibration=calib)
    assert q.mode == mode and q.int8_share > 0.9 and q.bytes < 0.4 * fp32.bytes
    assert ("DynamicQuantizeLSTM" in q.ops) if kind == "lstm" else True
    assert ("QuantizeLinear" in q.ops) if mode == "static" else ("DynamicQuantizeLinear" in q.ops)
    acc32 = deploy.accuracy(deploy.torch_runner(model), X, y)
    acc8 = deploy.accuracy(deploy.onnx_runner(deploy.session(q.path)), X, y)
    agree = deploy.compare(model, deploy.session(q.path), X)
    assert acc32 > 2 / len(ds.labels), f"the {kind} did not learn the fixture (accuracy {acc32:.2f})"
    assert abs(acc8 - acc32) <= INT8_ACC_BOUND and agree["agreement"] >= INT8_AGREEMENT
    assert 0 < agree["max_rel_diff"] < 0.2                        # int8 is not bit-exact, but close


def test_static_int8_is_only_as_good_as_its_calibration(ds, tmp_path):
    model = _model("dnn", ds, hidden=(64, 48))
    fp32 = deploy.export_onnx(model, tmp_path / "c.onnx", ds.X_train)
    X, _ = _all(ds)
    good = deploy.quantize_int8(fp32.path, tmp_path / "good.onnx", mode="static",
                                calibration=deploy.calibration_set(ds.X_train, ds.y_train, n=64))
    bad = deploy.quantize_int8(fp32.path, tmp_path / "bad.onnx", mode="static",
                               calibration=np.zeros_like(ds.X_train[:16]))
    d_good = deploy.compare(model, deploy.session(good.path), X)["max_rel_diff"]
    d_bad = deploy.compare(model, deploy.session(bad.path), X)["max_rel_diff"]
    assert d_good < 0.05 and d_bad > 5 * d_good              # zeros: every activation range is [0, 0]


def test_calibration_set_takes_the_same_number_from_every_word(ds):
    X, y = ds.X_train, ds.y_train
    c = deploy.calibration_set(X, y, n=3 * len(np.unique(y)), seed=1)
    rows = [int(np.flatnonzero((X == r).all(axis=(1, 2)))[0]) for r in c]
    assert len(set(rows)) == len(c) and np.all(np.bincount(y[rows], minlength=len(np.unique(y))) == 3)
    assert np.array_equal(c, deploy.calibration_set(X, y, n=3 * len(np.unique(y)), seed=1))
    assert len(deploy.calibration_set(X, y, n=10_000)) == len(X)


def test_fused_deepthin_forward_matches_torch(ds):
    model = compress(_model("dnn", ds, hidden=(96, 64)), method="deepthin", size_fraction=0.1,
                     layers=["hidden.0", "hidden.1"])
    X, _ = _all(ds)
    ref = deploy.torch_logits(model, X)
    got = deploy.fused_forward(model)(X)
    assert np.abs(got - ref).max() <= 1e-4 * np.abs(ref).max()
    with pytest.raises(deploy.DeployError, match="thinlab DNN"):
        deploy.fused_forward(_model("cnn", ds))
    every = compress(_model("dnn", ds, hidden=(96, 64)), method="deepthin", size_fraction=0.1)   # out too:
    ref = deploy.torch_logits(every, X)                                   # one FusedNetwork for the stack
    assert np.abs(deploy.fused_forward(every)(X) - ref).max() <= 1e-4 * np.abs(ref).max()


def test_deepthin_in_eval_mode_exports_and_runs_both_ways(ds, tmp_path):
    """A DeepThin layer in evaluation mode runs a fused product in torch; export and decode-then-run still work."""
    model = compress(_model("dnn", ds, hidden=(96, 64)), method="deepthin", size_fraction=0.1).eval()
    X, _ = _all(ds)
    fused, dense = deploy.torch_runner(model)(X), deploy.torch_runner(model, fused=False)(X)
    assert np.abs(fused - dense).max() <= 1e-4 * np.abs(dense).max()
    rep = deploy.export_onnx(model, tmp_path / "dt.onnx", ds.X_train)
    assert np.abs(deploy.run(deploy.session(rep.path), X) - dense).max() <= deploy.FP32_RTOL * np.abs(dense).max()


def test_latency_is_measured_for_every_runner_and_batch(ds, tmp_path):
    model = _model("dnn", ds, hidden=(32,))
    rep = deploy.export_onnx(model, tmp_path / "d.onnx", ds.X_train)
    rows = deploy.latency({"torch": deploy.torch_runner(model), "ort": deploy.onnx_runner(deploy.session(rep.path))},
                          ds.X_train[:5], batches=(1, 32), repeats=3, warmup=1)
    assert [(r["name"], r["batch"]) for r in rows] == [("torch", 1), ("ort", 1), ("torch", 32), ("ort", 32)]
    assert all(0 < r["ms_min"] <= r["ms"] and r["threads"] == 1 and r["repeats"] == 3 for r in rows)
    assert torch.get_num_threads() >= 1


def test_torch_bytes_is_the_saved_state_dict(ds):
    model = _model("dnn", ds, hidden=(32,))
    n = sum(t.numel() for t in model.state_dict().values())
    assert 4 * n < deploy.torch_bytes(model) < 4 * n + 20_000


# ---------------------------------------------------------------- bad input

class _SVDHead(nn.Module):
    def forward(self, x):
        return torch.linalg.svdvals(x)                            # (B, min(frames, mels)): no ONNX operator


class _Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = nn.Linear(40, 40)
        self.head = _SVDHead()

    def forward(self, x):
        return self.head(self.body(x))


def test_unsupported_operator_names_the_operator_the_layer_and_the_fix(tmp_path):
    X = np.random.default_rng(0).normal(size=(4, 101, 40)).astype(np.float32)
    with pytest.raises(deploy.DeployError) as err:
        deploy.export_onnx(_Net(), tmp_path / "bad.onnx", X)
    msg = str(err.value)
    assert "svd" in msg and "head" in msg and "_SVDHead" in msg and "Fix:" in msg
    assert not (tmp_path / "bad.onnx").exists()


class _Noisy(nn.Module):
    """A noise layer left on at inference: torch and onnxruntime draw different random numbers."""

    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(40, 3)

    def forward(self, x):
        return self.lin(x.mean(1) + torch.randn_like(x[:, 0]))


def test_an_export_that_differs_from_torch_is_refused(tmp_path):
    X = np.random.default_rng(0).normal(size=(8, 101, 40)).astype(np.float32)
    with pytest.raises(deploy.DeployError, match="differs from torch"):
        deploy.export_onnx(_Noisy(), tmp_path / "n.onnx", X)
    assert not (tmp_path / "n.onnx").exists()


def test_missing_runtime_names_the_package(ds, tmp_path, monkeypatch):
    rep = deploy.export_onnx(_model("dnn", ds, hidden=(16,)), tmp_path / "d.onnx", ds.X_train)
    monkeypatch.setitem(sys.modules, "onnxruntime", None)         # import onnxruntime now raises ImportError
    with pytest.raises(deploy.MissingRuntimeError, match=r"pip install 'onnxruntime>="):
        deploy.session(rep.path)
    monkeypatch.setitem(sys.modules, "onnxscript", None)
    with pytest.raises(ImportError, match=r"onnxscript"):
        deploy.export_onnx(_model("dnn", ds, hidden=(16,)), tmp_path / "e.onnx", ds.X_train)


def test_corrupt_or_missing_onnx_file_gets_a_clear_error(ds, tmp_path):
    rep = deploy.export_onnx(_model("dnn", ds, hidden=(16,)), tmp_path / "d.onnx", ds.X_train)
    truncated = tmp_path / "truncated.onnx"
    truncated.write_bytes(rep.path.read_bytes()[: rep.bytes // 2])
    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(b"this is not an onnx model\n" * 10)
    for bad in (truncated, garbage):
        with pytest.raises(deploy.DeployError, match="not a valid ONNX model"):
            deploy.session(bad)
        with pytest.raises(deploy.DeployError, match="not a valid ONNX model"):
            deploy.quantize_int8(bad, tmp_path / "q.onnx")
    with pytest.raises(deploy.DeployError, match="not a readable ONNX file"):
        deploy.int8_share(garbage)
    with pytest.raises(FileNotFoundError, match="export_onnx"):
        deploy.session(tmp_path / "nowhere.onnx")


def test_quantize_bad_options_and_nothing_to_quantize(ds, tmp_path):
    rep = deploy.export_onnx(_model("dnn", ds, hidden=(16,)), tmp_path / "d.onnx", ds.X_train)
    with pytest.raises(deploy.DeployError, match="mode='fp16'"):
        deploy.quantize_int8(rep.path, tmp_path / "q.onnx", mode="fp16")
    with pytest.raises(deploy.DeployError, match="calibration="):
        deploy.quantize_int8(rep.path, tmp_path / "q.onnx", mode="static")

    class Pool(nn.Module):                                        # no MatMul, Gemm, Conv or LSTM at all
        def forward(self, x):
            return x.mean(1)
    pooled = deploy.export_onnx(Pool(), tmp_path / "p.onnx", ds.X_train)
    with pytest.raises(deploy.DeployError, match="nothing to quantise"):
        deploy.quantize_int8(pooled.path, tmp_path / "p8.onnx", mode="dynamic")
    assert not (tmp_path / "p8.onnx").exists()
    assert not [p.name for p in tmp_path.iterdir() if p.name.startswith(".")], "temporary files left behind"


def test_bad_features_model_and_threads(ds, tmp_path):
    model = _model("dnn", ds, hidden=(16,))
    with pytest.raises(deploy.DeployError, match=r"expected real features \(N ≥ 1, frames, n_mels\)"):
        deploy.export_onnx(model, tmp_path / "d.onnx", ds.X_train[0])
    with pytest.raises(deploy.DeployError, match="nn.Module"):
        deploy.export_onnx("not a model", tmp_path / "d.onnx", ds.X_train)
    rep = deploy.export_onnx(model, tmp_path / "d.onnx", ds.X_train)
    with pytest.raises(deploy.DeployError, match="threads=0"):
        deploy.session(rep.path, threads=0)
    with pytest.raises(deploy.DeployError, match="one label per clip"):
        deploy.calibration_set(ds.X_train, ds.y_train[:-1])
