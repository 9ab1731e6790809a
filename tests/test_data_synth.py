"""thinlab.data.espeak / synth: the ctypes wrapper, and the offline keyword set in the real layout."""
from __future__ import annotations

import re
import time

import numpy as np
import pytest
import soundfile as sf

from thinlab.data import DataError, load_dataset, scan, synthesize, synthetic_dir
from thinlab.data import synth as synth_mod
from thinlab.data.espeak import ENGLISH_VOICES, Session, SynthError, speak, variants

SMALL = {"n_speakers": 6, "words": ["yes", "no", "cat"], "background_seconds": 3.0}


def test_speak_returns_int16_speech():
    y, sr = speak("yes", voice="en-us")
    assert sr == 22050 and y.dtype == np.int16
    assert 0.2 * sr < y.shape[0] < 1.5 * sr and np.abs(y).max() > 3000


def test_speak_is_deterministic_and_voices_differ():
    a, _ = speak("left", voice="en-gb-scotland+f2", rate=150, pitch=60)
    with Session(seed=5) as s:  # other utterances in between must not change the next fresh session
        s.speak("go", voice="en-029+m2")
        s.speak("right", voice="en+whisper")
    b, _ = speak("left", voice="en-gb-scotland+f2", rate=150, pitch=60)
    c, _ = speak("left", voice="en-us+m3", rate=150, pitch=60)
    d, _ = speak("left", voice="en-gb-scotland+f2", rate=150, pitch=30)
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c) and not np.array_equal(a, d)


@pytest.mark.parametrize("voice", ENGLISH_VOICES)
def test_every_english_voice_speaks(voice):
    y, _ = speak("stop", voice=voice)
    assert np.abs(y).max() > 1000


def test_bad_voices_and_parameters():
    with pytest.raises(SynthError, match=r"no voice 'en-gb' \(British English is 'en', not 'en-gb'\)"):
        speak("yes", voice="en-gb")
    with pytest.raises(SynthError, match=r"no voice variant 'm99'"):
        speak("yes", voice="en+m99")
    with pytest.raises(SynthError, match=r"rate=20, pitch=50: espeak-ng expects rate in 80…450"):
        speak("yes", rate=20)
    assert {"m1", "f5", "klatt", "whisper"} <= set(variants())
    with pytest.raises(SynthError, match="outside `with Session"):
        Session().speak("yes")


def test_speaker_grid_ids():
    grid = synth_mod.speaker_grid()
    ids = [synth_mod.speaker_id(*g) for g in grid]
    assert len(grid) == len(ENGLISH_VOICES) * len(synth_mod.VARIANTS) * len(synth_mod.PITCHES) * len(synth_mod.RATES)
    assert all(re.fullmatch(r"[0-9a-f]{8}", i) for i in ids) and len(set(ids)) == len(ids)


def test_small_set_in_the_real_layout(tmp_cache):
    dest = synthesize(progress=False, **SMALL)
    assert dest == synthetic_dir(**SMALL) and dest.parent == tmp_cache
    assert re.fullmatch(r"synthetic-[0-9a-f]{12}", dest.name)
    folder = scan(dest)
    assert folder.words == ["cat", "no", "yes"] and len(folder.clips) == 18
    assert [b.split("/")[1] for b in folder.background] == ["babble.wav", "brown_noise.wav", "mains_hum.wav",
                                                           "pink_noise.wav", "white_noise.wav"]
    assert all(re.fullmatch(r"[0-9a-f]{8}_nohash_0\.wav", c.rel.split("/")[1]) for c in folder.clips)
    assert len({c.speaker for c in folder.clips}) == 6
    for c in folder.clips[:6]:
        info = sf.info(str(dest / c.rel))
        assert (info.samplerate, info.frames, info.channels, info.subtype) == (16000, 16000, 1, "PCM_16")
        y, _ = sf.read(str(dest / c.rel))
        assert 0.25 < np.abs(y).max() < 0.95
    assert sf.info(str(dest / folder.background[0])).frames == 3 * 16000


