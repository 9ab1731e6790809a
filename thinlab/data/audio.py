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
import warnings
from pathlib import Path

import numpy as np

from thinlab._io import atomic_file
from thinlab._validate import check_int, check_path, check_real

from ._io import ERRORS, AudioError, AudioWarning, DataError, DataTypeError

#: sample rate of every clip in the course (Hz)
SAMPLE_RATE = 16000
#: sample rates accepted, for the output (``sr=``) and in a file's header (Hz)
MIN_SR, MAX_SR = 1000, 768_000
#: longest clip ``load_audio`` pads or cuts to (seconds)
MAX_SECONDS = 3600.0
_RIFF = {b"RIFF": "<I", b"RIFX": ">I", b"RF64": "<I"}
_SR_HINT = "pass the sample rate in Hz as an int, e.g. sr=16000"


def _check_sr(sr, name: str = "sr") -> int:
    return check_int(sr, name=name, low=MIN_SR, high=MAX_SR, hint=_SR_HINT, errors=ERRORS)


def _as_signal(x, *, name: str, ndim=(1,)) -> np.ndarray:
    """``x`` as a finite float32 array with one of the allowed ``ndim`` (a copy only when needed)."""
    a = np.asarray(x)
    if a.dtype == object or not (np.issubdtype(a.dtype, np.floating) or np.issubdtype(a.dtype, np.integer)) \
            or a.dtype == bool:
        raise DataTypeError(f"{name} has dtype {a.dtype}; expected float audio samples in [-1, 1]; convert it with "
                            f"np.asarray({name}, dtype=np.float32)")
    if a.ndim not in ndim:
        want = " or ".join(f"{d}-D" for d in ndim)
        raise DataError(f"{name} has shape {a.shape}; expected a {want} array of samples"
                        + ("; pass one channel, e.g. x[:, 0] or x.mean(axis=1)" if 1 in ndim and a.ndim == 2 else ""))
    if a.size == 0:
        raise DataError(f"{name} is empty (shape {a.shape}); pass at least one sample")
    with np.errstate(over="ignore"):                     # overflow is reported below, as an error
        f = a.astype(np.float32, copy=False)
    if not np.isfinite(f).all():
        if np.issubdtype(a.dtype, np.floating) and np.isfinite(a).all():
            raise DataError(f"{name} has samples up to {float(np.abs(a).max()):.3g}, beyond float32's range; "
                            f"expected audio in [-1, 1]; scale it, e.g. {name} / np.abs({name}).max()")
        raise DataError(f"{name} contains {int(np.isnan(f).sum())} NaN and {int(np.isinf(f).sum())} inf samples; "
                        f"expected finite audio; replace them, e.g. np.nan_to_num({name})")
    return f


def check_wav_header(path) -> None:
    """Raise :class:`AudioError` unless ``path`` starts like a complete RIFF/WAVE file.

    Checks: not empty; RIFF (or RIFX / RF64) + WAVE magic; a ``data`` chunk whose declared size
    fits in the file (a shorter file was cut off, e.g. by an interrupted copy).

    Taught in: 00_speech_commands
    """
    path = Path(path)
    try:
        size = path.stat().st_size
        f = open(path, "rb")
    except OSError as exc:
        raise AudioError(f"{path} cannot be read ({exc.strerror or exc}); check that it exists and that you may "
                         f"read it (e.g. chmod a+r '{path}'), or remove it from the folder.") from exc
    with f:
        _check_header(path, f, size)


