"""thinlab.experiments.deploy_study (lesson 07's study): the table arithmetic on exact toy rows, and the
export / int8 / stored-format / latency drivers on a tiny synthetic DNN (seconds, no data set)."""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from thinlab import train
from thinlab.experiments import deploy_study as study
from thinlab.models import build_model

pytest.importorskip("onnxruntime")


def _rows():
    """torch / ONNX FP32 / int8 rows for two models with round latencies."""
    out = []
    for m, (t, o, i) in {"lstm": (8.0, 4.0, 2.0), "dnn": (1.0, 0.5, 1.0)}.items():
        for fmt, rt, ms, b in (("torch FP32", "torch eager", t, 4000), ("ONNX FP32", "onnxruntime FP32", o, 4000),
                               ("ONNX int8 (dynamic)", "onnxruntime int8", i, 1000)):
            out.append({"model": m, "format": fmt, "runtime": rt, "bytes": b, "ms_b1": ms, "ms_b32": 10 * ms,
                        "size_factor": 4000 / b, "speedup_b1": t / ms, "speedup_b32": t / ms, "accuracy": 0.5,
                        "vs_fp32": "within noise"})
    return out


def test_ops_line_most_frequent_first():
    assert study.ops_line({"Relu": 6, "Conv": 4, "Gemm": 1}) == "Relu×6, Conv×4, Gemm×1"


def test_runtime_and_precision_factors_multiply_and_the_sentences_follow():
    c = study.runtime_vs_precision(_rows(), ["lstm", "dnn"])
    L = c["lstm"]["b1"]
    assert (L["runtime_x"], L["int8_x"], L["total_x"]) == (2.0, 2.0, 4.0)
    assert np.isclose(c["lstm"]["b32"]["int8_s_per_clip"], 20.0 / 1e3 / 32)
    lines = study.thesis_lines(c, threads=1, modes={"dnn": "dynamic"})
    assert f"The thesis quoted {study.THESIS['speedup']:.1f}x" in lines[1] and "nowhere near it" in lines[1]
    assert "int8 was slower than FP32" in lines[-1] and lines[-1].startswith("DNN at batch 1: 2.00x")
    assert study.headline(_rows(), ["dnn"]) == {"dnn_speedup_b1": 1.0, "dnn_speedup_b32": 1.0, "dnn_size_factor": 4.0}
    with pytest.raises(KeyError, match="no row for model 'cnn'"):
        study.row(_rows(), "cnn", "ONNX int8")
    sizes, lat, order = study.chart_rows(_rows())
    assert len(sizes) == 6 and len(lat) == 12 and order[0] == "lstm · torch FP32"


@pytest.fixture(scope="module")
def toy():
    rng = np.random.default_rng(0)
    n, F, M, C = 90, 8, 6, 3
    y = np.arange(n) % C
    X = (rng.normal(size=(n, F, M)) + 3.0 * y[:, None, None]).astype(np.float32)
    spk = np.array([f"s{i % 15}" for i in range(n)])
    ds = SimpleNamespace(X_train=X[:60], y_train=y[:60], X_test=X[60:], y_test=y[60:], speakers_test=spk[60:],
                         files_test=spk[60:], labels=["a", "b", "c"])
    train.seed_everything(0)
    dnn = build_model("dnn", C, n_frames=F, n_mels=M, hidden=(64, 64))
    train.fit(dnn, ds.X_train, ds.y_train, epochs=30, seed=0, progress=False)
    return ds, dnn.cpu().eval()


def test_the_study_end_to_end_on_a_tiny_dnn(toy, tmp_path):
    ds, dnn = toy
    ev = study.eval_set(ds, ["test"])
    base = {"dnn": dnn}
    hits, fp32, lines = study.score_fp32(base, ev)
    assert fp32["dnn"]["acc"] == hits["dnn"].mean() > 2 / 3 and "bytes as a torch file" in lines[0]
    exports, rec, _ = study.export_all(base, tmp_path, ds.X_train[:16], ev["X"])
    assert rec["dnn"]["agreement"] == 1.0 and rec["dnn"]["n"] == len(ev["y"]) and "Gemm" in rec["dnn"]["ops"]
    int8, lines = study.int8_all(base, exports, tmp_path, modes={"dnn": "dynamic"}, calibration=None, ev=ev,
                                 hits_fp32=hits)
    q = int8["dnn"]
    assert q["int8_share"] > 0.9 and q["bytes"] < 0.6 * exports["dnn"].bytes and q["agreement"] >= 0.9
    assert abs(q["acc"] - fp32["dnn"]["acc"]) <= 1 - q["agreement"] + 1e-9 and "MatMulInteger" in lines[0]

    models, keep = study.compressed_dnns(dnn, ds, pipeline={"prune_factor": 2, "factor_method": "lowrank",
                                                            "factor_fraction": 0.5, "quant_bits": 8},
                                         kmeans_bits=4, deepthin_fraction=0.3, finetune_epochs=1)
    assert keep < 64 and set(models) == {"pipeline", "kmeans", "deepthin"}
    stored, _ = study.store_all(models, tmp_path, ev["X"])
    assert all(0 < s["report_bytes"] <= s["bytes"] < s["report_bytes"] + 20_000 for s in stored.values())
    assert study.fused_check(stored["deepthin"]["model"], ev["X"]) < 1e-4
    from thinlab import deploy
    onnx = deploy.export_onnx(stored["pipeline"]["model"], tmp_path / "p.onnx", ev["X"][:8])
    pq = deploy.quantize_int8(onnx.path, tmp_path / "p8.onnx", mode="dynamic")
    labels = {"pipeline": "pipeline (06) .npz", "deepthin": "DeepThin .npz"}
    V = study.variants(base, exports, int8, stored, labels=labels, pipeline_int8=pq)
    assert len(V) == 3 + 2 + 3
    rows = study.deploy_table(V, ev, hits, repeats=2)
    ref = study.row(rows, "dnn", "torch FP32")
    assert ref["speedup_b1"] == 1.0 and ref["size_factor"] == 1.0 and ref["vs_fp32"] == "within noise"
    for r in rows:
        assert np.isclose(r["speedup_b32"], ref["ms_b32"] / r["ms_b32"]) and r["ms_b1"] > 0
    dt = [r for r in rows if r["format"].startswith("DeepThin .npz")]    # one model run three ways: same answers
    assert max(r["accuracy"] for r in dt) - min(r["accuracy"] for r in dt) <= 1 / len(ev["y"])
    assert study.row(rows, "dnn", "ONNX FP32")["accuracy"] == ref["accuracy"]
