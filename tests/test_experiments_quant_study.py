"""Unit tests of lesson 04's experiment functions (tiny synthetic model and data)."""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch

from thinlab import quant
from thinlab.experiments import quant_study as qs
from thinlab.experiments import quant_sweep as qm
from thinlab.experiments.setup import Lesson
from thinlab.models import build_model
from thinlab.nn import layer_weights


@pytest.fixture()
def tiny():
    torch.manual_seed(0)
    model = build_model("dnn", 3, n_frames=8, n_mels=4, hidden=(16, 12)).eval()
    rng = np.random.default_rng(0)
    X = rng.normal(size=(30, 8, 4)).astype(np.float32)
    y = rng.integers(0, 3, 30)
    ds = SimpleNamespace(X_train=X, y_train=y, X_val=X[:12], y_val=y[:12], X_test=X, y_test=y,
                         speakers_test=np.repeat(np.arange(6), 5), labels=["a", "b", "c"])
    lesson = Lesson(source=None, ds=ds, device=torch.device("cpu"), seed=0, epochs=1)
    return model, layer_weights(model), lesson


def test_lesson_quantiser_names_resolve_in_the_registry():
    from thinlab.nn import methods

    assert methods.get("uniform").name == "uniform_sym" and methods.get("kmeans").name == "kmeans"
    assert all(methods.get(n).name in qm.METHODS for n in ("uniform", "omse", "kmeans", "fixed", "multibit"))
    with pytest.raises(ValueError, match="unknown method 'int4'"):
        methods.get("int4", need="quantize")

def test_int8_cast_zeroes_small_weights(tiny):
    model, W, lesson = tiny
    out = qs.int8_cast_study(model, W, lesson)
    assert out["zero_share"] == 1.0 and out["relative_error"] == pytest.approx(1.0)  # every |w| < 0.5
    assert out["n_predicted_words"] == 1
    assert out["bytes"] == qm.other_bytes(model) + sum(w.size + 4 * w.ndim for w in W.values())
    assert out["test_acc"] == lesson.test_acc(out["model"])


def test_fixed_point_curve_choice_and_table(tiny):
    model, W, lesson = tiny
    w = W["hidden.0"]
    curve = qs.fixed_point_curve(w, word_bits=(4,), frac_bits=range(3))
    assert [r["F"] for r in curve] == [0, 1, 2] and curve[0]["MSE"] == quant.fixed_point_mse(w, word_bits=4, frac_bits=0)
    F = quant.best_frac_bits(w, word_bits=4)
    c = qs.fixed_point_choice(w, word_bits=4, frac_bits=F)
    assert c["hi"] >= np.abs(w).max() or c["clips"]
    assert quant.fixed_point_range(word_bits=4, frac_bits=c["no_clip_F"] + 1)[1] < np.abs(w).max()
    base = lesson.test_hits(model)
    rows = qs.fixed_point_table(model, W, lesson, bits=[16, 4], base_hits=base)
    assert rows[0]["relative_error"] < 1e-6 < rows[1]["relative_error"] and rows[0]["bytes"] > rows[1]["bytes"]
    assert rows[0]["test_acc"] == pytest.approx(float(base.mean())) and set(rows[0]["best_F"]) == set(W)


def test_one_layer_tables(tiny):
    _, W, _ = tiny
    w = W["hidden.0"]
    uni = qs.uniform_variants(w, bits=[2, 4])
    assert len(uni) == 8 and all(r["bytes"] == r["code bytes"] + r["side bytes"] for r in uni)
    per = {(r["bits"], r["key"]): r for r in uni}
    assert per[(4, "uniform_sym_channel")]["side bytes"] > per[(4, "uniform_sym")]["side bytes"]
    km = qs.kmeans_vs_uniform(w, n_bits=3)
    assert len(km["uniform_levels"]) == 8 and km["codebook_bytes"] == 4 * len(km["codebook"]) == 32
    assert km["kmeans_relative_error"] <= km["uniform_relative_error"] + 1e-9
    om = qs.omse_table(w, bits=[2, 4])
    assert all(r["error OMSE"] <= r["error min/max"] + 1e-12 and 0 < r["clip c / max|w|"] <= 1 for r in om)
    mb = {(r["bits"], r["quantiser"]): r["relative error"] for r in qs.multibit_table(w, bits=[1, 2])}
    assert mb[(2, "greedy + least-squares α")] <= mb[(2, "greedy")] + 1e-12 < mb[(1, "greedy")]


