"""Accuracy you can trust on few speakers: intervals and paired verdicts that treat a speaker, not a
clip, as the unit of evidence.

Clips of one speaker are not independent: a model that fails on one voice fails on most of that
voice's clips. The binomial standard error √(p(1−p)/n) counts every clip as a fresh draw and so is
too small when a test set has few speakers (the real sample's test split: 86 clips, 7 speakers, one of
them with 45 clips). Here the **speaker** is resampled:

* :func:`accuracy_interval` — a cluster bootstrap over speakers: draw as many speakers as the set
  has, with replacement, keep all their clips, recompute the accuracy; the 2.5 % and 97.5 %
  quantiles of 2,000 such draws are the 95 % interval.
* :func:`paired_compare` — two models scored on the *same* clips: the same speaker draws are applied
  to both, so what the two share (hard voices, easy voices) cancels in their difference. A verdict
  says ``"better"`` / ``"worse"`` only when the 95 % interval of the difference excludes 0.

Clips without a speaker (``_silence_`` windows) are each their own cluster. Every function is
vectorised: the draws are one multinomial weight matrix (B, K) over the K speakers.

Taught in: 00_speech_commands
"""
from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass

import numpy as np

N_BOOT = 2000
LEVEL = 0.95


def _bool_or_fraction(correct, name: str) -> np.ndarray:
    c = np.asarray(correct)
    if c.ndim == 2:                                   # (seeds, clips): the mean over seeds per clip
        c = c.mean(axis=0)
    if c.ndim != 1 or c.size == 0:
        raise ValueError(f"{name}: expected per-clip correctness of shape (N,) or (seeds, N) with N ≥ 1, got "
                         f"shape {np.shape(correct)}; pass (model predictions == labels)")
    c = c.astype(np.float64)
    if not np.all(np.isfinite(c)) or c.min() < 0 or c.max() > 1:
        raise ValueError(f"{name}: per-clip correctness must lie in [0, 1] (booleans, or the mean over seeds); "
                         f"got values from {np.nanmin(c):.3g} to {np.nanmax(c):.3g}")
    return c


def _clusters(speakers, n: int) -> np.ndarray:
    """Cluster id per clip: one per distinct speaker, one per speaker-less clip."""
    if speakers is None:
        return np.arange(n)
    spk = np.asarray(speakers).astype(str)
    if spk.shape != (n,):
        raise ValueError(f"speakers has shape {spk.shape}, expected ({n},): one speaker id per scored clip "
                         "(ds.speakers_test for ds.X_test)")
    _, ids = np.unique(spk, return_inverse=True)
    lonely = spk == ""
    ids = ids.astype(np.int64)
    ids[lonely] = ids.max(initial=-1) + 1 + np.arange(int(lonely.sum()))
    return np.unique(ids, return_inverse=True)[1]


def _n_speakers(speakers, n: int) -> int:
    """Distinct named speakers (silence has none); ``n`` when no speakers are given (every clip its own)."""
    return int(len(set(np.asarray(speakers).astype(str)) - {""})) if speakers is not None else int(n)


def _weights(k: int, n_boot: int, seed: int) -> np.ndarray:
    """(n_boot, k) counts: how often each of k clusters is drawn in each bootstrap sample."""
    rng = np.random.default_rng(seed)
    return rng.multinomial(k, np.full(k, 1.0 / k), size=n_boot).astype(np.float64)


@dataclass(frozen=True)
class Interval:
    """An accuracy with its speaker-aware interval (``low``, ``high``) and bootstrap standard error. Taught in: 00_speech_commands … 06_pipeline"""

    accuracy: float
    low: float
    high: float
    se: float
    binomial_se: float
    n_clips: int
    n_speakers: int
    level: float = LEVEL

    @property
    def width(self) -> float:
        return self.high - self.low

    def text(self) -> str:
        """``0.733 (95% interval 0.62–0.84, 7 speakers, 86 clips)``."""
        return (f"{self.accuracy:.3f} ({self.level:.0%} interval {self.low:.3f}–{self.high:.3f}, "
                f"{self.n_speakers} speakers, {self.n_clips} clips)")

    def as_dict(self) -> dict:
        return dict(asdict(self), width=self.width)


def accuracy_interval(correct, speakers=None, *, n_boot: int = N_BOOT, level: float = LEVEL,
                      seed: int = 0) -> Interval:
    """Accuracy of per-clip ``correct`` (bool (N,), or (seeds, N)) with a cluster bootstrap over ``speakers``.

    Returns an :class:`Interval`; ``binomial_se`` is the naive √(p(1−p)/N) beside the bootstrap's ``se``,
    so a lesson can show how much the speakers widen it.

    Taught in: 00_speech_commands
    """
    c = _bool_or_fraction(correct, "correct")
    if not 0 < level < 1 or n_boot < 100:
        raise ValueError(f"level={level}, n_boot={n_boot}: expected 0 < level < 1 and n_boot ≥ 100")
    ids = _clusters(speakers, len(c))
    k = int(ids.max()) + 1
    s, m = np.bincount(ids, weights=c, minlength=k), np.bincount(ids, minlength=k).astype(np.float64)
    W = _weights(k, n_boot, seed)                                      # (B, K)
    boot = (W @ s) / np.maximum(W @ m, 1e-12)                          # (B,)
    a = (1 - level) / 2
    p = float(c.mean())
    return Interval(p, float(np.quantile(boot, a)), float(np.quantile(boot, 1 - a)), float(boot.std(ddof=1)),
                    float(np.sqrt(p * (1 - p) / len(c))), int(len(c)), _n_speakers(speakers, len(c)), level)


