"""An offline spoken-keyword set: espeak-ng voices in the Speech Commands layout.

A "speaker" is one combination of English voice × variant × pitch × rate, drawn from a grid
of 8 accents × 17 variants × 6 pitches × 5 rates (4,080 combinations) without replacement;
its id is the first 8 hex digits of the SHA-1 of the combination, so the same voice keeps its
id across seeds. Each speaker says every word once, in a fresh seeded espeak-ng session; each
word is trimmed, resampled to 16 kHz, scaled to a random peak, placed at a random offset in
1 s, and mixed with a random stretch of one of the synthesized background recordings (white,
pink, brown, mains hum, babble; also written to ``_background_noise_/``) at 5-20 dB SNR, so the
task is not trivially clean. Same seed and parameters → same bytes. Written to a
temporary folder and renamed into place.

Taught in: 00_speech_commands
"""
from __future__ import annotations

import hashlib
import itertools
import json
import shutil
import time
from pathlib import Path

import numpy as np

from thinlab._io import cache_root, temp_dir_beside
from thinlab._validate import _is_int, check_bool, check_int, check_names, check_path, check_real

from ._io import ERRORS, DataError, DataTypeError, check_replaceable, read_marker, swap_into_place
from .audio import SAMPLE_RATE, mix_noise, pcm16_wav_bytes
from .espeak import ENGLISH_VOICES, Session
from .layout import BACKGROUND, WORDS10

UNKNOWN_WORDS = ("bed", "bird", "cat", "dog", "house", "tree")
VARIANTS = ("m1", "m2", "m3", "m4", "m5", "m6", "m7", "f1", "f2", "f3", "f4", "f5", "klatt", "klatt2", "klatt3",
            "croak", "whisper")
PITCHES = (25, 35, 45, 55, 65, 75)
RATES = (130, 150, 170, 190, 210)
_BABBLE = ("the", "weather", "people", "morning", "number", "after", "water", "table", "little", "open")
SYNTH_VERSION = 2  # 2: each clip mixed with a background recording at 5-20 dB SNR


def speaker_grid() -> list:
    """Every (voice, pitch, rate) combination a synthetic speaker can be; voice is ``"en-us+f2"``-style.

    Returns
    -------
    list of tuple (str, int, int), length 8 × 17 × 6 × 5 = 4080

    Taught in: 00_speech_commands
    """
    return [(f"{v}+{var}", p, r) for v, var, p, r in itertools.product(ENGLISH_VOICES, VARIANTS, PITCHES, RATES)]


def speaker_id(voice: str, pitch: int, rate: int) -> str:
    """The 8-hex-digit id of a synthetic speaker (like the real set's ``3b4f8f24``).

    Taught in: 00_speech_commands
    """
    return hashlib.sha1(f"{voice}|pitch={pitch}|rate={rate}".encode()).hexdigest()[:8]


def synth_params(*, n_speakers: int = 160, words=None, seed: int = 0, background_seconds: float = 30.0) -> dict:
    """The parameters that define a synthetic set (they name its cache folder).

    Taught in: 00_speech_commands
    """
    words = list(WORDS10 + UNKNOWN_WORDS) if words is None else \
        check_names(words, name="words", example=["yes", "no"], errors=ERRORS, allow_empty=True)
    n_grid = len(ENGLISH_VOICES) * len(VARIANTS) * len(PITCHES) * len(RATES)
    if not _is_int(n_speakers):
        raise DataTypeError(f"n_speakers={n_speakers!r} must be an integer, not a {type(n_speakers).__name__}; "
                            "pass e.g. n_speakers=160")
    if not 3 <= int(n_speakers) <= n_grid:
        raise DataError(f"n_speakers={n_speakers}: expected 3 … {n_grid} synthetic speakers "
                        "(at least 3 so a speaker-disjoint split exists).")
    bad = [w for w in words if not w.isalpha() or w.startswith("_")]
    if bad or not words:
        raise DataError(f"words={words}: expected plain words such as 'yes' (got {bad or 'none'}).")
    seed = check_int(seed, name="seed", low=0, high=2**32 - 1, hint="pass a whole number ≥ 0, e.g. seed=0",
                     errors=ERRORS)
    background_seconds = check_real(background_seconds, name="background_seconds", low=2.0, high=600.0,
                                    hint="pass the length of each noise recording in seconds, e.g. 30.0",
                                    errors=ERRORS)
    return {"version": SYNTH_VERSION, "n_speakers": int(n_speakers), "words": words, "seed": seed,
            "background_seconds": background_seconds, "sample_rate": SAMPLE_RATE}