def _check_header(path: Path, f, size: int) -> None:
    if size == 0:
        raise AudioError(f"{path} is empty (0 bytes); expected a WAV clip. Delete it or copy it again.")
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
            if (csize == 0xFFFFFFFF or csize == 0) and have > 0:
                raise AudioError(f"{path} does not record how long its audio is (its data size is "
                                 f"{csize:#x}, as left by a recording that was cut off or streamed), so a "
                                 "truncated file cannot be told from a short one; re-save it with a complete "
                                 "header (e.g. soundfile or `ffmpeg -i in.wav out.wav`) or copy it again.")
            if csize > have:
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

    path = check_path(path, name="path", errors=ERRORS)
    sr = _check_sr(sr)
    if not path.is_file():
        what = "is a folder" if path.is_dir() else "does not exist"
        raise AudioError(f"{path} {what} (expected a WAV clip); check the folder or the list file that named it.")
    check_wav_header(path)
    try:
        data, file_sr = sf.read(str(path), dtype="float32", always_2d=True)  # (n, channels)
    except Exception as exc:  # libsndfile's own message says what it could not parse
        raise AudioError(f"{path} could not be read as WAV ({exc}); re-create it as 8/16/24-bit PCM or float "
                         "WAV.") from exc
    if data.shape[0] == 0:
        raise AudioError(f"{path} has no audio (0 samples); expected about 1 s at {sr} Hz. Remove it.")
    if not MIN_SR <= file_sr <= MAX_SR:
        raise AudioError(f"{path} says its sample rate is {file_sr} Hz; expected {MIN_SR}…{MAX_SR} Hz (Speech "
                         "Commands is 16000 Hz), so its header is probably wrong; re-create it with the real rate.")
    if not np.isfinite(data).all():
        raise AudioError(f"{path} contains NaN or infinite samples (a float WAV gone wrong); re-create it.")
    y = data.mean(axis=1)  # (n,) mono: average of the channels
    if data.shape[1] > 1:
        p_channels = float(np.mean(data.astype(np.float64) ** 2))
        if p_channels > 1e-8 and float(np.mean(y.astype(np.float64) ** 2)) < 0.01 * p_channels:
            warnings.warn(f"{path}: its {data.shape[1]} channels cancel out when averaged to mono (the mix is "
                          "20 dB quieter than the channels: out of phase?); the clip is nearly silent. Re-record "
                          "it, or keep one channel (soundfile.read(path)[0][:, 0]) and save that.", AudioWarning,
                          stacklevel=2)
    if file_sr != sr:
        import librosa

        y = librosa.resample(y, orig_sr=file_sr, target_sr=sr, res_type="soxr_hq")
    return np.clip(y, -1.0, 1.0).astype(np.float32, copy=False)


def fix_length(y: np.ndarray, n: int) -> np.ndarray:
    """Zero-pad at the end or keep the first ``n`` samples: shape (..., L) → (..., n).

    Taught in: 00_speech_commands
    """
    n = check_int(n, name="n", low=0, hint="pass the number of samples to keep", errors=ERRORS)
    y = np.asarray(y, dtype=np.float32)
    if y.ndim == 0:
        raise DataError("y is a scalar; expected samples of shape (..., L); pass an array of samples")
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
    m = re.fullmatch(r"start=(\d{1,12})&gain=(\d+(?:\.\d*)?)", frag)
    if m is None:
        raise AudioError(f"{text!r}: expected a WAV path or '<noise>.wav#start=<sample>&gain=<g>' (a silence window "
                         "from Dataset.files_*); check the name.")
    gain = float(m.group(2))
    if not 0.0 <= gain <= 1.0:
        raise AudioError(f"{text!r}: gain={gain:g} is outside [0, 1]; a silence window only attenuates its noise "
                         "(Dataset.files_* lists gains in [0, 1]); fix the gain.")
    return base, int(m.group(1)), gain


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
    sr = _check_sr(sr)
    seconds = check_real(seconds, name="seconds", low=0.0, high=MAX_SECONDS, low_open=True,
                         hint="pass the clip length in seconds, e.g. seconds=1.0", errors=ERRORS)
    n = int(round(sr * seconds))
    if n < 1:
        raise DataError(f"seconds={seconds:g} at sr={sr} is {sr * seconds:.3g} samples, less than one; pass "
                        f"seconds ≥ {1 / sr:.3g}")
    path = check_path(path, name="path", errors=ERRORS)
    window = parse_window(path)
    if window is not None:
        base, start, gain = window
        y = read_audio(base, sr=sr)
        if start >= y.shape[0]:
            raise AudioError(f"{str(path)!r}: start={start} is past the end of {base} ({y.shape[0]} samples at "
                             f"{sr} Hz); list a window inside the recording.")
        return fix_length(np.clip(y[start:start + n] * np.float32(gain), -1.0, 1.0), n)
    return fix_length(read_audio(path, sr=sr), n)


def write_wav(path, audio, *, sr: int = SAMPLE_RATE, subtype: str = "PCM_16") -> Path:
    """Write ``audio`` (float in [-1, 1], shape (n,) or (n, channels)) as a WAV file, atomically.

    Taught in: 00_speech_commands
    """
    import soundfile as sf

    path = check_path(path, name="path", errors=ERRORS)
    audio = _as_signal(audio, name="audio", ndim=(1, 2))
    sr = check_int(sr, name="sr", low=1, high=MAX_SR, hint=_SR_HINT, errors=ERRORS)
    if not isinstance(subtype, str) or subtype not in sf.available_subtypes("WAV"):
        raise DataError(f"subtype={subtype!r} is not a WAV subtype; use one of 'PCM_16', 'PCM_24', 'PCM_U8', 'FLOAT'")
    with atomic_file(path, "wb") as f:
        sf.write(f, np.clip(audio, -1, 1), sr, subtype=subtype, format="WAV")
    return path


