"""Baseline models, seeded training, evaluation and the baseline cache."""
from __future__ import annotations

import os
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from thinlab import models, train


def _toy(n=96, n_classes=3, frames=20, mels=8, seed=0):
    """A learnable toy task: each class lights up its own band of mel channels."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, n_classes, n)
    X = rng.normal(size=(n, frames, mels)).astype(np.float32)
    for c in range(n_classes):
        X[y == c, :, c * 2:(c * 2 + 2)] += 2.5
    return X, y


def _ds(seed=0):
    X, y = _toy(seed=seed)
    return SimpleNamespace(X_train=X[:64], y_train=y[:64], X_val=X[64:80], y_val=y[64:80],
                           X_test=X[80:], y_test=y[80:], labels=["a", "b", "c"])


@pytest.mark.parametrize("name", sorted(models.MODELS))
def test_models_map_features_to_logits(name):
    m = models.build_model(name, 12, n_frames=101, n_mels=40)
    out = m(torch.randn(3, 101, 40))
    assert out.shape == (3, 12)
    assert models.n_params(m) == sum(p.numel() for p in m.parameters())
    from thinlab.nn import save_compressed, size_report
    buffers = sum(b.numel() * (4 if b.is_floating_point() else b.element_size()) for b in m.buffers())
    assert models.fp32_bytes(m) == 4 * models.n_params(m) + buffers == size_report(m).total_bytes  # one byte count


def test_param_counts_are_as_designed():
    # DNN: (50·40)·512 + 512 + 2·(512·512 + 512) + 512·12 + 12
    assert models.n_params(models.build_model("dnn", 12)) == 2000 * 512 + 512 + 2 * (512 * 512 + 512) + 512 * 12 + 12
    lstm = models.build_model("lstm", 10)
    assert models.n_params(lstm) == 4 * 128 * (40 + 128 + 2) + 128 * 64 + 64 + 64 * 10 + 10


def test_bad_inputs_give_clear_errors():
    with pytest.raises(ValueError, match="unknown model 'rnn'"):
        models.build_model("rnn", 10)
    with pytest.raises(ValueError, match="n_classes=1"):
        models.build_model("cnn", 1)
    m = models.build_model("cnn", 10)
    with pytest.raises(ValueError, match=r"expects features of shape \(batch, 101, 40\), got \(2, 99, 40\)"):
        m(torch.randn(2, 99, 40))
    X, y = _toy()
    with pytest.raises(ValueError, match="96 examples vs 10 labels"):
        train.fit(m, X, y[:10])
    with pytest.raises(ValueError, match="epochs=0"):
        train.fit(m, X, y, epochs=0)
    with pytest.raises(ValueError, match="schedule='warp'"):
        train.fit(models.build_model("dnn", 3, n_frames=20, n_mels=8), X, y, epochs=1, schedule="warp",
                  progress=False)


def test_fit_learns_a_separable_task():
    X, y = _toy(n=160)
    m = models.build_model("dnn", 3, n_frames=20, n_mels=8, hidden=(32,))
    hist = train.fit(m, X[:128], y[:128], X[128:], y[128:], epochs=8, lr=1e-2, progress=False)
    assert hist.train_loss[-1] < hist.train_loss[0]
    assert hist.val_acc[-1] >= 0.9
    assert len(hist.rows()) == 8


def test_fit_is_seeded():
    X, y = _toy()
    outs = []
    for _ in range(2):
        torch.manual_seed(0)  # same initial weights
        m = models.build_model("cnn", 3, n_frames=20, n_mels=8, channels=(4, 4), hidden=(8, 8))
        torch.manual_seed(123)  # differs from fit's own seed: fit must reseed, so both runs agree
        train.fit(m, X, y, epochs=2, seed=5, progress=False)
        outs.append(torch.cat([p.detach().ravel() for p in m.parameters()]))
    assert torch.equal(outs[0], outs[1])


def test_standardize_stats_come_from_training_data():
    X, y = _toy()
    m = models.build_model("dnn", 3, n_frames=20, n_mels=8)
    train.fit(m, X, y, epochs=1, progress=False)
    np.testing.assert_allclose(m.norm.mean.numpy(), X.mean(axis=(0, 1)), rtol=1e-5, atol=1e-6)


def test_confusion_matrix_matches_a_loop():
    rng = np.random.default_rng(0)
    t, p = rng.integers(0, 5, 300), rng.integers(0, 5, 300)
    ref = np.zeros((5, 5), int)
    for a, b in zip(t, p):
        ref[a, b] += 1
    np.testing.assert_array_equal(train.confusion_matrix(t, p, 5), ref)


def test_baseline_cache_round_trip_and_corruption(tmp_cache, capsys):
    ds = _ds()
    kw = dict(epochs=2, model_kwargs={"hidden": (16,)}, progress=False)
    m1, info1 = train.baseline("dnn", ds, **kw)
    assert info1["cached"] is False and 0 <= info1["test_acc"] <= 1
    m2, info2 = train.baseline("dnn", ds, **kw)
    assert info2["cached"] is True and info2["test_acc"] == info1["test_acc"]
    x = torch.as_tensor(ds.X_test)
    m1.eval(); m2.eval()
    assert torch.equal(m1(x), m2(x))
    # other hyper-parameters → another cache entry, not the old model
    _, info3 = train.baseline("dnn", ds, **dict(kw, epochs=3))
    assert info3["cached"] is False
    # a corrupt file is reported and retrained, never trusted
    (path,) = [p for p in (tmp_cache / "baselines").glob("dnn-*.pt") if torch.load(p, weights_only=False)
               ["key"]["epochs"] == 2]
    path.write_bytes(b"not a torch file")
    _, info4 = train.baseline("dnn", ds, **kw)
    assert info4["cached"] is False and "unusable" in capsys.readouterr().out
    assert train.baseline("dnn", ds, **kw)[1]["cached"] is True


def test_data_fingerprint_changes_with_data():
    a = np.zeros((2, 3), np.float32)
    b = a.copy(); b[0, 0] = 1
    assert train.data_fingerprint(a) != train.data_fingerprint(b)
    assert train.data_fingerprint(a) == train.data_fingerprint(a.copy())


def test_standard_error():
    assert train.standard_error(0.5, 100) == pytest.approx(0.05)
    assert train.standard_error(1.0, 10) == 0.0
    with pytest.raises(ValueError, match="n=0"):
        train.standard_error(0.5, 0)


def test_use_threads_sets_torch_and_blas_and_rejects_bad_counts(monkeypatch):
    from threadpoolctl import threadpool_info

    before = torch.get_num_threads()
    try:
        assert 1 <= train.available_cpus() <= (os.cpu_count() or 1)
        assert train.use_threads(None) == train.available_cpus() == torch.get_num_threads()
        assert train.use_threads(1) == 1 and torch.get_num_threads() == 1
        assert all(p["num_threads"] == 1 for p in threadpool_info() if p["user_api"] == "blas")
        for bad in (0, -2, 1.5, True, "2"):
            with pytest.raises(ValueError, match=r"must be a positive int, or None"):
                train.use_threads(bad)
    finally:
        train.use_threads(before)


def test_available_cpus_honours_a_cgroup_quota(monkeypatch, tmp_path):
    real_read = Path.read_text

    def fake_read(self, *a, **k):
        if str(self) == "/sys/fs/cgroup/cpu.max":
            return "100000 100000\n"                        # one CPU's worth of time per period
        return real_read(self, *a, **k)

    monkeypatch.setattr(Path, "read_text", fake_read)
    assert train.available_cpus() == 1


def test_fit_with_a_skipped_first_step_does_not_warn_about_the_scheduler():
    import warnings

    X = np.random.default_rng(0).normal(size=(32, 101, 40)).astype(np.float32)
    y = np.arange(32) % 4
    model = models.build_model("dnn", 4, hidden=(8,))
    calls = []

    def step(m, xb, yb, opt):           # the first step overflows (skipped), then plain steps
        opt.zero_grad(set_to_none=True)
        logits = m(xb)
        loss = torch.nn.functional.cross_entropy(logits, yb)
        if calls:
            loss.backward()
            opt.step()
        calls.append(1)
        return float(loss.detach()), logits, len(calls) == 1

    with warnings.catch_warnings():
        warnings.simplefilter("error")                       # any warning fails the test
        hist = train.fit(model, X, y, epochs=1, batch_size=8, step_fn=step, progress=False)
    assert hist.skipped_steps == 1 and len(calls) == 4


def test_difference_noise_is_two_standard_errors_of_a_difference():
    assert train.difference_noise(0.03, 0.04) == pytest.approx(0.10)            # 2·√(0.03² + 0.04²)
    assert train.difference_noise(0.05, 0.05) == pytest.approx(2 * np.sqrt(2) * 0.05)
    assert train.difference_noise(0.02) == pytest.approx(0.04)
    for bad in ((), (-0.1, 0.2), (float("nan"),)):
        with pytest.raises(ValueError, match="one or more standard errors, each ≥ 0"):
            train.difference_noise(*bad)
