"""thinlab.teach: predict-first, readable tables, computed interpretations, design challenges."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from thinlab import stats, teach


def test_predict_then_reveal_numeric_and_choice():
    assert "replace None" in teach.predict("t_none", None, question="How many?")
    assert "No guess was written" in teach.reveal("t_none", 3.0)
    assert "recorded" in teach.predict("t_num", 0.5, question="Accuracy?")
    far = teach.reveal("t_num", 0.9)
    assert "0.5" in far and "0.9" in far and "far off" in far and "+0.4" in far
    teach.predict("t_close", 0.8, question="Accuracy?")
    assert "close" in teach.reveal("t_close", 0.9) and "−" not in teach.reveal("t_close", 0.9)
    teach.predict("t_spot", 0.88, question="Accuracy?")
    assert "spot on" in teach.reveal("t_spot", 0.9)
    assert "−0.02" in teach.reveal("t_spot", 0.86)
    teach.predict("t_choice", "gradual", question="Which wins?")
    assert "you were right" in teach.reveal("t_choice", "Gradual")
    assert "not what you expected" in teach.reveal("t_choice", "one-shot")


def test_reveal_without_predict_and_bad_name():
    with pytest.raises(KeyError, match="teach.predict"):
        teach.reveal("never_recorded", 1.0)
    with pytest.raises(ValueError, match="non-empty string"):
        teach.predict("", 1.0, question="?")


def test_human_bytes():
    assert teach.human_bytes(512) == "512 B"
    assert teach.human_bytes(1234) == "1.2 KB"
    assert teach.human_bytes(6_200_000) == "6.2 MB"
    assert teach.human_bytes(384_000) == "384 KB"
    assert teach.human_bytes(float("nan")) == ""


def test_table_formats_and_drops_empty_columns():
    rows = [dict(model="dnn", acc=0.685714, bytes=4678028.0, params=1169507, note="not available", x=1.23456),
            dict(model="cnn", acc=0.5, bytes=1500.0, params=375, note="not available", x=float("nan"))]
    t = teach.table(rows, percent=["acc"], bytes_=["bytes"], integers=["params"], index="model")
    assert list(t.columns) == ["acc", "bytes", "params", "x"]              # the all-"not available" column is gone
    assert t.loc["dnn", "acc"] == "68.6 %" and t.loc["dnn", "bytes"] == "4.7 MB"
    assert t.loc["dnn", "params"] == "1,169,507" and t.loc["cnn", "bytes"] == "1.5 KB"
    assert t.loc["dnn", "x"] == "1.23" and t.loc["cnn", "x"] == ""
    with pytest.raises(KeyError, match="no column 'nope'"):
        teach.table(rows, percent=["nope"])
    assert isinstance(teach.table(pd.DataFrame(rows)), pd.DataFrame)
    col = teach.table([dict(se=0.019), dict(se=0.010), dict(se=0.0336)])["se"].tolist()
    assert col == ["0.019", "0.010", "0.034"]                                # one number of decimals per column
    col = teach.table([dict(s=85.24), dict(s=104.4), dict(s=13.5)])["s"].tolist()
    assert col == ["85", "104", "14"]                                        # 3 significant digits of the largest
    col = teach.table([dict(e=0.000123), dict(e=0.0000456)])["e"].tolist()
    assert col == ["0.000123", "0.000046"]                                   # tiny errors do not print as 0.000


def _cmp(diff_sign: int, noise: bool):
    rng = np.random.default_rng(0)
    n, speakers = 400, np.repeat(np.arange(40), 10)
    a = rng.random(n) < 0.6
    b = a.copy()
    k = 4 if noise else 120
    flip = rng.choice(n, k, replace=False)
    if diff_sign > 0:
        b[flip] = False
    else:
        b[flip] = True
    return stats.paired_compare(a, b, speakers, a="gradual", b="one-shot")


@pytest.mark.parametrize("sign", [1, -1])
def test_interpret_words_follow_the_numbers(sign):
    c = _cmp(sign, noise=False)
    assert c.verdict == ("better" if sign > 0 else "worse")
    s = teach.interpret(c, expected="better", reasons=["short schedules"], claim="gradual against one-shot")
    assert ("ahead" in s) == (c.diff > 0) and ("behind" in s) == (c.diff < 0)
    assert f"{c.acc_a:.3f}" in s and f"{c.acc_b:.3f}" in s and "beyond noise" in s
    assert ("not the expected outcome" in s) == (sign < 0)
    assert ("short schedules" in s) == (sign < 0)


def test_interpret_within_noise_and_bad_expectation():
    c = _cmp(1, noise=True)
    assert c.verdict == "within noise"
    s = teach.interpret(c, expected="better", reasons=["few speakers"])
    assert "within noise" in s and "did not show" in s and "few speakers" in s and "beyond noise" not in s
    assert "did not show" not in teach.interpret(c, expected="similar")
    with pytest.raises(ValueError, match="expected="):
        teach.interpret(c, expected="maybe")


def test_challenge_pass_fail_and_leaderboard():
    ok = teach.challenge("prune", bytes_=60_000, accuracy=0.8, size_limit=64_000, accuracy_bar=0.75)
    assert ok.passed and ok.text().startswith("✓") and ok.leaderboard("ana").split(" | ")[2:] == [
        "ana", "60000", "0.8000", "pass"]
    big = teach.challenge("prune", bytes_=70_000, accuracy=0.8, size_limit=64_000, accuracy_bar=0.75)
    weak = teach.challenge("prune", bytes_=60_000, accuracy=0.7, size_limit=64_000, accuracy_bar=0.75)
    assert not big.passed and not weak.passed and "✗ limit" in big.text() and "✗ bar" in weak.text()
    with pytest.raises(ValueError, match="positive byte count"):
        teach.challenge("x", bytes_=0, accuracy=0.5, size_limit=10, accuracy_bar=0.1)
    with pytest.raises(ValueError, match="between 0 and 1"):
        teach.challenge("x", bytes_=5, accuracy=1.5, size_limit=10, accuracy_bar=0.1)
    assert math.isclose(ok.accuracy, 0.8)


def test_interpret_never_prints_a_nonzero_gap_as_zero_points():
    c = stats.Comparison(a="gradual", b="one shot", acc_a=0.6904, acc_b=0.6900, diff=0.0004, low=-0.019, high=0.054,
                         verdict="within noise", n_clips=86, n_speakers=7)
    text = teach.interpret(c, expected="better")
    assert "gradual 0.04 points ahead" in text and "0.0 points" not in text


def test_challenge_never_prints_equal_numbers_beside_a_cross():
    miss = teach.challenge("prune", bytes_=64_040, accuracy=0.7496, size_limit=64_000, accuracy_bar=0.7498)
    assert not miss.passed
    assert "64,040 B (✗ limit 64,000 B)" in miss.text() and "accuracy 0.7496 (✗ bar 0.7498)" in miss.text()
    assert miss.leaderboard("ana").split(" | ")[3:] == ["64040", "0.7496", "fail"]
    near = teach.challenge("prune", bytes_=63_990, accuracy=0.74983, size_limit=64_000, accuracy_bar=0.7498)
    assert near.passed and near.text().startswith("✓ challenge met")
    assert "63,990 B (✓ limit 64,000 B)" in near.text() and "accuracy 0.74983 (✓ bar 0.74980)" in near.text()
    assert near.leaderboard().endswith("| 0.74983 | pass")
    edge = teach.challenge("prune", bytes_=64_000, accuracy=0.75, size_limit=64_000, accuracy_bar=0.75)
    assert edge.passed and "64,000 B (✓ limit 64,000 B), accuracy 0.750 (✓ bar 0.750)" in edge.text()
    round_up = teach.challenge("prune", bytes_=99_960, accuracy=0.8, size_limit=100_000, accuracy_bar=0.75)
    assert "99,960 B (✓ limit 100,000 B)" in round_up.text()      # not "100.0 KB (✓ limit 100 KB)"
    apart = teach.challenge("prune", bytes_=60_000, accuracy=0.8, size_limit=64_000, accuracy_bar=0.75)
    assert "60.0 KB (✓ limit 64.0 KB), accuracy 0.800 (✓ bar 0.750)" in apart.text()   # readable when apart


@pytest.mark.parametrize("top,shown", [(0.0099, "0.0099"), (0.0101, "0.0101"), (1.01, "1.0100")])
def test_small_values_keep_their_digits_whatever_the_column_maximum(top, shown):
    col = teach.table([dict(e=top), dict(e=0.0012), dict(e=0.0)])["e"].tolist()
    assert col == [shown, "0.0012", "0.0000"]                              # one rule on both sides of 0.01 and 1


def test_interpret_names_the_comparisons_own_level():
    rng = np.random.default_rng(0)
    a, spk = rng.random(400) < 0.6, np.repeat(np.arange(40), 10)
    b = a.copy()
    b[rng.choice(400, 4, replace=False)] = False
    c90 = stats.paired_compare(a, b, spk, level=0.90)
    s = teach.interpret(c90, expected="similar")
    assert "(90% paired interval over 40 speakers" in s and "95%" not in s
    assert "(90% paired interval" in c90.text()
    assert "(95% paired interval" in teach.interpret(stats.paired_compare(a, b, spk), expected="similar")
    assert "(97.5% paired interval" in teach.interpret(stats.paired_compare(a, b, spk, level=0.975))
