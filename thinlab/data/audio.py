"""Reading clips the same way every time, and the two augmentations of the course.

Every clip becomes mono, 16 kHz, exactly 1 s, float32 in [-1, 1]: channels are averaged,
other sample rates resampled (``librosa.resample``, soxr), short clips zero-padded at the
end and long ones cut after the first second (as TensorFlow's ``decode_wav`` does). 8-, 16-
and 24-bit PCM and float WAVs are accepted; empty, truncated, non-WAV and zero-length files
raise :class:`AudioError` naming the file and what was wrong.

Taught in: 00_speech_commands
"""
from __future__ import annotations

import re
import struct
from pathlib import Path

import numpy as np

from thinlab._io import atomic_file

from ._io import AudioError

#: sample rate of every clip in the course (Hz)
SAMPLE_RATE = 16000
_RIFF = {b"RIFF": "<I", b"RIFX": ">I", b"RF64": "<I"}


def check_wav_header(path) -> None:
    """Raise :class:`AudioError` unless ``path`` starts like a complete RIFF/WAVE file.

    Checks: not empty; RIFF (or RIFX / RF64) + WAVE magic; a ``data`` chunk whose declared size
    fits in the file (a shorter file was cut off, e.g. by an interrupted copy).

    Taught in: 00_speech_commands
    """
    path = Path(path)
    size = path.stat().st_size
    if size == 0:
        raise AudioError(f"{path} is empty (0 bytes); expected a WAV clip. Delete it or copy it again.")
    with open(path, "rb") as f:
        head = f.read(12)
        magic = head[:4]
        if magic not in _RIFF or (len(head) == 12 and head[8:12] != b"WAVE"):
            raise AudioError(f"{path} is not a WAV file (starts with {head[:12]!r}, expected b'RIFF....WAVE'); "
                             "convert it to WAV (e.g. with ffmpeg or soundfile) or remove it from the folder.")
        if len(head) < 12:
            raise AudioError(f"{path} is truncated: {size} bytes, shorter than a WAV header (12); "
                             "copy or download it again.")
        if magic == b"RF64":  # 64-bit sizes live in a ds64 chunk; libsndfile checks those itself
            return
        pos = 12
        while pos + 8 <= size:
            f.seek(pos)
            cid, (csize,) = f.read(4), struct.unpack(_RIFF[magic], f.read(4))
            if cid == b"data":
                have = size - pos - 8
                if csize not in (0, 0xFFFFFFFF) and csize > have:
                    raise AudioError(f"{path} is truncated: its header promises {csize} bytes of audio but only "
                                     f"{have} are there; copy or download it again.")
                return
            pos += 8 + csize + (csize & 1)
    raise AudioError(f"{path} is truncated or malformed: no 'data' chunk in its {size} bytes; "
                     "copy or download it again.")


def read_audio(path, *, sr: int = SAMPLE_RATE) -> np.ndarray:
    """A whole WAV file as mono float32 at ``sr`` Hz (any length; no pad or crop).

    Parameters
    ----------
    path : str or Path
        A WAV file (8/16/24/32-bit PCM or float, any channel count and sample rate).
    sr : int
        Target sample rate.

    Returns
    -------
    np.ndarray, float32, shape (n_samples,)
        Values in [-1, 1].

    Taught in: 00_speech_commands
    """
    import soundfile as sf

    path = Path(path)
    if not path.is_file():
        raise AudioError(f"{path} does not exist (expected a WAV clip); check the folder or the list file "
                         "that named it.")
    check_wav_header(path)
    try:
        data, file_sr = sf.read(str(path), dtype="float32", always_2d=True)  # (n, channels)
    except Exception as exc:  # libsndfile's own message says what it could not parse
        raise AudioError(f"{path} could not be read as WAV ({exc}); re-create it as 8/16/24-bit PCM or float "
                         "WAV.") from exc
    if data.shape[0] == 0:
        raise AudioError(f"{path} has no audio (0 samples); expected about 1 s at {sr} Hz. Remove it.")
    if not np.isfinite(data).all():
        raise AudioError(f"{path} contains NaN or infinite samples (a float WAV gone wrong); re-create it.")
    y = data.mean(axis=1)  # (n,) mono: average of the channels
    if file_sr != sr:
        import librosa

        y = librosa.resample(y, orig_sr=file_sr, target_sr=sr, res_type="soxr_hq")
    return np.clip(y, -1.0, 1.0).astype(np.float32, copy=False)


