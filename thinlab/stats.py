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
import math
from dataclasses import asdict, dataclass
from fractions import Fraction

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
        return (f"{self.accuracy:.3f} ({level_text(self.level)} interval {self.low:.3f}–{self.high:.3f}, "
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
                f"({level_text(self.level)} paired interval over {self.n_speakers} speakers {self.bounds_text()}): "
                + {"better": f"{self.a} is better", "worse": f"{self.a} is worse",
                   "within noise": "within noise"}[self.verdict])

    def as_dict(self) -> dict:
        return asdict(self)


def level_text(level: float) -> str:
    """A confidence level as a percentage: ``0.95`` → ``"95%"``, ``0.9`` → ``"90%"``, ``0.975`` → ``"97.5%"``.

    Taught in: 00_speech_commands
    """
    return f"{100 * float(level):.10g}%"


def points_text(fraction: float) -> str:
    """An accuracy difference in points with its sign, ``+4.7``; one decimal unless that would print a
    non-zero value as ``±0.0`` (then as many as it takes to show its first significant digit). Only an
    exact zero prints as ``+0.0``: :func:`paired_compare` computes ties exactly, so no rounding noise
    reaches here to be hidden.

    Taught in: 00_speech_commands
    """
    x = 100 * float(fraction)
    if x == 0:
        x = 0.0                                          # -0.0 is a tie too: "+0.0", never "-0.0"
    places, text = 1, f"{x:+.1f}"
    while math.isfinite(x) and x != 0 and float(text) == 0:
        places += 1
        text = f"{x:+.{places}f}"
    return text


# Recognising per-clip fractions k/n (seed-averaged hits passed as floats) as exact rationals: the
# largest n tried, and how far the float may sit from k/n. Means over seeds are within a few ulps
# (~1e-16) of k/n, while two fractions with n ≤ MAX_DENOMINATOR lie at least 1/MAX_DENOMINATOR² = 1e-8
# apart, so 1e-12 tells them apart without ambiguity. This is a tolerance on *reading* the input, not on
# ties: everything after it is integer arithmetic.
MAX_DENOMINATOR = 10_000
_FRACTION_TOL = 1e-12


def _hit_counts(correct) -> tuple[np.ndarray, int] | None:
    """Per-clip correctness as exact integers: ``(counts (N,) int64, n)`` with fraction ``counts / n``.

    Booleans (or 0/1) of shape (seeds, N) give the hits summed over seeds and ``n = seeds``; fractions
    that are multiples of 1/q (q ≤ :data:`MAX_DENOMINATOR`, e.g. hits averaged over q seeds) give
    ``counts = fraction · q``. ``None`` when the fractions are not such multiples (arbitrary floats).
    Call after :func:`_bool_or_fraction` has validated the input.
    """
    c = np.asarray(correct)
    flat = c.reshape(-1)
    if c.dtype == bool:
        k, q = flat.astype(np.int64), 1
    else:
        f = flat.astype(np.float64)
        q = 1
        for u in np.unique(f):                           # few distinct values when they are k/q fractions
            r = Fraction(float(u)).limit_denominator(MAX_DENOMINATOR)
            if abs(r.numerator / r.denominator - u) > _FRACTION_TOL:
                return None
            q = math.lcm(q, r.denominator)
            if q > MAX_DENOMINATOR:
                return None
        k = np.rint(f * q).astype(np.int64)
    if c.ndim == 2:                                      # (seeds, N): hits summed over seeds, n = seeds · q
        return k.reshape(c.shape).sum(axis=0), q * c.shape[0]
    return k, q


def paired_compare(correct_a, correct_b, speakers=None, *, a: str = "A", b: str = "B", n_boot: int = N_BOOT,
                   level: float = LEVEL, seed: int = 0) -> Comparison:
    """Compare two models scored on the same clips with a paired bootstrap over speakers.

    ``correct_a`` and ``correct_b``: bool (N,) (or (seeds, N), averaged per clip) for the same N clips in
    the same order; the two may have different numbers of seeds. The verdict is ``"better"`` when the
    whole interval of ``acc_a − acc_b`` is above 0, ``"worse"`` when it is below, else ``"within noise"``.

    Ties are exact: hits are counted in integers (summed over seeds; per-clip fractions that are
    multiples of 1/q, such as hits already averaged over seeds, are read back as counts), and every sum
    and bootstrap resample is an integer, divided by the seeds and clips only at the end. A resample
    whose clips tie on balance is exactly 0, never ±1e-17, so no tolerance is needed. Only per-clip
    fractions that are not such multiples (arbitrary floats) are summed in floating point.

    Taught in: 00_speech_commands
    """
    ca, cb = _bool_or_fraction(correct_a, "correct_a"), _bool_or_fraction(correct_b, "correct_b")
    if ca.shape != cb.shape:
        raise ValueError(f"correct_a has {ca.size} clips and correct_b {cb.size}: a paired comparison needs both "
                         "models scored on the same clips in the same order")
    n = len(ca)
    ids = _clusters(speakers, n)
    k = int(ids.max()) + 1
    m = np.bincount(ids, minlength=k)                    # clips per cluster (int)
    W = _weights(k, n_boot, seed)
    counts_a, counts_b = _hit_counts(correct_a), _hit_counts(correct_b)
    if counts_a is not None and counts_b is not None:
        (ka, qa), (kb, qb) = counts_a, counts_b
        q = math.lcm(qa, qb)                             # per clip: (ka·q/qa − kb·q/qb) / q, exactly
        per_clip = ka * (q // qa) - kb * (q // qb)       # int64
        d = np.zeros(k, np.int64)
        np.add.at(d, ids, per_clip)                      # per-cluster sums, exact
        Wi = W.astype(np.int64)                          # multinomial counts: exact integers
        boot = (Wi @ d) / ((Wi @ m) * q)                 # exactly 0 when a resample ties
        acc_a, acc_b = int(ka.sum()) / (n * qa), int(kb.sum()) / (n * qb)
        diff = int(per_clip.sum()) / (n * q)
    else:                                                # arbitrary float fractions: no exact form
        per_clip = ca - cb
        d = np.bincount(ids, weights=per_clip, minlength=k)
        boot = (W @ d) / (W @ m)
        acc_a, acc_b, diff = float(ca.mean()), float(cb.mean()), float(per_clip.mean())
    q_ = (1 - level) / 2
    lo, hi = float(np.quantile(boot, q_)), float(np.quantile(boot, 1 - q_))
    verdict = "better" if lo > 0 else "worse" if hi < 0 else "within noise"
    return Comparison(a, b, float(acc_a), float(acc_b), float(diff), lo, hi, verdict,
                      int(n), _n_speakers(speakers, n), level)


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
