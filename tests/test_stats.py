"""Numbers that hold: speaker-aware intervals, paired verdicts, clip records, one byte count, bfloat16
sizing, and runs that repeat bit for bit in two fresh processes."""
from __future__ import annotations

import os
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import torch

from thinlab import models, stats
from thinlab.nn import half
from thinlab.nn import size_report
from thinlab.size import dtype_bytes

REPO = Path(__file__).resolve().parents[1]


def _clustered(rng, n_speakers=7, sizes=None, p=0.7, spread=0.3):
    """Clips grouped by speaker, each speaker with their own accuracy around ``p``."""
    sizes = sizes if sizes is not None else rng.integers(3, 20, n_speakers)
    p_spk = np.clip(rng.normal(p, spread, len(sizes)), 0, 1)
    spk = np.repeat(np.arange(len(sizes)), sizes).astype(str)
    correct = rng.random(len(spk)) < np.repeat(p_spk, sizes)
    return correct, spk


def test_speakers_widen_the_interval_when_voices_differ():
    rng = np.random.default_rng(0)
    sizes = np.array([45, 10, 8, 8, 6, 5, 4])                 # the real sample's test split: one speaker has 45
    per = np.repeat([1, 0, 1, 0, 1, 0, 1], sizes).astype(bool)   # each voice all right or all wrong
    spk = np.repeat(np.arange(7), sizes).astype(str)
    iv = stats.accuracy_interval(per, spk)
    assert iv.accuracy == pytest.approx(per.mean()) and iv.n_speakers == 7 and iv.n_clips == 86
    assert iv.se > 3 * iv.binomial_se and iv.width > 0.4
    indep = stats.accuracy_interval(rng.random(400) < 0.7, np.arange(400).astype(str))
    assert indep.se == pytest.approx(indep.binomial_se, rel=0.15)  # one clip per speaker: the binomial case
    assert "interval" in iv.text() and "7 speakers, 86 clips" in iv.text()


def test_interval_covers_the_truth_about_95_percent_of_the_time():
    rng = np.random.default_rng(1)
    truth = float(np.clip(rng.normal(0.7, 0.2, 1_000_000), 0, 1).mean())  # accuracy over the speaker population
    hits = 0
    for k in range(200):
        sizes = rng.integers(5, 15, 30)
        p_spk = np.clip(rng.normal(0.7, 0.2, 30), 0, 1)
        spk = np.repeat(np.arange(30), sizes).astype(str)
        correct = rng.random(len(spk)) < np.repeat(p_spk, sizes)
        iv = stats.accuracy_interval(correct, spk, n_boot=500, seed=k)
        hits += iv.low <= truth <= iv.high
    assert 0.85 <= hits / 200 <= 0.99, hits


def test_paired_compare_verdicts():
    rng = np.random.default_rng(2)
    a, spk = _clustered(rng, n_speakers=40, sizes=np.full(40, 10))
    same = stats.paired_compare(a, a, spk, a="x", b="x")
    assert same.diff == 0 and same.verdict == "within noise"
    b = a.copy()
    b[rng.random(len(b)) < 0.25] = False                      # b loses a quarter of its hits on every speaker
    better = stats.paired_compare(a, b, spk, a="full", b="damaged")
    assert better.verdict == "better" and better.low > 0 and better.diff == pytest.approx(a.mean() - b.mean())
    assert stats.paired_compare(b, a, spk).verdict == "worse"
    flip = a.copy()
    flip[:3] = ~flip[:3]                                       # three clips of one speaker: noise
    assert stats.paired_compare(a, flip, spk).verdict == "within noise"
    assert "full is better" in better.text() and "paired interval over 40 speakers" in better.text()