def fix_length(y: np.ndarray, n: int) -> np.ndarray:
    """Zero-pad at the end or keep the first ``n`` samples: shape (..., L) → (..., n).

    Taught in: 00_speech_commands
    """
    y = np.asarray(y, dtype=np.float32)
    if y.shape[-1] >= n:
        return y[..., :n]
    pad = [(0, 0)] * (y.ndim - 1) + [(0, n - y.shape[-1])]
    return np.pad(y, pad)


def parse_window(path) -> tuple | None:
    """Split a silence-window entry ``"<noise>.wav#start=<sample>&gain=<g>"`` into
    ``(noise_path, start, gain)``; ``None`` for a plain path.

    Taught in: 00_speech_commands
    """
    text = str(path)
    if "#" not in Path(text).name:
        return None
    base, frag = text.rsplit("#", 1)
    m = re.fullmatch(r"start=(\d+)&gain=([0-9.]+)", frag)
    if m is None:
        raise AudioError(f"{text!r}: expected a WAV path or '<noise>.wav#start=<sample>&gain=<g>' (a silence window "
                         "from Dataset.files_*); check the name.")
    return base, int(m.group(1)), float(m.group(2))


def load_audio(path, *, sr: int = SAMPLE_RATE, seconds: float = 1.0) -> np.ndarray:
    """One clip, normalised: mono, ``sr`` Hz, exactly ``seconds`` long, float32 in [-1, 1].

    Parameters
    ----------
    path : str or Path
        A WAV file (8/16/24-bit PCM or float; any channels; any sample rate), or a silence window
        ``<noise>.wav#start=<sample>&gain=<g>`` as listed in ``Dataset.files_*`` (``start`` counts
        samples at ``sr``).
    sr : int
        Target sample rate (default 16 kHz).
    seconds : float
        Output duration; the clip is zero-padded at the end or cut after ``seconds``.

    Returns
    -------
    np.ndarray, float32, shape (round(sr * seconds),)
        ``(16000,)`` with the defaults.

    Raises
    ------
    AudioError
        For empty, truncated, non-WAV or zero-length files (the message names the file).

    Taught in: 00_speech_commands
    """
    n = int(round(sr * seconds))
    window = parse_window(path)
    if window is not None:
        base, start, gain = window
        return fix_length(read_audio(base, sr=sr)[start:start + n] * np.float32(gain), n)
    return fix_length(read_audio(path, sr=sr), n)


def write_wav(path, audio, *, sr: int = SAMPLE_RATE, subtype: str = "PCM_16") -> Path:
    """Write ``audio`` (float in [-1, 1], shape (n,) or (n, channels)) as a WAV file, atomically.

    Taught in: 00_speech_commands
    """
    import soundfile as sf

    with atomic_file(path, "wb") as f:
        sf.write(f, np.clip(np.asarray(audio, dtype=np.float32), -1, 1), sr, subtype=subtype, format="WAV")
    return Path(path)


def pcm16_wav_bytes(audio, *, sr: int = SAMPLE_RATE) -> bytes:
    """A complete mono 16-bit PCM WAV file holding ``audio`` (float in [-1, 1], shape (n,)).

    The 44-byte RIFF header written by hand: much faster than a library call per tiny file.

    Taught in: 00_speech_commands
    """
    pcm = np.round(np.clip(np.asarray(audio, dtype=np.float32), -1, 1) * 32767).astype("<i2").tobytes()
    header = struct.pack("<4sI4s4sIHHIIHH4sI", b"RIFF", 36 + len(pcm), b"WAVE", b"fmt ", 16, 1, 1, sr, 2 * sr, 2,
                         16, b"data", len(pcm))
    return header + pcm


