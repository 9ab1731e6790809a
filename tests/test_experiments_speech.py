"""Lesson 00's experiment drivers (thinlab.experiments.speech) on tiny synthetic arrays."""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from thinlab import models, stats, train
from thinlab.experiments import speech

LABELS = ["yes", "no", "up"]


def fake_ds(seed=0, n_per_class=12, speakers_per_split=("a", "b", "c"), frames=8, mels=4):
    """A separable 3-class set: class c has mean 3·c in band c; speakers named per split."""
    rng = np.random.default_rng(seed)
    parts = {}
    for split, spk in zip(("train", "val", "test"), speakers_per_split):
        y = np.repeat(np.arange(len(LABELS)), n_per_class)
        X = rng.normal(size=(len(y), frames, mels)).astype(np.float32)     # (N, frames, mels)
        X[np.arange(len(y)), :, y] += 3.0
        parts.update({f"X_{split}": X, f"y_{split}": y,
                      f"speakers_{split}": np.array([f"{spk}{i % 3}" for i in range(len(y))]),
                      f"files_{split}": np.array([f"{LABELS[c]}/{spk}{i % 3}_nohash_{i}.wav" for i, c in enumerate(y)])})
    return SimpleNamespace(labels=list(LABELS), **parts)


def test_example_clips_first_clip_of_each_word():
    ds = fake_ds()
    ex = speech.example_clips(ds, n_words=2)
    assert [e["label"] for e in ex] == ["yes", "no"]
    assert [e["index"] for e in ex] == [0, 12] and ex[1]["file"] == str(ds.files_train[12])


def test_split_summary_counts_and_rejects_overlap():
    ds = fake_ds()
    rows, n_spk = speech.split_summary(ds)
    assert n_spk == {"train": 3, "val": 3, "test": 3}
    assert len(rows) == 9 and all(r["clips"] == 12 for r in rows)
    ds.speakers_test = ds.speakers_train.copy()
    with pytest.raises(AssertionError, match="train and test"):
        speech.split_summary(ds)
    calls = []
    speech.split_summary(fake_ds(), overlap=lambda a, b: calls.append(1) or set())   # the student's function is used
    assert len(calls) == 3


@pytest.mark.parametrize("gap, noise, word", [(0.10, 0.05, "larger than the noise"), (0.01, 0.05, "cannot tell"),
                                              (-0.10, 0.05, "speaker-disjoint split scored higher")])
def test_leak_verdict(gap, noise, word):
    assert word in speech.leak_verdict(gap, noise)


def test_speaker_leak_means_gap_and_leaked_speakers(capsys):
    ds = fake_ds(0)
    loads = []

    def load(source, *, task, split, max_per_class, seed, verbose):
        loads.append((split, seed))
        return fake_ds(seed + 10, speakers_per_split=("a", "b", "a"))   # test speakers a0..a2 also train

    out = speech.speaker_leak("src", ds, task="10words", model="dnn", epochs=8, seeds=[0, 1], load=load,
                              verbose=True)
    assert loads == [("random", 0), ("random", 1)]
    assert out["leaked_test_speakers"] == 3 and len(out["runs"]) == 4
    for key, split in (("random_split_acc", speech.RANDOM), ("speaker_split_acc", speech.SPEAKER)):
        assert out[key] == pytest.approx(np.mean([r["test accuracy"] for r in out["runs"] if r["split"] == split]))
    assert out["gap_points"] == pytest.approx(100 * (out["random_split_acc"] - out["speaker_split_acc"]))
    assert out["noise_points"] == pytest.approx(100 * train.difference_noise(out["se_random"], out["se_speaker"]))
    assert out["speaker_split_acc"] > 1 / 3 + 0.2          # the separable set is learned
    assert "two standard errors of that difference" in capsys.readouterr().out


class FakeLesson:
    def __init__(self, ds):
        self.ds = ds

    def baseline(self, name):
        m = models.build_model(name, 3, n_frames=8, n_mels=4)
        train.fit(m, self.ds.X_train, self.ds.y_train, epochs=2, seed=0, progress=False)
        acc = train.evaluate(m, self.ds.X_test, self.ds.y_test)["accuracy"]
        return m, {"test_acc": acc, "val_acc": acc, "seconds": 0.0, "cached": False}

    def interval(self, model):
        return stats.accuracy_interval(stats.correct(model, self.ds.X_test, self.ds.y_test), self.ds.speakers_test)


