"""thinlab.data features, their cache, load_dataset and source resolution."""
from __future__ import annotations

import os
import warnings

import numpy as np
import pytest
from data_helpers import make_folder, tone

from thinlab.data import (DataError, FeatureCacheWarning, FeatureParams, compute_features, load_audio, load_dataset,
                          logmel, mfcc, read_audio, resolve_source, synthesize)


@pytest.fixture(scope="module")
def sample_ds(shared_sample, tmp_path_factory):
    """The whole real sample, 10 words, computed once for this module (own cache folder)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("THINLAB_CACHE", str(tmp_path_factory.mktemp("cache")))
        mp.delenv("THINLAB_DATA", raising=False)
        yield load_dataset(shared_sample, progress=False, verbose=False)


def _cache_files(cache):
    return sorted((cache / "features").glob("*.npz"))


def test_logmel_and_mfcc_shapes():
    x = np.stack([tone(440), tone(880)])  # (2, 16000)
    assert logmel(x).shape == (2, 101, 40) and logmel(x[0]).shape == (101, 40)
    assert mfcc(x).shape == (2, 101, 13) and mfcc(x, n_mfcc=20).shape == (2, 101, 20)
    assert logmel(x, n_mels=64, hop_length=320).shape == (2, 51, 64)
    assert logmel(x).dtype == np.float32


def test_batch_equals_one_by_one():
    x = np.stack([tone(300), tone(1200, amp=0.1), np.zeros(16000, np.float32)])
    for p in (FeatureParams("logmel"), FeatureParams("mfcc")):
        batch = compute_features(x, p)
        for i in range(3):
            np.testing.assert_allclose(batch[i], compute_features(x[i], p), rtol=1e-5, atol=1e-5)


def test_logmel_puts_a_tone_in_the_right_band():
    import librosa

    edges = librosa.mel_frequencies(n_mels=42, fmin=20.0, fmax=8000.0)  # band k spans edges[k] … edges[k+2]
    for f in (250.0, 1000.0, 3000.0):
        band = int(np.argmax(logmel(tone(f))[50]))
        assert edges[band] <= f <= edges[band + 2], (f, band)


def test_silence_logmel_is_the_floor():
    assert np.allclose(logmel(np.zeros(16000, np.float32)), np.log(1e-6), atol=1e-4)


def test_bad_feature_parameters():
    with pytest.raises(DataError, match="feature='spectrogram' is unknown"):
        FeatureParams("spectrogram")
    with pytest.raises(DataError, match="need 0 < hop_length ≤ n_fft and 0 < n_mfcc ≤ n_mels"):
        FeatureParams("mfcc", n_mfcc=50)


def test_sample_dataset_shapes_and_labels(sample_ds, shared_sample):
    ds = sample_ds
    assert ds.labels == ["yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go"]
    n = 0
    for k in ("train", "val", "test"):
        X, y = getattr(ds, f"X_{k}"), getattr(ds, f"y_{k}")
        files, spk = getattr(ds, f"files_{k}"), getattr(ds, f"speakers_{k}")
        assert X.dtype == np.float32 and X.shape[1:] == (101, 40) and y.dtype == np.int64
        assert len(X) == len(y) == len(files) == len(spk) > 0 and np.isfinite(X).all()
        assert all(ds.labels[label] == f.split("/")[0] for label, f in zip(y, files))
        assert all((shared_sample / f).is_file() for f in files)
        n += len(y)
    assert n == sum(len(os.listdir(shared_sample / w)) for w in ds.labels)


def test_sample_dataset_is_speaker_disjoint_and_says_so(sample_ds):
    ds = sample_ds
    assert ds.shared_speakers() == {"train&val": 0, "train&test": 0, "val&test": 0}
    text = ds.describe()
    assert "speaker-rank rule" in text and "official lists (lists/v0.02/) leave a split empty" in text
    assert "the speaker-hash rule gives the same split (it is the rule that made those lists)" in text
    assert "speakers in two splits: none" in text and "source: folder" in text
    assert ds.source.is_real and str(ds.source.path) in ds.source.message


def test_sample_features_match_direct_computation(sample_ds, shared_sample):
    i = len(sample_ds.files_test) // 2
    direct = logmel(load_audio(shared_sample / sample_ds.files_test[i]))
    np.testing.assert_allclose(sample_ds.X_test[i], direct, rtol=1e-5, atol=1e-5)


def test_12class_on_real_clips(real_folder, tmp_cache):
    ds = load_dataset(real_folder, task="12class", feature="mfcc", max_per_class=8, progress=False,
                      verbose=False)
    assert ds.labels[-2:] == ["_unknown_", "_silence_"] and ds.X_train.shape[1:] == (101, 13)
    assert set(ds.y_train) == set(range(12)) and np.bincount(ds.y_train).max() <= 8
    silence = ds.X_train[ds.y_train == 11]
    assert (ds.speakers_train[ds.y_train == 11] == "").all() and np.isfinite(silence).all()


def test_random_split_is_reported_as_leaky(shared_sample, tmp_cache):
    ds = load_dataset(shared_sample, split="random", max_per_class=12, progress=False, verbose=False)
    assert not ds.speaker_disjoint and ds.shared_speakers()["train&test"] > 0
    assert "NOT speaker-disjoint" in ds.describe()


def test_cache_hit_then_corrupt_then_foreign(real_fixture, tmp_cache):
    shared_sample = real_fixture            # any real folder: the in-repo fixture keeps it fast
    kw = dict(max_per_class=4, progress=False, verbose=False)
    first = load_dataset(shared_sample, **kw)
    assert first.cache_status == "computed"
    (path,) = _cache_files(tmp_cache)
    again = load_dataset(shared_sample, **kw)
    assert again.cache_status == "cache" and np.array_equal(again.X_train, first.X_train)

    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])  # a half-written file
    with pytest.warns(FeatureCacheWarning, match=r"is corrupt .*recomputing"):
        fixed = load_dataset(shared_sample, **kw)
    assert fixed.cache_status == "computed" and np.array_equal(fixed.X_train, first.X_train)

    np.savez(path, X=np.zeros_like(np.concatenate([first.X_train, first.X_val, first.X_test])),
             key=np.frombuffer(b'{"other": "parameters"}', dtype=np.uint8))
    with pytest.warns(FeatureCacheWarning, match="made for other parameters or files"):
        fixed = load_dataset(shared_sample, **kw)
    assert np.array_equal(fixed.X_val, first.X_val)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert load_dataset(shared_sample, **kw).cache_status == "cache"  # repaired on disk


def test_cache_key_follows_parameters_and_files(tmp_path, tmp_cache):
    root = make_folder(tmp_path / "d", n_speakers=10)
    kw = dict(words=["yes", "no"], progress=False, verbose=False)
    a = load_dataset(root, **kw)
    b = load_dataset(root, feature_params={"n_mels": 32}, **kw)
    assert b.X_train.shape[2] == 32 and len(_cache_files(tmp_cache)) == 2
    f = root / a.files_train[0]
    st = f.stat()
    os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))  # the same file, touched: not trusted any more
    assert load_dataset(root, **kw).cache_status == "computed"
    assert load_dataset(root, cache=False, **kw).cache_status == "computed"


def test_augment_appends_seeded_copies(tmp_path, tmp_cache):
    root = make_folder(tmp_path / "d", n_speakers=10)
    kw = dict(words=["yes", "no"], progress=False, verbose=False)
    plain = load_dataset(root, **kw)
    aug = load_dataset(root, augment=True, **kw)
    aug2 = load_dataset(root, augment=True, cache=False, **kw)
    n = len(plain.y_train)
    assert len(aug.y_train) == 2 * n and np.array_equal(aug.X_train[:n], plain.X_train)
    assert np.array_equal(aug.y_train[n:], plain.y_train) and np.array_equal(aug.files_train[n:], plain.files_train)
    assert not np.allclose(aug.X_train[n:], plain.X_train)
    assert np.array_equal(aug.X_train, aug2.X_train) and np.array_equal(aug.X_test, plain.X_test)
    assert "augmented copy" in aug.describe()
    with pytest.raises(DataError, match=r"augment has unknown options \['snr'\]"):
        load_dataset(root, augment={"snr": 3}, **kw)


def test_auto_prefers_thinlab_data(shared_sample, tmp_cache, monkeypatch):
    monkeypatch.setenv("THINLAB_DATA", str(shared_sample))
    src = resolve_source("auto")
    assert src.kind == "folder" and src.path == shared_sample and "THINLAB_DATA" in src.description
    monkeypatch.setenv("THINLAB_DATA", str(shared_sample / "missing"))
    with pytest.raises(DataError, match=r"THINLAB_DATA=.*missing.*does not exist"):
        resolve_source("auto")


def test_auto_falls_back_to_synthetic_and_says_so(tmp_cache, monkeypatch):
    monkeypatch.delenv("THINLAB_DATA", raising=False)
    src = resolve_source("auto", synth_kwargs={"n_speakers": 4, "words": ["yes", "no"], "background_seconds": 2},
                         progress=False, verbose=False)
    assert src.kind == "synthetic" and not src.is_real and src.path.parent == tmp_cache
    assert "SYNTHETIC" in src.message and "make data" in src.message and "THINLAB_DATA" in src.message
    assert resolve_source(src.path).kind == "synthetic"  # a synthetic folder passed by path is still labelled


def test_synthetic_12class_cuts_silence_from_its_noise(tmp_path, tmp_cache):
    dest = synthesize(tmp_path / "s", n_speakers=30, words=["yes", "no", "cat"], background_seconds=12,
                      progress=False, verbose=False)
    ds = load_dataset(dest, task="12class", words=["yes", "no"], progress=False, verbose=False)
    assert ds.labels == ["yes", "no", "_unknown_", "_silence_"]
    windows = ds.files_train[ds.y_train == 3]
    assert all(f.startswith("_background_noise_/") and "#start=" in f for f in windows)
    assert "cut from 5 _background_noise_ recordings" in ds.describe()
    i = int(np.flatnonzero(ds.y_train == 3)[0])  # load_audio reads a window entry like any clip
    np.testing.assert_allclose(logmel(load_audio(dest / ds.files_train[i])), ds.X_train[i], rtol=1e-5, atol=1e-5)
    base, frag = ds.files_train[i].split("#")
    start, gain = int(frag.split("&")[0][6:]), float(frag.split("gain=")[1])
    np.testing.assert_allclose(load_audio(dest / ds.files_train[i]), read_audio(dest / base)[start:start + 16000]
                               * gain, atol=1e-7)
    with pytest.raises(DataError, match=r"expected a WAV path or '<noise>\.wav#start=<sample>&gain=<g>'"):
        load_audio(dest / (base + "#begin=3"))


def test_missing_folder_source(tmp_path):
    with pytest.raises(DataError, match=r"data folder .*nope \(given path\) does not exist"):
        load_dataset(tmp_path / "nope", verbose=False)


def test_cli_describe_prints_source_and_split(shared_sample, tmp_cache, capsys):
    from thinlab.data.__main__ import main

    assert main(["describe", str(shared_sample), "--split", "random"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"Data: Speech Commands folder (given path) at {shared_sample}.")
    assert "random file-level split" in out and "train&test" in out
    assert main(["describe", str(shared_sample / "nope")]) == 2
    assert "does not exist" in capsys.readouterr().err