def test_pairing_removes_what_the_models_share():
    rng = np.random.default_rng(3)
    a, spk = _clustered(rng, n_speakers=12, spread=0.4)
    b = a.copy()
    idx = rng.choice(len(b), size=max(2, len(b) // 12), replace=False)
    b[idx] = False
    paired = stats.paired_compare(a, b, spk)
    ia, ib = stats.accuracy_interval(a, spk), stats.accuracy_interval(b, spk)
    assert paired.high - paired.low < (ia.width + ib.width) / 3  # far narrower than two unpaired intervals


def test_seeds_average_per_clip_and_bad_input_is_explained():
    rng = np.random.default_rng(4)
    runs = rng.random((3, 50)) < 0.6
    spk = np.repeat(np.arange(10), 5).astype(str)
    assert stats.accuracy_interval(runs, spk).accuracy == pytest.approx(runs.mean())
    with pytest.raises(ValueError, match="same clips in the same order"):
        stats.paired_compare(runs[0], runs[0][:-1], spk)
    with pytest.raises(ValueError, match="one speaker id per scored clip"):
        stats.accuracy_interval(runs[0], spk[:-1])
    with pytest.raises(ValueError, match=r"must lie in \[0, 1\]"):
        stats.accuracy_interval(np.full(5, 2.0))
    with pytest.raises(ValueError, match=r"shape \(N,\) or \(seeds, N\)"):
        stats.accuracy_interval([])
    silence = stats.accuracy_interval(np.ones(6, bool), np.array(["", "", "a", "a", "b", ""]))
    assert silence.n_speakers == 2 and silence.accuracy == 1.0


def test_eval_record_names_the_clips():
    files, spk = np.array(["yes/b_nohash_0.wav", "no/a_nohash_0.wav", "no/a_nohash_1.wav"]), np.array(["b", "a", "a"])
    rec = stats.eval_record(files, spk)
    assert rec == stats.eval_record(files[::-1], spk[::-1])   # order does not matter
    assert rec["n_clips"] == 3 and rec["n_speakers"] == 2 and rec["largest_speaker_share"] == pytest.approx(2 / 3)
    assert rec["files_sha256"] != stats.eval_record(files[:2], spk[:2])["files_sha256"]


@pytest.mark.parametrize("dtype,width", [(torch.float32, 4), (torch.float16, 2), (torch.bfloat16, 2),
                                         ("bfloat16", 2), ("int8", 1), (np.float64, 8)])
def test_every_precision_is_sized(dtype, width):
    assert dtype_bytes(dtype) == width


@pytest.mark.parametrize("name", ["cnn", "lstm", "dnn"])
def test_one_byte_count_in_every_precision(name):
    m = models.build_model(name, 10)
    dense = size_report(m).total_bytes
    assert models.fp32_bytes(m) == dense
    ints = sum(b.numel() * b.element_size() for b in m.buffers() if not b.is_floating_point())
    for dt in (torch.float16, torch.bfloat16):
        assert size_report(half.to_half(m, dtype=dt)).total_bytes == (dense - ints) // 2 + ints


REPRO = r"""
import hashlib, sys
from thinlab import data, train
from thinlab.experiments.compare import METHODS, train_compressed
train.use_threads(2)
train.set_deterministic(True)
ds = data.load_dataset(sys.argv[1], progress=False, verbose=False)
digest = lambda m: hashlib.sha256(b"".join(t.detach().cpu().numpy().tobytes() for t in m.state_dict().values())).hexdigest()
for name in ("cnn", "lstm", "dnn"):
    m, info = train.baseline(name, ds, epochs=1, seed=3, cache=False, progress=False, verbose=False)
    print(name, digest(m), info["test_acc"])
for method in [m for m in METHODS if m != "dense"]:
    r = train_compressed(ds, method=method, size_fraction=0.05, seed=3, epochs=1, keep_model=True)
    print(method, digest(r["model"]), r["acc"])
"""


@pytest.mark.slow
def test_two_fresh_processes_give_identical_weights(real_fixture, tmp_path):
    env = dict(os.environ, THINLAB_CACHE=str(tmp_path / "cache"), PYTHONHASHSEED="random")
    outs = [subprocess.run([sys.executable, "-c", REPRO, str(real_fixture)], env=env, capture_output=True, text=True,
                           timeout=600) for _ in range(2)]
    for o in outs:
        assert o.returncode == 0, o.stderr[-2000:]
    lines = [o.stdout.split("\n") for o in outs]
    assert len([l for l in lines[0] if l]) >= 8 and lines[0] == lines[1]


def test_a_whole_folder_is_one_evaluation_set(real_fixture, tmp_cache):
    from thinlab import data

    ev = data.load_eval_set(real_fixture)
    words = {p.parent.name + "/" + p.name for w in data.WORDS10 for p in (real_fixture / w).glob("*.wav")}
    assert set(ev.files.tolist()) == words and len(ev.files) == len(words) == 100
    assert ev.X.shape == (100, 101, 40) and len(set(ev.speakers)) == 10 and ev.labels == list(data.WORDS10)
    rec = stats.eval_record(ev.files, ev.speakers)
    assert rec["n_clips"] == 100 and rec["n_speakers"] == 10 and rec["largest_speaker_share"] == pytest.approx(0.1)


def test_paired_verdicts_average_seeds_and_judge_on_speakers():
    from thinlab.experiments.compare import paired_verdicts

    rng = np.random.default_rng(5)
    spk = np.repeat(np.arange(30), 8).astype(str)
    good = [rng.random(240) < 0.8 for _ in range(3)]
    bad = [g & (rng.random(240) < 0.6) for g in good]           # loses 40 % of the reference's hits
    near = []
    for g in good:                                             # 3 hits lost and 3 gained: a wash
        n = g.copy()
        n[rng.choice(np.flatnonzero(g), 3, replace=False)] = False
        n[rng.choice(np.flatnonzero(~g), 3, replace=False)] = True
        near.append(n)
    runs = ([{"method": "deepthin", "size_fraction": 0.01, "hits": h, "speakers": spk} for h in good]
            + [{"method": "narrow", "size_fraction": 0.01, "hits": h, "speakers": spk} for h in bad]
            + [{"method": "hashed", "size_fraction": 0.01, "hits": h, "speakers": spk} for h in near])
    rows = {r["method"]: r for r in paired_verdicts(runs)}
    assert set(rows) == {"narrow", "hashed"} and rows["narrow"]["verdict"] == "better"
    assert rows["hashed"]["verdict"] == "within noise" and rows["narrow"]["n_seeds"] == 3
    assert rows["narrow"]["acc_diff"] == pytest.approx(np.mean(good) - np.mean(bad))
    assert rows["narrow"]["low"] > 0 and rows["narrow"]["factor"] == 100
    with pytest.raises(ValueError, match="per-clip 'hits'"):
        paired_verdicts([{"method": "deepthin", "size_fraction": 0.1}])


def test_points_text_never_prints_a_nonzero_bound_as_zero():
    assert stats.points_text(0.047) == "+4.7" and stats.points_text(-0.012) == "-1.2"
    assert stats.points_text(0.0004) == "+0.04" and stats.points_text(-0.00001) == "-0.001"
    assert stats.points_text(0.0) == "+0.0"
    c = stats.Comparison(a="A", b="B", acc_a=0.7504, acc_b=0.745, diff=0.0054, low=0.00004, high=0.011,
                         verdict="better", n_clips=400, n_speakers=40)
    assert c.bounds_text() == "+0.004 to +1.1"                  # not "+0.0 to +1.1" beside "A is better"
    assert "(95% paired interval over 40 speakers +0.004 to +1.1): A is better" in c.text()


def test_seed_averaged_ties_are_ties_not_rounding_noise():
    from thinlab import teach
    fa = np.tile([1 / 3, 2 / 3, 1.0], 30)                  # seed-averaged hits of 90 clips
    fb = fa.copy()
    fb[0::3] += 1e-16 * np.arange(1, 31)                    # the same scores, summed in another order
    assert (fa != fb).any()
    c = stats.paired_compare(fb, fa, np.repeat(np.arange(9), 10))
    assert c.diff == 0.0 and c.low == 0.0 == c.high and c.verdict == "within noise"
    assert "points ahead" not in teach.interpret(c) and "both 0.667" in teach.interpret(c)


def _seed_hits(counts, n_seeds: int) -> np.ndarray:
    """(seeds, N) booleans, as callers pass them, with ``counts[i]`` of the ``n_seeds`` seeds right on clip i."""
    return np.arange(n_seeds)[:, None] < np.asarray(counts)[None, :]


def test_a_bound_that_ties_exactly_is_zero_so_the_verdict_is_within_noise():
    from thinlab import teach
    # seed-averaged hits (multiples of 1/3): speaker 0 ties on balance, speaker 1 favours a
    ca = np.array([1 / 3, 1 / 3, 1 / 3, 1.0, 1.0, 1.0])
    cb = np.array([2 / 3, 0.0, 1 / 3, 1.0, 2 / 3, 2 / 3])
    spk = np.array([0, 0, 0, 1, 1, 1])
    c = stats.paired_compare(ca, cb, spk, n_boot=400)
    assert c.low == 0.0 and c.high > 0 and c.verdict == "within noise"
    assert c.bounds_text().startswith("+0.0 to +")
    # 3 seeds: per-clip fractions 0, 1, 1, 0, 0 against 0, 0, 1/3, 1, 2/3 on each of two speakers. Summed
    # as floats, (1 − 1/3) − 1 − 2/3 leaves 1.1e-16 per speaker, a 2.2e-17 "lead" of a in every resample
    # and acc_b 0.39999999999999997 beside acc_a 0.4; counted in hits, both models have 12 of 30.
    a = _seed_hits([0, 3, 3, 0, 0] * 2, 3)
    b = _seed_hits([0, 0, 1, 3, 2] * 2, 3)
    spk = np.repeat(["p", "q"], 5)
    assert a.mean() == b.mean() == 0.4
    tie = stats.paired_compare(a, b, spk)
    assert tie.low == 0.0 == tie.high and tie.diff == 0.0 and tie.verdict == "within noise"
    assert tie.acc_a == tie.acc_b == 0.4                      # the same 12 hits of 30: the same accuracy
    assert tie.bounds_text() == "+0.0 to +0.0" and "both 0.400" in teach.interpret(tie)
    assert stats.paired_compare(a.mean(axis=0), b.mean(axis=0), spk) == tie   # seed-averaged input: the same
    assert stats.paired_compare(b, a, spk) == tie                               # and the other way round


def test_paired_compare_counts_hits_exactly_whatever_the_clip_order():
    rng = np.random.default_rng(7)
    spk = np.repeat(np.arange(12), 9).astype(str)
    a = rng.random((3, 108)) < 0.7                            # 3 seeds of one model, 5 of the other
    b = rng.random((5, 108)) < 0.7
    c = stats.paired_compare(a, b, spk)
    assert c.acc_a == a.sum() / a.size and c.acc_b == b.sum() / b.size
    assert c.diff == float(Fraction(int(a.sum()), a.size) - Fraction(int(b.sum()), b.size))
    for _ in range(5):                                         # the same clips in another order: the same result
        perm = rng.permutation(108)
        assert stats.paired_compare(a[:, perm], b[:, perm], spk[perm]) == c
    assert stats.paired_compare(a.mean(axis=0), b.mean(axis=0), spk) == c
    assert stats.paired_compare(a.astype(float), b.astype(float), spk) == c


def test_arbitrary_fractions_are_compared_in_floating_point():
    rng = np.random.default_rng(8)
    x, y = rng.random(60), rng.random(60)                     # not multiples of 1/q: no exact counts exist
    spk = np.repeat(np.arange(6), 10)
    c = stats.paired_compare(x, y, spk)
    assert c.acc_a == pytest.approx(x.mean()) and c.diff == pytest.approx(x.mean() - y.mean())
    assert c.low <= c.diff <= c.high and stats.paired_compare(x, x, spk).diff == 0.0


def test_points_text_prints_only_an_exact_zero_as_zero():
    assert stats.points_text(0.0) == stats.points_text(-0.0) == "+0.0"
    assert stats.points_text(-1e-17) == "-0.000000000000001"       # not a tie: shown, never hidden as ±0.0
    assert stats.points_text(2e-9) == "+0.0000002"