def test_sweep_study_verdicts_and_summaries(tiny):
    model, W, lesson = tiny
    base = lesson.test_hits(model)
    cast = qs.int8_cast_study(model, W, lesson)
    rows = qs.sweep_study(model, lesson, bits=[4], base_hits=base, cast=cast)
    assert rows[-1]["method"] == "int8_cast" and rows[-1]["bytes"] == cast["bytes"]
    assert all(r["vs_float32"] in ("better", "worse", "within noise") for r in rows)
    fake = [{"method": "fixed", "label": "A", "bits": b, "vs_float32": v, "relative_error": e}
            for b, v, e in ((2, "worse", 0.3), (4, "within noise", 0.05), (8, "within noise", 0.001))]
    assert qs.fewest_bits(fake) == {"A": 4}
    cast_row = {"method": "int8_cast", "label": "int8 cast", "bits": 8, "vs_float32": "within noise"}
    assert qs.fewest_bits(fake + [cast_row]) == {"A": 4}           # only registered quantisers count
    assert qs.error_threshold(fake) == {"smallest_costly_error": 0.3, "n_held_below": 2, "n_held": 2}
    assert qs.error_threshold(fake[1:]) is None


def test_packing_and_huffman(tiny):
    _, W, _ = tiny
    p = qs.packing_table(W["hidden.0"], n_bits=3)
    assert p["roundtrip"] and p["packed"] == -(-3 * p["n_codes"] // 8)
    b = {r["storage"]: r["bytes"] for r in p["rows"]}
    assert b["float32"] > b["3-bit codes, one per uint8"] > b["packed + scale, zero point, shape"] > p["packed"]
    rows = qs.huffman_table(W, bits=[1, 3])
    assert {r["bits"] for r in rows} == {3}
    by = {(r["key"], r["coding"]): r for r in rows}
    for k in ("uniform_asym", "kmeans"):
        assert by[(k, "entropy bound")]["bytes"] <= by[(k, "Huffman")]["bytes"]
    gain = qs.huffman_gain(rows, n_bits=3)
    assert set(gain) == {"uniform_asym", "kmeans"} and all(g < 1 for g in gain.values())


def test_finetune_study_and_explorer(tiny):
    model, W, lesson = tiny
    base = lesson.test_hits(model)
    sweep = qs.sweep_study(model, lesson, bits=[2], base_hits=base)
    ft = qs.finetune_study(model, lesson, bits=[2], epochs=1, sweep_rows=sweep)
    r = ft["rows"][0]
    assert r["matches_sweep"] is True and r["bytes"] == r["tuned_bytes"]
    assert 0 <= ft["float_finetuned_acc"] <= 1 and r["verdict"] in ("better", "worse", "within noise")
    ev = qs.layer_evaluator(model, W, "hidden.1", lesson.val_acc)
    assert ev(W["hidden.1"]) == pytest.approx(lesson.val_acc(model))
    rows = qs.explorer_rows(W["hidden.1"], method="uniform", evaluate=ev, bits=(2, 8))
    assert rows[0]["distinct levels"] <= 3 and rows[0]["MSE"] > rows[1]["MSE"] and rows[0]["bytes"] < rows[1]["bytes"]


# ── the CNN and LSTM comparison, the LSTM's fixed-point table, the design challenge ─────────────────────

@pytest.fixture()
def tiny_lstm(tiny):
    torch.manual_seed(1)
    return build_model("lstm", 3, n_frames=8, n_mels=4, hidden_size=6, dense=5).eval()


def test_weight_tensors_cover_conv_and_lstm_and_roundtrip(tiny, tiny_lstm):
    from thinlab.nn import size_report

    W = qm.weight_tensors(tiny_lstm)
    assert set(W) == {"lstm.weight_ih_l0", "lstm.weight_hh_l0", "fc1.weight", "fc2.weight"}
    assert W["lstm.weight_ih_l0"].shape == (4, 24) and W["lstm.weight_hh_l0"].shape == (6, 24)   # (in, 4·hidden)
    total = size_report(tiny_lstm).total_bytes
    assert qm.other_bytes(tiny_lstm, layers=list(W)) + sum(4 * w.size for w in W.values()) == total
    X = torch.as_tensor(tiny[2].ds.X_test)
    same = qm.with_weights(tiny_lstm, W)
    assert torch.equal(same(X), tiny_lstm(X))
    cnn = build_model("cnn", 3, n_frames=8, n_mels=8, channels=(2, 3), hidden=(4, 4)).eval()
    Wc = qm.weight_tensors(cnn)
    assert Wc["features.0.weight"].shape == (9, 2) and "fc3.weight" in Wc
    with pytest.raises(KeyError, match="weight_tensors"):
        qm.with_weights(tiny_lstm, {"lstm.bias_ih_l0": np.zeros((1, 24))})
    # a codebook quantiser leaves a weight with no more values than its codebook float32, counted densely
    q = qm.quantize_weights(Wc, method="kmeans", n_bits=5)     # 32 shared values: 18 conv weights stay float32
    assert "features.0.weight" not in q and "fc1.weight" in q
    assert qm.model_bytes(cnn, q) == qm.other_bytes(cnn, layers=list(q)) + sum(l.bytes for l in q.values())


def test_model_sweep_generic_equals_the_dnn_sweep(tiny, tiny_lstm):
    model, W, lesson = tiny
    a = qm.sweep(model, lesson.test_acc, methods=["uniform_asym", "kmeans"], bits=[2, 4])
    b = qm.sweep(model, lesson.test_acc, methods=["uniform_asym", "kmeans"], bits=[2, 4], weights=qm.weight_tensors(model))
    assert [(r["bytes"], r["accuracy"]) for r in a] == [(r["bytes"], r["accuracy"]) for r in b]
    rows = qs.model_sweep(tiny_lstm, lesson, name="lstm", bits=[2, 8], methods=["uniform_asym_channel"])
    assert rows[0]["method"] == "float32" and rows[0]["accuracy"] == lesson.test_acc(tiny_lstm)
    assert [r["bits"] for r in rows[1:]] == [2, 8] and rows[1]["bytes"] < rows[2]["bytes"] < rows[0]["bytes"]
    assert all(len(r["hits"]) == len(lesson.ds.y_test) and 0 <= r["val_accuracy"] <= 1 for r in rows)
    reused = qs.model_sweep(model, lesson, name="dnn", bits=[2], rows=qs.sweep_study(
        model, lesson, bits=[2], base_hits=lesson.test_hits(model), cast=qs.int8_cast_study(model, W, lesson)))
    assert {r["method"] for r in reused} >= {"float32", "kmeans"} and "int8_cast" not in {r["method"] for r in reused}


def test_budget_choice_table_and_winners(tiny):
    _, _, lesson = tiny
    n = len(lesson.ds.y_test)
    hit = lambda k: np.arange(n) % k == 0                                      # noqa: E731
    rows = [dict(model="a", method="float32", label="float32", bits=32, bytes=1000, val_accuracy=0.9, accuracy=0.9, hits=hit(1)),
            dict(model="a", method="q", label="q", bits=2, bytes=100, val_accuracy=0.5, accuracy=0.5, hits=hit(2)),
            dict(model="b", method="float32", label="float32", bits=32, bytes=300, val_accuracy=0.8, accuracy=0.2, hits=hit(5)),
            dict(model="b", method="q", label="q", bits=4, bytes=200, val_accuracy=0.8, accuracy=0.3, hits=hit(3))]
    ch = qs.budget_choice(rows, [50, 150, 400])
    by = {(c["budget"], c["model"]): c for c in ch}
    assert not by[(50, "a")]["fits"] and by[(50, "a")]["smallest"] == 100
    assert by[(400, "b")]["bytes"] == 200            # equal validation accuracy: the smaller form
    assert by[(400, "a")]["method"] == "q" and by[(150, "a")]["test accuracy"] == 0.5
    table = qs.budget_table(ch)
    assert [r["budget"] for r in table] == ["50 B", "150 B", "400 B"] and table[0]["A"].startswith("does not fit")
    wins = qs.budget_winners(ch, lesson, rows, seeds=[0])
    assert [w["winner"] for w in wins] == [None, "a", "a"] and wins[1]["runner_up"] is None
    assert "only the A fits" in wins[1]["sentence"] and "no model fits" in wins[0]["sentence"]
    cmp = wins[2]["comparison"]
    assert wins[2]["runner_up"] == "b" and cmp["acc_a"] == pytest.approx(hit(2).mean()) and cmp["acc_b"] == pytest.approx(hit(3).mean())
    assert ("within noise" in wins[2]["sentence"]) == (cmp["verdict"] == "within noise")
    with pytest.raises(ValueError, match="positive byte counts"):
        qs.budget_choice(rows, [0])


def test_lstm_fixed_point_table(tiny, tiny_lstm):
    _, _, lesson = tiny
    rows = qs.lstm_fixed_point_table(tiny_lstm, lesson, bits=[16, 4, 2])
    W = qm.weight_tensors(tiny_lstm)
    assert all(set(r["best_F"]) == set(W) for r in rows)
    assert rows[0]["relative_error"] < 1e-6 < rows[1]["relative_error"] < rows[2]["relative_error"]
    other = qm.other_bytes(tiny_lstm, layers=list(W))
    for r in rows:
        assert r["bytes"] == other + sum(quant.fixed_point_bytes(w.shape, word_bits=r["bits"]) for w in W.values())


def test_design_challenge_functions(tiny):
    from thinlab.nn import size_report

    model, _, lesson = tiny
    with pytest.raises(KeyError, match="not Linear layers"):
        qs.apply_bit_plan(model, {"conv9": 4})
    with pytest.raises(ValueError, match="n_bits=1"):
        qs.apply_bit_plan(model, {"hidden.0": 1})
    scan = qs.layer_scan(model, lesson, bits=[2, 8])
    assert len(scan) == 2 * len(qm.layer_weights(model))
    total = size_report(model).total_bytes
    plan = {"hidden.0": 2, "hidden.1": 8, "out": 2}
    assert qs.plan_bytes(scan, plan, total_bytes=total) == size_report(qs.apply_bit_plan(model, plan)).total_bytes
    high = qs.plan_bytes(scan, {l: 8 for l in qm.layer_weights(model)}, total_bytes=total)
    low = qs.plan_bytes(scan, {l: 2 for l in qm.layer_weights(model)}, total_bytes=total)
    limit = (high + low) // 2
    ref = qs.reference_plan(scan, size_limit=limit, total_bytes=total)
    assert qs.plan_bytes(scan, ref, total_bytes=total) <= limit < high
    with pytest.raises(ValueError, match="below what the scan"):
        qs.reference_plan(scan, size_limit=low - 1, total_bytes=total)
    t = qs.challenge_targets(base_acc=0.8, base_bytes=1200, factor=12, drop=0.02, reference_acc=0.7)
    assert t == {"size_limit": 100, "accuracy_bar": 0.7, "bar_lowered": True, "wanted_bar": pytest.approx(0.78)}
    assert qs.challenge_targets(base_acc=0.8, base_bytes=1200, factor=12, drop=0.02, reference_acc=0.9)["accuracy_bar"] \
        == pytest.approx(0.78)


def test_finetune_study_over_seeds(tiny):
    model, _, lesson = tiny
    ft = qs.finetune_study(model, lesson, bits=[2], epochs=1, seeds=[0, 1])
    r = ft["rows"][0]
    assert ft["seeds"] == [0, 1] and r["verdict"] == r["comparison"]["verdict"]
    assert ("within noise" in r["sentence"]) == (r["verdict"] == "within noise")
    assert r["fine-tuned"] == pytest.approx(r["comparison"]["acc_a"])


def test_budget_winner_follows_the_seeds_when_they_overturn_the_first_seed(tiny, monkeypatch):
    _, _, lesson = tiny
    n = len(lesson.ds.y_test)
    hit = lambda k: np.arange(n) % k == 0                                      # noqa: E731
    rows = [dict(model="a", method="q", label="q", bits=2, bytes=100, val_accuracy=0.9, accuracy=0.6, hits=hit(2)),
            dict(model="b", method="q", label="q", bits=2, bytes=100, val_accuracy=0.9, accuracy=0.5, hits=hit(3))]
    ch = qs.budget_choice(rows, [400])
    seeded = {"a": np.stack([hit(2), np.zeros(n, bool), np.zeros(n, bool)]),   # seeds 1 and 2 of a collapse
              "b": np.stack([hit(3), np.ones(n, bool), np.ones(n, bool)])}
    monkeypatch.setattr(qs, "seed_hits", lambda lesson, name, **kw: seeded[name])
    w = qs.budget_winners(ch, lesson, rows, seeds=[0, 1, 2])[0]
    assert w["winner"] == "b" and w["runner_up"] == "a"                     # the seeds' mean decides
    assert w["comparison"]["acc_a"] > w["comparison"]["acc_b"] and w["comparison"]["a"] == "B"
    assert "the first seed alone had put the A first" in w["sentence"]


def test_budget_winner_runs_every_fitting_model_on_the_seeds(tiny, monkeypatch):
    """A third model, last on the first seed, wins when the seeds' mean puts it first."""
    _, _, lesson = tiny
    n = len(lesson.ds.y_test)
    hit = lambda k: np.arange(n) % k == 0                                      # noqa: E731
    rows = [dict(model=m, method="q", label="q", bits=2, bytes=100 + i, val_accuracy=0.9, accuracy=acc, hits=hit(k))
            for i, (m, acc, k) in enumerate([("a", 0.6, 2), ("b", 0.5, 3), ("c", 0.3, 4)])]
    ch = qs.budget_choice(rows, [400])
    seeded = {"a": np.stack([hit(2), hit(5), hit(5)]), "b": np.stack([hit(3), hit(5), hit(5)]),
              "c": np.stack([hit(4), np.ones(n, bool), np.ones(n, bool)])}
    calls = []
    monkeypatch.setattr(qs, "seed_hits", lambda lesson, name, **kw: calls.append(name) or seeded[name])
    w = qs.budget_winners(ch, lesson, rows, seeds=[0, 1, 2])[0]
    assert sorted(calls) == ["a", "b", "c"]                                 # every fitting model, once
    assert (w["winner"], w["runner_up"]) == ("c", "a") and w["comparison"]["a"] == "C"
    assert w["comparison"]["acc_a"] == pytest.approx(seeded["c"].mean())
    assert "the first seed alone had put the A first" in w["sentence"]



# ── the sentences, results entries and summary the lesson prints (moved out of its cells) ─────────────────

def test_int8_cast_text_and_results(tiny):
    model, W, lesson = tiny
    cast = qs.int8_cast_study(model, W, lesson)
    lines = qs.int8_cast_text(cast, n_test=30, n_classes=3).split("\n")
    assert lines == [
        f"100.00% of the weights round to 0 (the largest |w| is {cast['max_abs']:.3f}); the int8-cast model predicts "
        f"1 distinct word(s) for 30 test clips: accuracy {cast['test_acc']:.3f}, chance is 0.333.",
        "The cast is W/F fixed point with F = 0: a step of 1, far coarser than the weights: every weight of this "
        "model is below 0.5 in magnitude. Trained weights usually are, the likely cause of the thesis's collapse too; "
        "the exact figures differ with model and data."]
    big = {"zero_share": 0.25, "max_abs": 0.75, "n_predicted_words": 4, "test_acc": 0.5}
    assert qs.int8_cast_text(big, n_test=8, n_classes=4).startswith(
        "25.00% of the weights round to 0 (the largest |w| is 0.750); the int8-cast model predicts 4 distinct "
        "word(s) for 8 test clips: accuracy 0.500, chance is 0.250.\n")
    assert "not every weight of this model is below 0.5" in qs.int8_cast_text(big, n_test=8, n_classes=4)
    thesis = {"float_acc": 0.916, "int8_cast_acc": 0.143}
    res = qs.int8_cast_results(cast, thesis)
    assert list(res) == ["thesis", "int8_cast"] and thesis == {"float_acc": 0.916, "int8_cast_acc": 0.143}
    assert res["thesis"] == {"float_acc": 0.916, "int8_cast_acc": 0.143, "fixed_point_table": None,
                             "note": "only the thesis's two headline figures are available, not its fixed-point table"}
    assert res["int8_cast"] == {"test_acc": cast["test_acc"], "zero_share": 1.0, "n_predicted_words": 1,
                                "bytes": cast["bytes"]}


def test_sweep_results():
    rows = [dict(method="a", label="A", bits=2, accuracy=0.5, bytes=100, relative_error=0.3, vs_float32="worse", hits=[1]),
            dict(method="a", label="A", bits=4, accuracy=0.7, bytes=200, relative_error=0.1, vs_float32="within noise"),
            dict(method="int8_cast", label="cast", bits=8, accuracy=0.1, bytes=400, relative_error=1.0, vs_float32="worse")]
    res = qs.sweep_results(rows)
    assert res["sweep"][0] == {"method": "a", "bits": 2, "accuracy": 0.5, "bytes": 100, "relative_error": 0.3,
                               "vs_float32": "worse"}                       # no label, no per-clip hits
    assert [r["bits"] for r in res["sweep"]] == [2, 4, 8]
    assert res["acc_vs_bits"] == {"a": {"2": 0.5, "4": 0.7}, "int8_cast": {"8": 0.1}}


def _huffman_rows(bpw: dict) -> list[dict]:
    """Rows shaped like huffman_table's: (key, coding) → bits per weight, all at 3 bits."""
    return [{"quantiser": qm.METHODS[k][0], "key": k, "bits": 3, "coding": c, "bits per weight": v, "bytes": 0}
            for (k, c), v in bpw.items()]


def test_huffman_text(tiny):
    _, W, _ = tiny
    rows = qs.huffman_table(W, bits=[1, 2, 3, 4])
    lines = qs.huffman_text(rows, bits=[1, 2, 3, 4]).split("\n")           # the middle of 2, 3, 4: 3 bits
    by = {(r["key"], r["coding"]): r["bits per weight"] for r in rows if r["bits"] == 3}
    gain = qs.huffman_gain(rows, n_bits=3)
    assert lines[0] == (f"{qm.METHODS['uniform_asym'][0]}, 3 bits: packed {by[('uniform_asym', 'packed')]:.2f} bits/weight, "
                        f"Huffman {by[('uniform_asym', 'Huffman')]:.2f}, entropy bound {by[('uniform_asym', 'entropy bound')]:.2f}")
    assert lines[1].startswith(f"{qm.METHODS['kmeans'][0]}, 3 bits: packed {by[('kmeans', 'packed')]:.2f} bits/weight")
    assert lines[2].startswith(f"at 3 bits Huffman saves {gain['uniform_asym']:.0%} of the bytes on uniform codes and "
                               f"{gain['kmeans']:.0%} on k-means codes") and len(lines) == 3
    bpw = {("uniform_asym", "packed"): 4.0, ("uniform_asym", "Huffman"): 2.0, ("uniform_asym", "entropy bound"): 1.5,
           ("kmeans", "packed"): 4.0, ("kmeans", "Huffman"): 3.0, ("kmeans", "entropy bound"): 2.9}
    text = qs.huffman_text(_huffman_rows(bpw), bits=[3])
    assert text.split("\n")[0].endswith("3 bits: packed 4.00 bits/weight, Huffman 2.00, entropy bound 1.50")
    assert text.endswith("at 3 bits Huffman saves 50% of the bytes on uniform codes and 25% on k-means codes: k-means "
                         "spreads the weights more evenly over its levels (higher entropy), leaving less to compress.")
    bpw[("kmeans", "Huffman")] = 1.0                                          # k-means gains more: no explanation
    assert qs.huffman_text(_huffman_rows(bpw), bits=[3]).endswith("on uniform codes and 75% on k-means codes.")
    with pytest.raises(ValueError, match="from 2 bits up"):
        qs.huffman_text(rows, bits=[1])


def test_winners_text():
    wins = [{"sentence": "At 32.0 KB no model fits, even at its fewest bits.", "comparison": None},
            {"sentence": "At 1.0 MB the DNN wins.", "comparison": {"verdict": "better"}}]
    assert qs.winners_text(wins) == "At 32.0 KB no model fits, even at its fewest bits.\nAt 1.0 MB the DNN wins."
    wins.append({"sentence": "At 2.0 MB: within noise.", "comparison": {"verdict": "within noise"}})
    lines = qs.winners_text(wins).split("\n")
    assert lines[:3] == [w["sentence"] for w in wins]
    assert lines[3] == "Why such a race can go either way: " + "; ".join(qs.REASONS) + "."


def test_challenge_text():
    low = qs.challenge_targets(base_acc=0.8, base_bytes=1200, factor=12, drop=0.02, reference_acc=0.7)
    assert qs.challenge_text(low, base_acc=0.8, factor=12, drop=0.02) == (
        "size limit 100 B (float32 / 12); accuracy bar 0.700 on the validation speakers: float32 − 0.02 would be "
        "0.780, which the scan's "
        "plan does not reach in this run, so the bar is what that plan reaches")
    ok = qs.challenge_targets(base_acc=0.8, base_bytes=1_200_000, factor=12, drop=0.02, reference_acc=0.9)
    assert qs.challenge_text(ok, base_acc=0.8, factor=12, drop=0.02) == \
        "size limit 100 KB (float32 / 12); accuracy bar 0.780 on the validation speakers (float32 0.800 − 0.02)"


def test_summary_lines():
    kw = dict(base_acc=0.8, se=0.02, base_bytes=6_220_136, int8_acc=0.1, thesis={"float_acc": 0.916, "int8_cast_acc": 0.143},
              fixed_rows=[{"bits": 16, "test_acc": 0.8}, {"bits": 8, "test_acc": 0.79}],
              fewest={"k-means": 2, "OMSE": 3},
              finetune={"rows": [{"bits": 2, "post-training": 0.5, "fine-tuned": 0.6}], "float_finetuned_acc": 0.81},
              lstm_fixed=[{"bits": 8, "test_acc": 0.7}],
              winners=[{"budget": 32_000, "winner": None, "runner_up": None, "comparison": None},
                       {"budget": 64_000, "winner": "cnn", "runner_up": "lstm", "comparison": {"verdict": "within noise"}},
                       {"budget": 1_000_000, "winner": "dnn", "runner_up": "cnn", "comparison": {"verdict": "better"}},
                       {"budget": 6_300_000, "winner": "dnn", "runner_up": None, "comparison": None}],
              challenge="✓ challenge met")
    assert qs.summary_lines(**kw) == [
        "baseline DNN: test accuracy 0.800 ± 0.020, 6,220,136 bytes",
        "int8 cast (no scale): 0.100 (seed thesis, quoted: 0.916 → 0.143); 8-bit fixed point with the best F: 0.790",
        "fixed point, best F: 16 bits 0.800, 8 bits 0.790",
        "fewest bits not worse than float32: k-means 2, OMSE 3",
        "fake-quant fine-tuning: 2 bits 0.500 → 0.600 (float32 control 0.810)",
        "LSTM fixed point, best F: 8 bits 0.700",
        "most accurate model per budget in this run: 32.0 KB NONE; 64.0 KB CNN (within noise of LSTM); "
        "1.0 MB DNN (beyond noise of CNN); 6.3 MB DNN",
        "✓ challenge met"]
    lines = qs.summary_lines(**{**kw, "fixed_rows": [{"bits": 4, "test_acc": 0.6}], "fewest": {}})
    assert lines[1] == "int8 cast (no scale): 0.100 (seed thesis, quoted: 0.916 → 0.143)"     # no 8-bit row
    assert lines[3] == "fewest bits not worse than float32: none"
