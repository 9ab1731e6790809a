"""Log-mel and MFCC features (librosa), and an on-disk cache that is never trusted blindly.

Defaults suit keyword spotting: 16 kHz, 30 ms windows (``n_fft=480``), 10 ms hop (160),
40 mel bands from 20 Hz to 8 kHz, ``center=True`` → 101 frames per 1-s clip. The log-mel is
``log(mel power + 1e-6)``, raw (models normalise); MFCC is the orthonormal DCT-II of the mel
power in dB (13 coefficients). Computed for many clips at once (librosa broadcasts over
leading axes), in chunks to bound memory.

The cache file is named by a hash of its key (every feature parameter + every clip's path,
size and mtime + augmentation settings) and stores the key itself. A file that cannot be read,
or whose stored key differs from the requested one, is reported (``FeatureCacheWarning``),
recomputed and atomically overwritten.

Taught in: 00_speech_commands
"""
from __future__ import annotations

import functools
import hashlib
import json
import warnings
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np

from thinlab._io import atomic_file, cache_root
from thinlab._validate import _is_int, check_int, check_real

from ._io import ERRORS, DataError, DataTypeError

KINDS = ("logmel", "mfcc")


class FeatureCacheWarning(UserWarning):
    """A feature cache file was corrupt or made for other parameters; it is being recomputed."""


@dataclass(frozen=True)
class FeatureParams:
    """Everything that changes the features. ``n_features`` is ``n_mels`` or ``n_mfcc``."""

    kind: str = "logmel"
    sr: int = 16000
    n_fft: int = 480
    hop_length: int = 160
    n_mels: int = 40
    n_mfcc: int = 13
    fmin: float = 20.0
    fmax: float | None = None
    log_offset: float = 1e-6

    def __post_init__(self):
        if not isinstance(self.kind, str) or self.kind not in KINDS:
            raise (DataError if isinstance(self.kind, str) else DataTypeError)(
                f"feature={self.kind!r} is unknown; use 'logmel' or 'mfcc'.")
        sr = check_int(self.sr, name="sr", low=1000, high=768_000, hint="pass the clips' sample rate, e.g. 16000",
                       errors=ERRORS)
        n_fft = check_int(self.n_fft, name="n_fft", low=8, high=1 << 16,
                          hint="pass the window length in samples, e.g. 480 (30 ms at 16 kHz)", errors=ERRORS)
        for name, value, high in (("hop_length", self.hop_length, n_fft), ("n_mels", self.n_mels, 1024),
                                  ("n_mfcc", self.n_mfcc, 1024)):
            check_int(value, name=name, low=1, high=high, errors=ERRORS,
                      hint="hop_length ≤ n_fft (e.g. 160), n_mels e.g. 40, n_mfcc e.g. 13")
        if not 0 < self.n_mfcc <= self.n_mels:
            raise DataError(f"feature parameters {asdict(self)} are inconsistent: need 0 < hop_length ≤ n_fft "
                            f"and 0 < n_mfcc ≤ n_mels; use n_mfcc ≤ {self.n_mels} or more n_mels.")
        nyquist = sr / 2
        fmin = check_real(self.fmin, name="fmin", low=0.0, high=nyquist, high_open=True, errors=ERRORS,
                          hint=f"the lowest mel frequency in Hz must lie below sr/2 = {nyquist:g}, e.g. 20.0")
        if self.fmax is not None:
            fmax = check_real(self.fmax, name="fmax", low=0.0, high=nyquist, low_open=True, errors=ERRORS,
                              hint=f"the highest mel frequency in Hz may be at most sr/2 = {nyquist:g}; "
                                   "or None for sr/2")
            if fmin >= fmax:
                raise DataError(f"fmin={fmin:g} ≥ fmax={fmax:g}: the mel bands need fmin < fmax ≤ sr/2 = "
                                f"{nyquist:g}; swap them or pass fmax=None (sr/2).")
        check_real(self.log_offset, name="log_offset", low=0.0, low_open=True, errors=ERRORS,
                   hint="log(mel + log_offset) needs log_offset > 0 (0 gives -inf for silence), e.g. 1e-6")

    @classmethod
    def from_options(cls, kind="logmel", options=None) -> "FeatureParams":
        """``FeatureParams(kind, **options)`` with the options checked: a dict of known names.

        Taught in: 00_speech_commands
        """
        if options is None:
            options = {}
        if not isinstance(options, dict):
            raise DataTypeError(f"feature_params={options!r} ({type(options).__name__}) must be a dict such as "
                                "{'n_mels': 64}")
        known = [f.name for f in fields(cls) if f.name != "kind"]
        unknown = sorted(set(options) - set(known), key=str)
        if unknown:
            hint = " (pass the kind as feature=...)" if "kind" in unknown else ""
            raise DataError(f"feature_params has unknown options {unknown}{hint}; use some of {known}.")
        return cls(kind, **options)

    @property
    def n_features(self) -> int:
        """Features per frame: ``n_mels`` for log-mel, ``n_mfcc`` for MFCC.

        Taught in: 00_speech_commands
        """
        return self.n_mels if self.kind == "logmel" else self.n_mfcc

    def n_frames(self, n_samples: int = 16000) -> int:
        """Frames for a clip of ``n_samples`` (``center=True``): 1 + n_samples // hop_length.

        Taught in: 00_speech_commands
        """
        return 1 + n_samples // self.hop_length


