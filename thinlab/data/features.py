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

import hashlib
import json
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from thinlab._io import atomic_file, cache_root

from ._io import DataError

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
        if self.kind not in KINDS:
            raise DataError(f"feature={self.kind!r} is unknown; use 'logmel' or 'mfcc'.")
        if not (0 < self.hop_length <= self.n_fft and self.n_mels > 0 and 0 < self.n_mfcc <= self.n_mels):
            raise DataError(f"feature parameters {asdict(self)} are inconsistent: need 0 < hop_length ≤ n_fft "
                            "and 0 < n_mfcc ≤ n_mels.")

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


def _mel_power(audio, p: FeatureParams) -> np.ndarray:
    import librosa

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

    audio = np.asarray(audio, dtype=np.float32)
    mel = _mel_power(audio, params)  # (..., n_mels, frames)
    if params.kind == "logmel":
        out = np.log(mel + params.log_offset)
    else:
        db = librosa.power_to_db(mel, ref=1.0, amin=1e-10, top_db=None)  # per element: batch-independent
        out = librosa.feature.mfcc(S=db, n_mfcc=params.n_mfcc)  # (..., n_mfcc, frames)
    return np.ascontiguousarray(np.swapaxes(out, -1, -2), dtype=np.float32)  # (..., frames, n_feat)


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
    return compute_features(audio, FeatureParams("logmel", sr, n_fft, hop_length, n_mels, min(13, n_mels), fmin,
                                                  fmax))


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
    text = json.dumps(key, sort_keys=True)
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
            else:
                return X, "cache"
        except Exception as exc:  # zip / CRC / header / missing member: never trust it
            warnings.warn(f"feature cache {path} is corrupt ({type(exc).__name__}: {exc}); recomputing and "
                          "overwriting it.", FeatureCacheWarning, stacklevel=3)
    X = compute()
    with atomic_file(path, "wb") as f:
        np.savez(f, X=X, key=np.frombuffer(text.encode("utf-8"), dtype=np.uint8))  # key as UTF-8 bytes
    return X, "computed"
