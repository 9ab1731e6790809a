"""Lesson 06's exercise checks pass the reference answers and fail wrong ones with a "Hint:"."""
from __future__ import annotations

import numpy as np
import pytest
from _checks_helpers import assert_fails_with_hint, assert_reference_passes, assert_unwritten_says_so

from thinlab import checks
from thinlab.checks.pipeline import _log_softmax


@pytest.mark.parametrize("name", ["stage_factors", "distillation_loss"])
def test_references_pass(name):
    assert_reference_passes(name)


def _upside_down(b):
    return [b[i] / b[i - 1] for i in range(1, len(b))], b[0] / b[-1]


def _cumulative(b):
    return [b[0] / x for x in b[1:]], b[0] / b[-1]


def _summed(b):
    f = [b[i - 1] / b[i] for i in range(1, len(b))]
    return f, sum(f)


def _with_dense(b):
    return [1.0] + [b[i - 1] / b[i] for i in range(1, len(b))], b[0] / b[-1]


@pytest.mark.parametrize("wrong, words", [(_upside_down, "upside down"), (_cumulative, "cumulative"),
                                          (_summed, "added"), (_with_dense, "dense model")])
def test_stage_factors_wrong_answers_fail_with_hint(wrong, words):
    assert_fails_with_hint(checks.check_stage_factors, wrong, what=words)


@pytest.mark.parametrize("name", ["stage_factors", "distillation_loss"])
def test_unwritten_exercise_says_so(name):
    assert_unwritten_says_so(name)


def _kd(s, t, y, T, a, *, square=True, reverse=False, swap=False, soften_ce=False):
    ls, lt = _log_softmax(s / T), _log_softmax(t / T)
    kl = ((np.exp(ls) * (ls - lt)) if reverse else (np.exp(lt) * (lt - ls))).sum(1).mean()
    ce = -(ls if soften_ce else _log_softmax(s))[np.arange(len(y)), y].mean()
    a_soft, a_hard = (1 - a, a) if swap else (a, 1 - a)
    return a_soft * (T * T if square else 1) * kl + a_hard * ce


@pytest.mark.parametrize("kwargs, words", [({"square": False}, "T²"), ({"reverse": True}, "wrong way round"),
                                           ({"swap": True}, "swapped"), ({"soften_ce": True}, "softened")])
def test_distillation_wrong_answers_fail_with_hint(kwargs, words):
    assert_fails_with_hint(checks.check_distillation_loss, lambda s, t, y, T, a: _kd(s, t, y, T, a, **kwargs),
                           what=words)


def test_distillation_reference_matches_torch():
    import torch

    from thinlab.experiments import pipeline as pl

    rng = np.random.default_rng(0)
    s, t, y = rng.normal(size=(6, 4)), rng.normal(size=(6, 4)), rng.integers(0, 4, 6)
    for T, a in [(1.0, 0.0), (2.0, 0.5), (4.0, 1.0)]:
        want = checks.SOLUTIONS["distillation_loss"](s, t, y, T, a)
        got = pl.distillation_loss(torch.tensor(s), torch.tensor(t), torch.tensor(y), T=T, alpha=a)
        assert np.isclose(float(got), want, rtol=1e-10)