@functools.lru_cache(maxsize=32)
def _check_mel_bank(p: FeatureParams) -> None:
    """Every mel band must cover at least one FFT bin, or its feature is a constant (often -inf dB)."""
    import librosa

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # librosa's own "empty filters" warning: we raise instead
        bank = librosa.filters.mel(sr=p.sr, n_fft=p.n_fft, n_mels=p.n_mels, fmin=p.fmin, fmax=p.fmax)
    empty = np.flatnonzero(bank.max(axis=1) <= 0)
    if empty.size:
        raise DataError(f"n_mels={p.n_mels} mel bands between fmin={p.fmin:g} and fmax={p.fmax or p.sr / 2:g} Hz "
                        f"are too narrow for n_fft={p.n_fft} ({p.sr / p.n_fft:.1f} Hz per FFT bin): {empty.size} "
                        "bands are empty; use fewer n_mels, a wider fmin…fmax, or a larger n_fft.")


def _mel_power(audio, p: FeatureParams) -> np.ndarray:
    import librosa

    _check_mel_bank(p)
    return librosa.feature.melspectrogram(y=audio, sr=p.sr, n_fft=p.n_fft, hop_length=p.hop_length,
                                          win_length=p.n_fft, window="hann", center=True, power=2.0,
                                          n_mels=p.n_mels, fmin=p.fmin, fmax=p.fmax)  # (..., n_mels, frames)


def compute_features(audio, params: FeatureParams = FeatureParams()) -> np.ndarray:
    """Features of one clip or a batch.

    Parameters
    ----------
    audio : np.ndarray, float32, shape (n_samples,) or (N, n_samples)
    params : FeatureParams

    Returns
    -------
    np.ndarray, float32, shape (frames, n_features) or (N, frames, n_features)
        (101, 40) per 1-s clip with the log-mel defaults, (101, 13) for MFCC.

    Taught in: 00_speech_commands
    """
    import librosa

    if not isinstance(params, FeatureParams):
        raise DataTypeError(f"params={params!r} is not a FeatureParams; pass FeatureParams('logmel', ...) or use "
                            "logmel(audio, ...) / mfcc(audio, ...)")
    audio = _check_audio(audio, params)
    mel = _mel_power(audio, params)  # (..., n_mels, frames)
    if params.kind == "logmel":
        out = np.log(mel + params.log_offset)
    else:
        db = librosa.power_to_db(mel, ref=1.0, amin=1e-10, top_db=None)  # per element: batch-independent
        out = librosa.feature.mfcc(S=db, n_mfcc=params.n_mfcc)  # (..., n_mfcc, frames)
    out = np.ascontiguousarray(np.swapaxes(out, -1, -2), dtype=np.float32)  # (..., frames, n_feat)
    if not np.isfinite(out).all():  # never returned (or cached): the checks above should make this impossible
        raise DataError(f"{params.kind} features came out non-finite for {params}; report this with the clip, and "
                        "meanwhile raise log_offset or check the audio.")
    return out


def _check_audio(audio, params: FeatureParams) -> np.ndarray:
    a = np.asarray(audio)
    if a.dtype == bool or not (np.issubdtype(a.dtype, np.floating) or np.issubdtype(a.dtype, np.integer)):
        raise DataTypeError(f"audio has dtype {a.dtype}; expected float samples in [-1, 1]; convert it with "
                            "np.asarray(audio, dtype=np.float32)")
    if a.ndim not in (1, 2):
        raise DataError(f"audio has shape {a.shape}; expected one clip (n_samples,) or a batch (N, n_samples); "
                        "stack clips with np.stack(clips)")
    if a.size == 0:
        raise DataError(f"audio has shape {a.shape} with no samples; pass at least one clip of ≥ {params.n_fft} "
                        "samples")
    if a.shape[-1] < params.n_fft:
        raise DataError(f"audio has {a.shape[-1]} samples per clip, fewer than one analysis window (n_fft="
                        f"{params.n_fft}); pad it to the clip length with thinlab.data.audio.fix_length, or use a "
                        "smaller n_fft")
    if a.dtype.kind == "f" and not np.isfinite(a).all():
        raise DataError(f"audio contains {int(np.isnan(a).sum())} NaN and {int(np.isinf(a).sum())} inf samples; "
                        "expected finite audio; replace them, e.g. np.nan_to_num(audio)")
    top = float(np.abs(a).max())
    if top > 2.0 ** 31:  # beyond any PCM scale: the spectrum's power would overflow float32
        raise DataError(f"audio holds samples up to {top:.3g}; expected float samples in [-1, 1]; divide PCM integers "
                        "by their full scale (e.g. x / 32768 for int16)")
    return a.astype(np.float32, copy=False)