def synthetic_dir(**params) -> Path:
    """``<cache>/synthetic-<hash of params>/`` for :func:`synth_params` ``(**params)``.

    Taught in: 00_speech_commands
    """
    p = synth_params(**params)
    return cache_root() / f"synthetic-{hashlib.sha256(json.dumps(p, sort_keys=True).encode()).hexdigest()[:12]}"


def _resample(y, sr_in):
    """soxr directly (the resampler behind librosa.resample), skipping librosa's slow first import."""
    try:
        import soxr
    except ImportError:  # pragma: no cover - soxr comes with librosa
        import librosa

        return librosa.resample(y, orig_sr=sr_in, target_sr=SAMPLE_RATE, res_type="soxr_hq")
    return soxr.resample(y, sr_in, SAMPLE_RATE, quality="HQ").astype(np.float32)


def render_clip(samples: np.ndarray, sr_in: int, rng, noises=None, snr_db=(5.0, 20.0)) -> np.ndarray:
    """Turn raw espeak int16 speech into a 1-s, 16 kHz clip: trim, resample, random gain,
    random offset, then background noise at a random SNR (faint white noise if ``noises`` is None).

    Parameters
    ----------
    samples : np.ndarray, int16, shape (n,)
    sr_in : int
    rng : np.random.Generator
    noises : sequence of float32 arrays, optional
        Background recordings; a random 1-s stretch of one is mixed in at ``snr_db``.
    snr_db : (low, high)
        Range of the speech-to-noise ratio in dB.

    Returns
    -------
    np.ndarray, float32, shape (16000,)

    Taught in: 00_speech_commands
    """
    y = samples.astype(np.float32) / 32768.0
    loud = np.flatnonzero(np.abs(y) > 0.02 * (np.abs(y).max() + 1e-12))
    if loud.size == 0:
        raise DataError("espeak-ng produced silence; check the voice and the text.")
    y = _resample(y[loud[0]:loud[-1] + 1], sr_in)[:SAMPLE_RATE - 800]  # keep ≥ 50 ms of room
    y = y * (rng.uniform(0.3, 0.9) / (np.abs(y).max() + 1e-12))
    out = np.zeros(SAMPLE_RATE, np.float32)
    start = int(rng.integers(0, SAMPLE_RATE - y.shape[0] + 1))
    out[start:start + y.shape[0]] = y
    if noises:
        noise = noises[int(rng.integers(len(noises)))]
        return mix_noise(out, noise, snr_db=float(rng.uniform(*snr_db)), rng=rng)
    rms = float(np.sqrt(np.mean(y ** 2)))
    noise_rms = rms * 10 ** (-rng.uniform(25, 40) / 20)  # 25-40 dB below the speech
    out += rng.standard_normal(SAMPLE_RATE, dtype=np.float32) * np.float32(noise_rms)
    return np.clip(out, -1, 1)


def _shaped_noise(n, rng, exponent):
    """Noise with power ∝ 1/f**exponent (0 white, 1 pink, 2 brown), shape (n,), peak 0.5."""
    spec = np.fft.rfft(rng.standard_normal(n))
    f = np.fft.rfftfreq(n, 1.0 / SAMPLE_RATE)
    f[0] = f[1]
    y = np.fft.irfft(spec / f ** (exponent / 2.0), n)
    return (0.5 * y / np.abs(y).max()).astype(np.float32)