def test_baselines_table_record_and_interval_report(capsys):
    ds = fake_ds()
    rows, trained, intervals = speech.baselines(FakeLesson(ds), ["dnn"])
    r = rows[0]
    assert r["model"] == "dnn" and r["parameters"] == models.n_params(trained["dnn"])
    assert r["FP32 bytes"] == models.fp32_bytes(trained["dnn"]) and r["test accuracy"] > 0.6
    assert intervals["dnn"].accuracy == pytest.approx(r["test accuracy"])
    rec = speech.models_record(rows, intervals)
    assert rec["dnn"]["interval"] == [intervals["dnn"].low, intervals["dnn"].high]
    widths = speech.interval_report(intervals, stats.eval_record(ds.files_test, ds.speakers_test))
    assert widths == {"dnn": pytest.approx(100 * intervals["dnn"].width)}
    assert "3 speakers" in capsys.readouterr().out


def test_gap_rows_long_drops_missing_values():
    gap = {"rows": [{"model": "cnn", "synthetic test clips": 0.9, "real clips": 0.2, "trained on real, real clips": None}]}
    assert speech.gap_rows_long(gap) == [{"model": "cnn", "scored on": "synthetic test clips", "accuracy": 0.9},
                                         {"model": "cnn", "scored on": "real clips", "accuracy": 0.2}]
    assert speech.gap_rows_long(None) == []


def test_split_summary_ignores_speakerless_silence_clips():
    ds = fake_ds()
    for s in ("train", "val", "test"):                  # the 12-class task's _silence_ clips have speaker ""
        getattr(ds, f"speakers_{s}")[:2] = ""
    rows, n_spk = speech.split_summary(ds)
    assert n_spk == {"train": 3, "val": 3, "test": 3} and sum(r["clips"] for r in rows) == 108


def _rows(accs, sizes, params=None):
    params = params or [b // 4 for b in sizes]
    return [{"model": m, "test accuracy": a, "FP32 bytes": b, "parameters": p}
            for m, a, b, p in zip(["cnn", "lstm", "dnn"], accs, sizes, params)]


def test_size_accuracy_per_kb_front_and_domination():
    sa = speech.size_accuracy(_rows([0.79, 0.78, 0.63], [529_160, 384_104, 6_220_136]))
    per_kb = {p["model"]: p["points per KB"] for p in sa["points"]}
    assert per_kb["lstm"] == pytest.approx(78 / 384.104) and sa["best_per_kb"] == "lstm"
    assert sa["most_accurate"] == "cnn" and sa["smallest"] == "lstm" and sa["largest"] == "dnn"
    assert sa["front"] == ["lstm", "cnn"] and sa["dominated_by"] == {"cnn": [], "lstm": [], "dnn": ["cnn", "lstm"]}
    with pytest.raises(ValueError, match="at least one"):
        speech.size_accuracy([])
    with pytest.raises(ValueError, match="between 0 and 1"):
        speech.size_accuracy(_rows([1.5, 0.5, 0.5], [10, 20, 30]))


@pytest.mark.parametrize("accs, dominated", [([0.79, 0.78, 0.63], True), ([0.34, 0.36, 0.37], False)])
def test_why_dnn_words_follow_the_numbers(accs, dominated):
    sa = speech.size_accuracy(_rows(accs, [529_160, 384_104, 6_220_136]))
    text = speech.why_dnn(sa, target_shapes=[(2000, 512), (512, 512), (512, 512), (512, 10)])
    assert "Most accurate per byte in this run: the LSTM" in text and "2000×512" in text
    assert ("both smaller than the DNN" in text) == dominated
    assert ("No other baseline is both smaller and more accurate" in text) == (not dominated)
    d = 100 * (accs[1] - accs[2])
    assert f"{'gains' if d > 0 else 'loses'} {abs(d):.1f} points" in text
    assert "it has the most parameters" in text and "DeepThin paper's subject" in text
    assert "natural target" not in text
    with pytest.raises(KeyError, match="not among the baselines"):
        speech.why_dnn(sa, target="resnet")


def test_dense_shapes_lists_linear_layers_as_in_out():
    m = models.build_model("dnn", 3, n_frames=8, n_mels=4)
    shapes = speech.dense_shapes(m)
    assert shapes[0][0] == (8 // 2) * 4 and shapes[-1][1] == 3
    assert all(a[1] == b[0] for a, b in zip(shapes, shapes[1:]))