def logmel(audio, *, sr: int = 16000, n_fft: int = 480, hop_length: int = 160, n_mels: int = 40,
           fmin: float = 20.0, fmax: float | None = None) -> np.ndarray:
    """Log-mel spectrogram ``log(mel power + 1e-6)``.

    Parameters
    ----------
    audio : np.ndarray, shape (n_samples,) or (N, n_samples)

    Returns
    -------
    np.ndarray, float32, shape (frames, n_mels) or (N, frames, n_mels); (101, 40) per 1-s clip

    Taught in: 00_speech_commands
    """
    n_mfcc = min(13, n_mels) if _is_int(n_mels) and n_mels > 0 else 1  # unused by log-mel; n_mels is checked
    return compute_features(audio, FeatureParams("logmel", sr, n_fft, hop_length, n_mels, n_mfcc, fmin, fmax))


def mfcc(audio, *, n_mfcc: int = 13, sr: int = 16000, n_fft: int = 480, hop_length: int = 160,
         n_mels: int = 40, fmin: float = 20.0, fmax: float | None = None) -> np.ndarray:
    """MFCCs: orthonormal DCT-II of the mel power in dB, first ``n_mfcc`` coefficients.

    Parameters
    ----------
    audio : np.ndarray, shape (n_samples,) or (N, n_samples)

    Returns
    -------
    np.ndarray, float32, shape (frames, n_mfcc) or (N, frames, n_mfcc); (101, 13) per 1-s clip

    Taught in: 00_speech_commands
    """
    return compute_features(audio, FeatureParams("mfcc", sr, n_fft, hop_length, n_mels, n_mfcc, fmin, fmax))


def feature_cache_path(key: dict) -> Path:
    """Where the features for ``key`` are cached: ``<cache>/features/<sha256 of key>.npz``.

    Taught in: 00_speech_commands
    """
    text = json.dumps(key, sort_keys=True)
    return cache_root() / "features" / f"{hashlib.sha256(text.encode()).hexdigest()[:24]}.npz"


def cached(key: dict, compute, *, n_rows: int, use_cache: bool = True) -> tuple:
    """``compute()`` once per ``key``: load the cached array when its stored key matches exactly.

    Parameters
    ----------
    key : dict
        JSON-able; everything the result depends on.
    compute : callable () -> np.ndarray, shape (n_rows, ...)
    n_rows : int
        Rows the result must have (a cached array of another length is not trusted).
    use_cache : bool
        False: always compute, never read or write the cache.

    Returns
    -------
    array : np.ndarray
    status : str
        ``"cache"`` or ``"computed"``.

    Taught in: 00_speech_commands
    """
    if not use_cache:
        return compute(), "computed"
    text = json.dumps(key, sort_keys=True, allow_nan=False)
    path = feature_cache_path(key)
    if path.exists():
        try:
            with np.load(path, allow_pickle=False) as z:
                stored, X = z["key"].tobytes().decode("utf-8"), z["X"]
            if stored != text:
                warnings.warn(f"feature cache {path} was made for other parameters or files (its stored key differs "
                              "from the requested one); recomputing and overwriting it.", FeatureCacheWarning,
                              stacklevel=3)
            elif X.shape[0] != n_rows:
                warnings.warn(f"feature cache {path} holds {X.shape[0]} rows, expected {n_rows}; recomputing.",
                              FeatureCacheWarning, stacklevel=3)
            elif X.dtype != np.float32 or not np.isfinite(X).all():
                warnings.warn(f"feature cache {path} holds {X.dtype} values with NaN or inf (not features thinlab "
                              "writes); recomputing and overwriting it.", FeatureCacheWarning, stacklevel=3)
            else:
                return X, "cache"
        except Exception as exc:  # zip / CRC / header / missing member: never trust it
            warnings.warn(f"feature cache {path} is corrupt ({type(exc).__name__}: {exc}); recomputing and "
                          "overwriting it.", FeatureCacheWarning, stacklevel=3)
    X = compute()
    if not np.isfinite(X).all():  # a cache never keeps what would poison every later run
        raise DataError(f"the computed features hold NaN or inf values, so they were not cached at {path}; check the "
                        "feature parameters (log_offset > 0, fmin < fmax) and the clips.")
    with atomic_file(path, "wb") as f:
        np.savez(f, X=X, key=np.frombuffer(text.encode("utf-8"), dtype=np.uint8))  # key as UTF-8 bytes
    return X, "computed"