@dataclass(frozen=True)
class Comparison:
    """``a`` minus ``b`` on the same clips: the difference, its paired speaker-bootstrap interval, a verdict. Taught in: 00_speech_commands … 06_pipeline"""

    a: str
    b: str
    acc_a: float
    acc_b: float
    diff: float
    low: float
    high: float
    verdict: str               # "better" (a beats b), "worse", or "within noise"
    n_clips: int
    n_speakers: int
    level: float = LEVEL

    def bounds_text(self) -> str:
        """``-1.2 to +10.3`` (points). A bound that is not zero never prints as ``+0.0``: it gets the digits
        it needs, so a "better" verdict never sits beside an interval that reads as touching zero."""
        return f"{points_text(self.low)} to {points_text(self.high)}"

    def text(self) -> str:
        """``A 0.721 vs B 0.674: +4.7 points (95% interval −1.2 to +10.3): within noise``."""
        return (f"{self.a} {self.acc_a:.3f} vs {self.b} {self.acc_b:.3f}: {points_text(self.diff)} points "
                f"({self.level:.0%} paired interval over {self.n_speakers} speakers {self.bounds_text()}): "
                + {"better": f"{self.a} is better", "worse": f"{self.a} is worse",
                   "within noise": "within noise"}[self.verdict])

    def as_dict(self) -> dict:
        return asdict(self)


def points_text(fraction: float) -> str:
    """An accuracy difference in points with its sign, ``+4.7``; one decimal unless that would print a
    non-zero value as ``±0.0`` (then as many as it takes, up to 4).

    Taught in: 00_speech_commands
    """
    x = 100 * float(fraction)
    if abs(x) < 1e-6:                                    # rounding noise, not a difference a test set can make
        x = 0.0
    for places in range(1, 5):
        text = f"{x:+.{places}f}"
        if x == 0 or float(text) != 0:
            return text
    return text


def paired_compare(correct_a, correct_b, speakers=None, *, a: str = "A", b: str = "B", n_boot: int = N_BOOT,
                   level: float = LEVEL, seed: int = 0) -> Comparison:
    """Compare two models scored on the same clips with a paired bootstrap over speakers.

    ``correct_a`` and ``correct_b``: bool (N,) (or (seeds, N), averaged per clip) for the same N clips in
    the same order. The verdict is ``"better"`` when the whole interval of ``acc_a − acc_b`` is above 0,
    ``"worse"`` when it is below, else ``"within noise"``.

    Taught in: 00_speech_commands
    """
    ca, cb = _bool_or_fraction(correct_a, "correct_a"), _bool_or_fraction(correct_b, "correct_b")
    if ca.shape != cb.shape:
        raise ValueError(f"correct_a has {ca.size} clips and correct_b {cb.size}: a paired comparison needs both "
                         "models scored on the same clips in the same order")
    ids = _clusters(speakers, len(ca))
    k = int(ids.max()) + 1
    per_clip = ca - cb                                   # (N,); seed-averaged fractions carry rounding noise
    per_clip[np.abs(per_clip) < 1e-9] = 0.0              # equal per-clip scores are a tie, not a 1e-17 lead
    d = np.bincount(ids, weights=per_clip, minlength=k)
    m = np.bincount(ids, minlength=k).astype(np.float64)
    W = _weights(k, n_boot, seed)
    boot = (W @ d) / np.maximum(W @ m, 1e-12)
    boot[np.abs(boot) < 1e-9] = 0.0                      # a resample whose clips tie is 0, not ±1e-17
    q = (1 - level) / 2
    lo, hi = float(np.quantile(boot, q)), float(np.quantile(boot, 1 - q))
    verdict = "better" if lo > 0 else "worse" if hi < 0 else "within noise"
    diff = float(per_clip.mean())
    diff = 0.0 if abs(diff) < 1e-12 else diff
    return Comparison(a, b, float(ca.mean()), float(cb.mean()), diff, lo, hi, verdict,
                      int(len(ca)), _n_speakers(speakers, len(ca)), level)


def correct(model, X, y, *, device=None) -> np.ndarray:
    """Per-clip correctness (bool (N,)) of ``model`` on ``(X, y)``: what the functions above take.

    Taught in: 00_speech_commands
    """
    from thinlab import train

    return train.predict(model, X, device=device) == np.asarray(y)


def eval_record(files, speakers) -> dict:
    """Which clips a lesson scored: count, distinct speakers, and a hash of the sorted file list, so two
    lessons' JSON can show they report on the same clips.

    Taught in: 00_speech_commands
    """
    files = sorted(np.asarray(files).astype(str).tolist())
    spk = np.asarray(speakers).astype(str)
    digest = hashlib.sha256("\n".join(files).encode()).hexdigest()[:16]
    counts = np.unique(spk[spk != ""], return_counts=True)[1]
    return {"n_clips": len(files), "n_speakers": int(len(counts)), "files_sha256": digest,
            "largest_speaker_share": float(counts.max() / len(files)) if len(counts) else 0.0}