def time_shift(clip: np.ndarray, shift: int) -> np.ndarray:
    """Move ``clip`` later by ``shift`` samples (earlier if negative), filling with zeros.

    Parameters
    ----------
    clip : np.ndarray, shape (n,)
    shift : int
        Samples; ``|shift| >= n`` gives all zeros.

    Returns
    -------
    np.ndarray, float32, shape (n,)

    Taught in: 00_speech_commands
    """
    clip = np.asarray(clip, dtype=np.float32)
    out = np.zeros_like(clip)
    n, s = clip.shape[0], int(shift)
    if abs(s) < n:
        if s >= 0:
            out[s:] = clip[:n - s]
        else:
            out[:n + s] = clip[-s:]
    return out


def mix_noise(clip: np.ndarray, noise: np.ndarray, *, snr_db: float, rng=None, offset: int | None = None
              ) -> np.ndarray:
    """Add a window of ``noise`` to ``clip`` so that the clip-to-noise power ratio is ``snr_db`` dB.

    SNR = 10·log10(mean(clip²) / mean(scaled_noise²)). The window starts at ``offset`` (random
    from ``rng`` when None; the noise is tiled when shorter than the clip). The sum is clipped
    to [-1, 1]. A silent clip (or silent noise) has no defined SNR and is returned unchanged.

    Parameters
    ----------
    clip : np.ndarray, shape (n,)
    noise : np.ndarray, shape (m,)
    snr_db : float
        Target signal-to-noise ratio in dB (lower = noisier).
    rng : np.random.Generator, optional
    offset : int, optional

    Returns
    -------
    np.ndarray, float32, shape (n,)

    Taught in: 00_speech_commands
    """
    clip = np.asarray(clip, dtype=np.float32)
    noise = np.asarray(noise, dtype=np.float32)
    n = clip.shape[0]
    if noise.size == 0:
        raise ValueError("noise is empty; expected a 1-D noise recording (e.g. from _background_noise_/)")
    if noise.shape[0] < n:
        noise = np.tile(noise, -(-n // noise.shape[0]))  # (k·m,) ≥ n
    if offset is None:
        offset = int((rng or np.random.default_rng()).integers(0, noise.shape[0] - n + 1))
    window = noise[offset:offset + n]
    p_clip, p_noise = float(np.mean(clip.astype(np.float64) ** 2)), float(np.mean(window.astype(np.float64) ** 2))
    if p_clip == 0.0 or p_noise == 0.0:
        return clip.copy()
    scale = np.sqrt(p_clip / (p_noise * 10.0 ** (snr_db / 10.0)))
    return np.clip(clip + scale * window, -1.0, 1.0).astype(np.float32)


def random_augment(clip: np.ndarray, noises, *, rng, snr_db=(5.0, 20.0), max_shift_ms: float = 100.0,
                   p_noise: float = 0.8, sr: int = SAMPLE_RATE) -> np.ndarray:
    """A random time shift in ±``max_shift_ms``, then (with probability ``p_noise``) one of
    ``noises`` mixed in at an SNR drawn uniformly from ``snr_db``; all draws from ``rng``.

    Parameters
    ----------
    clip : np.ndarray, shape (n,)
    noises : sequence of np.ndarray, each shape (m_i,)
        Background recordings; may be empty (then only the shift is applied).
    rng : np.random.Generator

    Returns
    -------
    np.ndarray, float32, shape (n,)

    Taught in: 00_speech_commands
    """
    max_shift = int(round(sr * max_shift_ms / 1000.0))
    out = time_shift(clip, int(rng.integers(-max_shift, max_shift + 1)))
    if len(noises) and rng.random() < p_noise:
        noise = noises[int(rng.integers(len(noises)))]
        out = mix_noise(out, noise, snr_db=float(rng.uniform(*snr_db)), rng=rng)
    return out
