"""torch-side pruning helpers (thinlab.nn.pruning): orientation round trip, exact sparsity and
bytes of masked models, structured pruning that computes what the masked network did, and gradual
pruning that reaches its target with nested masks."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.nn.utils import parametrize

from thinlab import prune
from thinlab.nn import compressible_layers, size_report
from thinlab import train
from thinlab.experiments.gradual import gradual_prune
from thinlab.nn import apply_masks, layer_masks, layer_weights, set_layer_weights
from thinlab.nn import pruning as lp
from thinlab.models import build_model

HIDDEN = (16, 12, 8)


@pytest.fixture()
def dnn():
    torch.manual_seed(0)
    m = build_model("dnn", 3, n_frames=8, n_mels=4, hidden=HIDDEN)
    return m.eval()


def _x(n=6):
    return torch.randn(n, 8, 4, generator=torch.Generator().manual_seed(1))


def _data(n=40):
    g = np.random.default_rng(0)
    return g.normal(size=(n, 8, 4)).astype(np.float32), g.integers(0, 3, n)


def test_weights_are_paper_oriented_and_round_trip(dnn):
    W = layer_weights(dnn)
    assert list(W) == compressible_layers(dnn)
    assert W["hidden.0"].shape == (16, 16) and W["hidden.1"].shape == (16, 12) and W["out"].shape == (8, 3)
    np.testing.assert_array_equal(W["hidden.1"], dnn.hidden[1].weight.detach().numpy().T)
    doubled = {n: 2 * w for n, w in W.items()}
    set_layer_weights(dnn, doubled)
    np.testing.assert_array_equal(layer_weights(dnn)["out"], doubled["out"])


def test_set_weights_rejects_wrong_shape(dnn):
    with pytest.raises(ValueError, match="expected .*\\(Q, R\\)"):
        set_layer_weights(dnn, {"out": np.zeros((3, 8), np.float32)})
    with pytest.raises(KeyError, match="choose from"):
        layer_weights(dnn, layers=["nope"])


@pytest.mark.parametrize("scope", ["layer", "global"])
def test_prune_model_is_exact_and_reports_csr_bytes(dnn, scope):
    pruned = lp.prune_model(dnn, sparsity=0.75, scope=scope)
    assert not parametrize.is_parametrized(dnn.hidden[0], "weight"), "the original must be untouched"
    W, masks = layer_weights(pruned), layer_masks(pruned)
    sizes = {n: w.size for n, w in W.items()}
    zeros = {n: int((~m).sum()) for n, m in masks.items()}
    if scope == "layer":
        assert zeros == {n: prune.n_pruned(s, sparsity=0.75) for n, s in sizes.items()}
    else:
        assert sum(zeros.values()) == prune.n_pruned(sum(sizes.values()), sparsity=0.75)
    for n in W:
        assert np.all(W[n][~masks[n]] == 0)
    rows = {r.name: r for r in size_report(pruned).layers}
    for n, w in W.items():
        assert rows[f"{n}.weight"].bytes == prune.csr_bytes((w.shape[1], w.shape[0]), int(masks[n].sum()))


def test_prune_model_bad_scope(dnn):
    with pytest.raises(ValueError, match="scope="):
        lp.prune_model(dnn, sparsity=0.5, scope="row")


def test_apply_masks_checks_shape(dnn):
    with pytest.raises(ValueError, match="expected"):
        apply_masks(dnn, {"out": np.ones((3, 8), bool)})


def test_prune_to_bytes_meets_the_budget(dnn):
    total = size_report(dnn).total_bytes
    target = int(0.6 * total)
    pruned = lp.prune_to_bytes(dnn, n_bytes=target)
    got = size_report(pruned).total_bytes
    assert got <= target and got > 0.9 * target
    with pytest.raises(ValueError, match="cannot be met"):
        lp.prune_to_bytes(dnn, n_bytes=10)


def test_shrink_dnn_computes_what_the_masked_network_did(dnn):
    small, kept = lp.shrink_dnn(dnn, sparsity=0.5)
    assert [l.out_features for l in small.hidden] == [8, 6, 4]
    assert small.out.in_features == 4 and small.out.out_features == 3
    # the big network with every removed unit's outgoing weights zeroed computes the same function
    W = layer_weights(dnn)
    names = ["hidden.0", "hidden.1", "hidden.2", "out"]
    for i, name in enumerate(names[:-1]):
        removed = np.setdiff1d(np.arange(W[name].shape[1]), kept[name])
        W[names[i + 1]][removed] = 0
    set_layer_weights(dnn, W)
    small.eval()
    x = _x()
    torch.testing.assert_close(small(x), dnn(x), rtol=1e-5, atol=1e-5)
    assert small.thinlab_spec["hidden"] == (8, 6, 4)


def test_shrink_dnn_keep_per_layer_and_bad_input(dnn):
    small, _ = lp.shrink_dnn(dnn, keep=[3, 2, 1])
    assert [l.out_features for l in small.hidden] == [3, 2, 1]
    with pytest.raises(ValueError, match="one per layer"):
        lp.shrink_dnn(dnn, keep=[3, 2])
    with pytest.raises(TypeError, match="DNN"):
        lp.shrink_dnn(build_model("lstm", 3, n_frames=8, n_mels=4), sparsity=0.5)


def test_finetune_keeps_masks_fixed(dnn):
    pruned = lp.prune_model(dnn, sparsity=0.8)
    before = layer_masks(pruned)
    X, y = _data()
    train.finetune(pruned, X, y, epochs=2, progress=False)
    after, W = layer_masks(pruned), layer_weights(pruned)
    for n in before:
        np.testing.assert_array_equal(before[n], after[n])
        assert np.all(W[n][~after[n]] == 0)


@pytest.mark.parametrize("scope", ["layer", "global"])
def test_gradual_prune_reaches_the_target_with_nested_masks(dnn, scope, monkeypatch):
    X, y = _data(64)
    seen = []  # every mask the schedule computed, in order: once pruned, a weight stays pruned
    kernel = "magnitude_mask" if scope == "layer" else "global_magnitude_mask"
    orig = getattr(lp.prune, kernel)

    def recording(W, *, sparsity):
        out = orig(W, sparsity=sparsity)
        seen.append(out if scope == "global" else {"one": out})
        return out

    monkeypatch.setattr(lp.prune, kernel, recording)
    pruned, hist, rows = gradual_prune(dnn, X, y, final_sparsity=0.9, epochs=4, batch_size=8, n_updates=4,
                                          scope=scope, progress=False, layers=["hidden.0", "hidden.1"])
    assert len(hist.train_loss) == 4 and len(rows) == 4 * 8
    s = [r["sparsity"] for r in rows]
    assert s[0] == 0.0 and s[-1] == pytest.approx(0.9) and all(a <= b for a, b in zip(s, s[1:]))
    assert len(seen) >= 2
    by_layer = {}  # layer (or shape, per-layer scope) → its masks in order
    for masks in seen:
        for n, m in masks.items():
            by_layer.setdefault(n if scope == "global" else m.shape, []).append(m)
    assert len(by_layer) == 2
    for ms in by_layer.values():
        for a, b in zip(ms, ms[1:]):
            assert not np.any(b & ~a), "a pruned weight came back"
    masks = layer_masks(pruned)
    assert set(masks) == {"hidden.0", "hidden.1"}
    total = sum(m.size for m in masks.values())
    kept = sum(int(m.sum()) for m in masks.values())
    assert total - kept == (prune.n_pruned(total, sparsity=0.9) if scope == "global"
                            else sum(prune.n_pruned(m.size, sparsity=0.9) for m in masks.values()))


def test_gradual_prune_with_too_few_steps_still_ends_at_target(dnn):
    X, y = _data(8)
    pruned, _, rows = gradual_prune(dnn, X, y, final_sparsity=0.5, epochs=1, batch_size=8, progress=False,
                                       begin=0.0, end=1.0)
    assert len(rows) == 1
    m = layer_masks(pruned)["hidden.0"]
    assert int((~m).sum()) == prune.n_pruned(m.size, sparsity=0.5)


def test_gradual_prune_bad_window(dnn):
    X, y = _data(8)
    with pytest.raises(ValueError, match="begin"):
        gradual_prune(dnn, X, y, final_sparsity=0.5, epochs=1, begin=0.8, end=0.5)
