"""thinlab.data.audio: every WAV flavour loads normalised; every broken file fails clearly."""
from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
from data_helpers import SR, tone, write_wav
from hypothesis import given, settings
from hypothesis import strategies as st

from thinlab.data import AudioError, load_audio, mix_noise, random_augment, read_audio, time_shift
from thinlab.data.audio import pcm16_wav_bytes


@pytest.mark.parametrize("subtype, tol", [("PCM_U8", 1 / 64), ("PCM_16", 1e-4), ("PCM_24", 1e-6),
                                          ("FLOAT", 1e-7), ("DOUBLE", 1e-7)])
def test_bit_depths_load_as_float32_in_range(tmp_path, subtype, tol):
    y = tone(440, 1.0)
    p = write_wav(tmp_path / f"{subtype}.wav", y, subtype=subtype)
    assert sf.info(str(p)).subtype == subtype
    out = load_audio(p)
    assert out.dtype == np.float32 and out.shape == (SR,)
    assert np.max(np.abs(out - y)) < tol


def test_stereo_is_averaged(tmp_path):
    left, right = tone(440, 1.0, amp=0.6), tone(440, 1.0, amp=0.2)
    p = write_wav(tmp_path / "stereo.wav", np.stack([left, right], axis=1), subtype="FLOAT")
    np.testing.assert_allclose(load_audio(p), (left + right) / 2, atol=1e-7)


def test_44k1_is_resampled_to_16k(tmp_path):
    p = write_wav(tmp_path / "cd.wav", tone(1000, 1.0, sr=44100), sr=44100)
    out = load_audio(p)
    assert out.shape == (SR,)
    spectrum = np.abs(np.fft.rfft(out))
    assert abs(np.argmax(spectrum) - 1000) <= 2  # 1-Hz bins over 1 s: the tone stays at 1 kHz
    np.testing.assert_allclose(np.sqrt(np.mean(out[1000:-1000] ** 2)), 0.5 / np.sqrt(2), rtol=0.02)


def test_float_wav_out_of_range_is_clipped(tmp_path):
    p = write_wav(tmp_path / "loud.wav", np.full(SR, 3.0, np.float32), subtype="FLOAT")
    assert load_audio(p).max() == 1.0


def test_short_clip_padded_long_clip_cut(tmp_path):
    short = write_wav(tmp_path / "short.wav", tone(300, 0.25))
    out = load_audio(short)
    assert out.shape == (SR,) and np.all(out[4000:] == 0) and np.any(out[:4000] != 0)
    long = write_wav(tmp_path / "long.wav", np.concatenate([tone(300, 1.0), np.ones(SR, np.float32) * 0.9]))
    np.testing.assert_allclose(load_audio(long), tone(300, 1.0), atol=1e-4)
    assert read_audio(long).shape == (2 * SR,)


def test_empty_file(tmp_path):
    p = tmp_path / "empty.wav"
    p.write_bytes(b"")
    with pytest.raises(AudioError, match=r"empty\.wav is empty \(0 bytes\)"):
        load_audio(p)


def test_non_wav_file(tmp_path):
    p = tmp_path / "notes.wav"
    p.write_text("this is not audio")
    with pytest.raises(AudioError, match=r"notes\.wav is not a WAV file .*convert it"):
        load_audio(p)


def test_truncated_file(tmp_path):
    data = pcm16_wav_bytes(tone(440, 1.0))
    p = tmp_path / "cut.wav"
    p.write_bytes(data[: len(data) // 2])
    with pytest.raises(AudioError, match=r"cut\.wav is truncated: its header promises 32000 bytes"):
        load_audio(p)
    q = tmp_path / "stub.wav"
    q.write_bytes(data[:8])
    with pytest.raises(AudioError, match=r"stub\.wav is truncated"):
        load_audio(q)


def test_zero_length_wav(tmp_path):
    p = write_wav(tmp_path / "zero.wav", np.zeros(0, np.float32))
    with pytest.raises(AudioError, match=r"zero\.wav has no audio \(0 samples\)"):
        load_audio(p)


def test_missing_file(tmp_path):
    with pytest.raises(AudioError, match="does not exist"):
        load_audio(tmp_path / "nope.wav")


def test_pcm16_writer_round_trips(tmp_path):
    y = tone(523, 0.5)
    p = tmp_path / "w.wav"
    p.write_bytes(pcm16_wav_bytes(y))
    back, sr = sf.read(str(p), dtype="float32")
    assert sr == SR and sf.info(str(p)).subtype == "PCM_16"
    np.testing.assert_allclose(back, y, atol=1 / 32767)


@given(shift=st.integers(-20000, 20000))
def test_time_shift_moves_and_zero_fills(shift):
    x = np.arange(1, 101, dtype=np.float32)
    out = time_shift(x, shift // 200)
    s = shift // 200
    for i in range(100):
        expected = x[i - s] if 0 <= i - s < 100 else 0.0
        assert out[i] == expected


@settings(deadline=None, max_examples=40)
@given(snr=st.floats(-10, 40), seed=st.integers(0, 2**31))
def test_mix_noise_hits_the_snr(snr, seed):
    rng = np.random.default_rng(seed)
    clip = (0.01 * rng.standard_normal(SR)).astype(np.float32)  # quiet, so the sum is never clipped
    noise = rng.standard_normal(3 * SR).astype(np.float32)
    out = mix_noise(clip, noise, snr_db=snr, rng=rng)
    added = out.astype(np.float64) - clip
    if np.max(np.abs(out)) < 1.0:
        measured = 10 * np.log10(np.mean(clip.astype(np.float64) ** 2) / np.mean(added ** 2))
        assert abs(measured - snr) < 1e-3


def test_mix_noise_silent_clip_is_unchanged():
    assert np.all(mix_noise(np.zeros(SR, np.float32), np.ones(SR), snr_db=10, offset=0) == 0)


def test_random_augment_is_seeded():
    clip, noise = tone(440, 1.0), np.random.default_rng(1).standard_normal(5 * SR).astype(np.float32)
    a = random_augment(clip, [noise], rng=np.random.default_rng(7))
    b = random_augment(clip, [noise], rng=np.random.default_rng(7))
    c = random_augment(clip, [noise], rng=np.random.default_rng(8))
    assert np.array_equal(a, b) and not np.array_equal(a, c) and a.shape == (SR,)