def background_noises(seconds: float, rng) -> dict:
    """Synthetic noise recordings at 16 kHz: name → float32 array of shape (seconds·16000,).

    Taught in: 00_speech_commands
    """
    n = int(seconds * SAMPLE_RATE)
    t = np.arange(n) / SAMPLE_RATE
    hum = sum(np.sin(2 * np.pi * 50 * k * t + rng.uniform(0, 2 * np.pi)) / k ** 1.5 for k in range(1, 8))
    hum = hum + 0.05 * rng.standard_normal(n)
    babble = np.zeros(n, np.float32)
    grid = speaker_grid()
    with Session(seed=int(rng.integers(2**31))) as session:
        for _ in range(int(seconds * 4)):  # ~4 words a second from random voices
            voice, pitch, rate = grid[int(rng.integers(len(grid)))]
            s = session.speak(str(rng.choice(_BABBLE)), voice=voice, pitch=pitch, rate=rate)
            y = _resample(s.astype(np.float32) / 32768.0, session.sample_rate)[: n // 2]
            at = int(rng.integers(0, n - y.shape[0]))
            babble[at:at + y.shape[0]] += y * rng.uniform(0.2, 0.6)
    out = {"white_noise": _shaped_noise(n, rng, 0), "pink_noise": _shaped_noise(n, rng, 1),
           "brown_noise": _shaped_noise(n, rng, 2), "mains_hum": hum, "babble": babble}
    return {k: (0.5 * v / (np.abs(v).max() + 1e-12)).astype(np.float32) for k, v in out.items()}


def synthesize(dest=None, *, n_speakers: int = 160, words=None, seed: int = 0, background_seconds: float = 30.0,
               progress: bool = True, verbose: bool = True, force: bool = False) -> Path:
    """Generate (or reuse) a synthetic spoken-keyword set in the Speech Commands layout.

    Parameters
    ----------
    dest : str or Path, optional
        Target folder; default :func:`synthetic_dir` for these parameters.
    n_speakers : int
        Synthetic speakers; each says every word once (clips = n_speakers × len(words)).
    words : sequence of str, optional
        Default: the ten keywords + ``UNKNOWN_WORDS`` (for the 12-class task).
    seed : int
        Chooses the speakers, offsets, gains and noise; same seed → same files.
    background_seconds : float
        Length of each synthesized background recording.
    force : bool
        Rebuild even if a complete folder with the same parameters exists.

    Returns
    -------
    Path
        The folder; its ``.thinlab-complete.json`` records the parameters and the seconds taken.

    Taught in: 00_speech_commands
    """
    from thinlab._progress import progress as tqdm  # text bars when headless

    params = synth_params(n_speakers=n_speakers, words=words, seed=seed, background_seconds=background_seconds)
    progress, verbose, force = (check_bool(v, name=k, errors=ERRORS) for k, v in
                                (("progress", progress), ("verbose", verbose), ("force", force)))
    dest = check_path(dest, name="dest", errors=ERRORS) if dest is not None else synthetic_dir(n_speakers=n_speakers, words=words, seed=seed,
                                                               background_seconds=background_seconds)
    marker = read_marker(dest)
    if not force and marker and marker.get("params") == params:
        if verbose:
            print(f"synthetic set: reusing {dest} ({marker['n_clips']:,} clips)")
        return dest
    check_replaceable(dest)
    t0 = time.perf_counter()
    rng = np.random.default_rng(seed)
    grid = speaker_grid()
    chosen = [grid[i] for i in sorted(rng.choice(len(grid), size=params["n_speakers"], replace=False))]
    tmp = temp_dir_beside(dest)
    try:
        noises = background_noises(background_seconds, np.random.default_rng([seed, 10**6]))
        for w in params["words"]:
            (tmp / w).mkdir()
        for k, (voice, pitch, rate) in enumerate(tqdm(chosen, desc="synthesize", unit="speaker",
                                                      disable=not progress)):
            spk = speaker_id(voice, pitch, rate)
            with Session(seed=seed * 100_003 + k) as session:  # a fresh, seeded espeak-ng per speaker
                for j, w in enumerate(params["words"]):
                    samples = session.speak(w, voice=voice, pitch=pitch, rate=rate)
                    clip = render_clip(samples, session.sample_rate, np.random.default_rng([seed, k, j]),
                                       noises=list(noises.values()))
                    (tmp / w / f"{spk}_nohash_0.wav").write_bytes(pcm16_wav_bytes(clip))
        (tmp / BACKGROUND).mkdir()
        for name, y in noises.items():
            (tmp / BACKGROUND / f"{name}.wav").write_bytes(pcm16_wav_bytes(y))
        seconds = time.perf_counter() - t0
        n_clips = len(chosen) * len(params["words"])
        swap_into_place(tmp, dest, {"kind": "synthetic", "params": params, "n_clips": n_clips,
                                    "seconds": round(seconds, 2)})
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    if verbose:
        print(f"synthetic set: {n_clips:,} clips ({len(chosen)} speakers × {len(params['words'])} words) "
              f"in {seconds:.1f} s → {dest}")
    return dest