def pcm16_wav_bytes(audio, *, sr: int = SAMPLE_RATE) -> bytes:
    """A complete mono 16-bit PCM WAV file holding ``audio`` (float in [-1, 1], shape (n,)).

    The 44-byte RIFF header written by hand: much faster than a library call per tiny file.

    Taught in: 00_speech_commands
    """
    audio = _as_signal(audio, name="audio")
    sr = check_int(sr, name="sr", low=1, high=MAX_SR, hint=_SR_HINT, errors=ERRORS)
    pcm = np.round(np.clip(audio, -1, 1) * 32767).astype("<i2").tobytes()
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
    clip = _as_signal(clip, name="clip")
    s = check_int(shift, name="shift", low=-(2 ** 62), hint="pass a whole number of samples", errors=ERRORS)
    out = np.zeros_like(clip)
    n = clip.shape[0]
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
    clip = _as_signal(clip, name="clip")
    noise = _as_signal(noise, name="noise")
    snr_db = check_real(snr_db, name="snr_db", low=-100.0, high=100.0, hint="pass the signal-to-noise ratio in "
                        "dB, e.g. snr_db=10.0", errors=ERRORS)
    if rng is not None and not isinstance(rng, np.random.Generator):
        raise DataTypeError(f"rng={rng!r} is not a numpy Generator; pass rng=np.random.default_rng(seed)")
    n = clip.shape[0]
    if noise.shape[0] < n:
        noise = np.tile(noise, -(-n // noise.shape[0]))  # (k·m,) ≥ n
    if offset is None:
        offset = int((rng or np.random.default_rng()).integers(0, noise.shape[0] - n + 1))
    offset = check_int(offset, name="offset", low=0, high=noise.shape[0] - n,
                       hint=f"the window of {n} samples must fit in the noise ({noise.shape[0]} samples after "
                            "tiling); pass a smaller offset or None for a random one", errors=ERRORS)
    window = noise[offset:offset + n]
    p_clip, p_noise = float(np.mean(clip.astype(np.float64) ** 2)), float(np.mean(window.astype(np.float64) ** 2))
    if p_clip == 0.0 or p_noise == 0.0:
        return np.clip(clip, -1.0, 1.0)
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
    if not isinstance(rng, np.random.Generator):
        raise DataTypeError(f"rng={rng!r} is not a numpy Generator; pass rng=np.random.default_rng(seed)")
    snr_db = check_snr_range(snr_db)
    max_shift_ms = check_real(max_shift_ms, name="max_shift_ms", low=0.0, high=1000.0 * MAX_SECONDS,
                              hint="pass the largest shift in milliseconds, e.g. 100.0", errors=ERRORS)
    p_noise = check_real(p_noise, name="p_noise", low=0.0, high=1.0, hint="pass the probability of adding "
                         "noise, e.g. 0.8", errors=ERRORS)
    sr = _check_sr(sr)
    if isinstance(noises, (str, bytes, np.ndarray)) or not hasattr(noises, "__len__"):
        raise DataTypeError(f"noises must be a list of 1-D noise recordings, got {type(noises).__name__}; "
                            "pass e.g. [read_audio(p) for p in noise_files] (or [] for none)")
    max_shift = int(round(sr * max_shift_ms / 1000.0))
    out = time_shift(clip, int(rng.integers(-max_shift, max_shift + 1)))
    if len(noises) and rng.random() < p_noise:
        noise = noises[int(rng.integers(len(noises)))]
        out = mix_noise(out, noise, snr_db=float(rng.uniform(*snr_db)), rng=rng)
    return out


def check_snr_range(snr_db) -> tuple:
    """``snr_db`` as a ``(low, high)`` pair of finite dB values with low ≤ high, or a clear error.

    Taught in: 00_speech_commands
    """
    if isinstance(snr_db, (str, bytes)) or not hasattr(snr_db, "__len__") or len(snr_db) != 2:
        raise DataTypeError(f"snr_db={snr_db!r} must be a (low, high) pair of dB values, e.g. snr_db=(5.0, 20.0)")
    lo, hi = (check_real(v, name="snr_db", low=-100.0, high=100.0, hint="e.g. snr_db=(5.0, 20.0)", errors=ERRORS)
              for v in snr_db)
    if lo > hi:
        raise DataError(f"snr_db={tuple(snr_db)!r} has low > high; pass (low, high), e.g. ({hi:g}, {lo:g})")
    return lo, hi