def test_same_seed_same_bytes_other_seed_other_speakers(tmp_path):
    a = synthesize(tmp_path / "a", progress=False, **SMALL)
    b = synthesize(tmp_path / "b", progress=False, **SMALL)
    c = synthesize(tmp_path / "c", seed=1, progress=False, **SMALL)
    files = sorted(p.relative_to(a) for p in a.rglob("*.wav"))
    assert files == sorted(p.relative_to(b) for p in b.rglob("*.wav"))
    assert all((a / f).read_bytes() == (b / f).read_bytes() for f in files)
    assert {c.speaker for c in scan(a).clips} != {c.speaker for c in scan(c).clips}


def test_complete_set_is_reused(tmp_path, capsys):
    dest = synthesize(tmp_path / "s", progress=False, **SMALL)
    stamp = {p: p.stat().st_mtime_ns for p in dest.rglob("*.wav")}
    assert synthesize(tmp_path / "s", progress=False, **SMALL) == dest
    assert "reusing" in capsys.readouterr().out
    assert {p: p.stat().st_mtime_ns for p in dest.rglob("*.wav")} == stamp


def test_failure_midway_leaves_nothing(tmp_path, monkeypatch):
    calls = {"n": 0}
    real = synth_mod.render_clip

    def flaky(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] > 5:
            raise RuntimeError("espeak crashed")
        return real(*args, **kwargs)

    monkeypatch.setattr(synth_mod, "render_clip", flaky)
    with pytest.raises(RuntimeError, match="espeak crashed"):
        synthesize(tmp_path / "s", progress=False, **SMALL)
    assert list(tmp_path.iterdir()) == []


def test_synthesize_never_replaces_a_users_folder(tmp_path):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    with pytest.raises(DataError, match="refusing to replace .*mine: it exists and was not written by thinlab"):
        synthesize(tmp_path / "mine", progress=False, **SMALL)
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep me" and len(list(tmp_path.iterdir())) == 1


def test_bad_parameters():
    with pytest.raises(DataError, match=r"n_speakers=2: expected 3 … 4080"):
        synthesize(n_speakers=2)
    with pytest.raises(DataError, match=r"expected plain words such as 'yes' \(got \['_x'\]\)"):
        synthesize(words=["yes", "_x"])


def test_2000_clips_take_seconds(tmp_path, capsys):
    t0 = time.perf_counter()
    dest = synthesize(tmp_path / "big", n_speakers=125, progress=False)  # 125 speakers × 16 words
    seconds = time.perf_counter() - t0
    assert len(scan(dest).clips) == 2000
    print(f"synthesized 2,000 clips in {seconds:.1f} s")
    assert seconds < 60


def test_synthetic_words_are_learnable_across_speakers(tmp_cache):
    """Held-out synthetic speakers are recognised far above chance (10 %) by a nearest-centroid rule
    on time-pooled log-mel features: the words really differ, and splits hold voices out."""
    dest = synthesize(n_speakers=60, words=["yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go"],
                      background_seconds=2.0, progress=False, verbose=False)
    ds = load_dataset(dest, progress=False, verbose=False, split="rank")
    assert ds.source.kind == "synthetic" and not ds.shared_speakers()["train&test"]

    def pool(X):
        return np.concatenate([X.mean(axis=1), X.std(axis=1)], axis=1)  # (N, 80)

    A, B = pool(ds.X_train), pool(ds.X_test)
    mu, sd = A.mean(0), A.std(0) + 1e-6
    centroids = np.stack([((A - mu) / sd)[ds.y_train == k].mean(0) for k in range(10)])
    dist = ((((B - mu) / sd)[:, None, :] - centroids[None]) ** 2).sum(-1)  # (N_test, 10)
    pred = np.argmin(dist, axis=1)
    assert (pred == ds.y_test).mean() > 0.3
