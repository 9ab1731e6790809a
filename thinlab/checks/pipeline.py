"""Exercise checks for lesson 06 (the compression factor of a chain of stages, the distillation loss).

Taught in: 06_pipeline
"""
from __future__ import annotations

import numpy as np

from thinlab.checks._common import call as _call, fail as _fail


def stage_factors_reference(stage_bytes):
    """Per-stage factors ``bytes[i-1] / bytes[i]`` (one per stage after the first) and the total
    ``bytes[0] / bytes[-1]``, which equals their product.

    Taught in: 06_pipeline
    """
    b = [float(x) for x in stage_bytes]
    return [b[i - 1] / b[i] for i in range(1, len(b))], b[0] / b[-1]


def check_stage_factors(fn) -> str:
    """Check the student's ``stage_factors(stage_bytes) -> (factors, total)``. Taught in: 06_pipeline"""
    cases = [[1000, 500, 100, 25], [6_220_136, 1_841_256, 370_000, 52_000], [800, 800], [90, 30, 10, 5, 1]]
    for b in cases:
        got = _call(fn, list(b))
        if not isinstance(got, (tuple, list)) or len(got) != 2:
            _fail(f"expected a pair (factors, total), got {type(got).__name__}",
                  "return the list of per-stage factors and the total factor: return factors, total")
        factors, total = got
        want_f, want_t = stage_factors_reference(b)
        factors = [float(x) for x in np.ravel(np.asarray(factors, dtype=float))]
        if len(factors) != len(want_f):
            _fail(f"for stage bytes {b} you returned {len(factors)} factors, expected {len(want_f)} (one per stage "
                  "after the first)", "the first entry is the dense model: it has no factor of its own")
        if not np.allclose(factors, want_f, rtol=1e-9):
            hint = "a stage's factor is its bytes before / its bytes after (the previous entry against this one)"
            if np.allclose(factors, [1 / f for f in want_f], rtol=1e-9):
                hint = "your factors are upside down (after / before, i.e. size fractions). " + hint
            elif np.allclose(factors, [b[0] / x for x in b[1:]], rtol=1e-9):
                hint = "your factors are all measured from the dense model (cumulative), not stage by stage. " + hint
            _fail(f"for stage bytes {b} your factors are {np.round(factors, 3).tolist()}, expected "
                  f"{np.round(want_f, 3).tolist()}", hint)
        if not np.isclose(float(total), want_t, rtol=1e-9):
            hint = "factors multiply: the total compares the dense bytes with the final bytes"
            if np.isclose(float(total), sum(want_f), rtol=1e-9):
                hint = "you added the stage factors; " + hint
            _fail(f"for stage bytes {b} your total is {float(total):.4g}, expected {want_t:.4g}", hint)
    return "✓ stage_factors is right"


def _log_softmax(z):
    z = np.asarray(z, dtype=np.float64)
    z = z - z.max(axis=1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=1, keepdims=True))


def distillation_loss_reference(student_logits, teacher_logits, y, T, alpha) -> float:
    """``α·T²·mean_b KL(softmax(t_b/T) ‖ softmax(s_b/T)) + (1 − α)·mean_b CE(s_b, y_b)`` in numpy.

    Taught in: 06_pipeline
    """
    s, t, y = np.asarray(student_logits, np.float64), np.asarray(teacher_logits, np.float64), np.asarray(y)
    log_ps, log_pt = _log_softmax(s / T), _log_softmax(t / T)
    kl = (np.exp(log_pt) * (log_pt - log_ps)).sum(axis=1).mean()
    ce = -_log_softmax(s)[np.arange(len(y)), y].mean()
    return float(alpha * T * T * kl + (1 - alpha) * ce)


def _variants(s, t, y, T, alpha):
    """Common mistakes, for hints."""
    log_ps, log_pt = _log_softmax(s / T), _log_softmax(t / T)
    kl = (np.exp(log_pt) * (log_pt - log_ps)).sum(axis=1).mean()
    kl_rev = (np.exp(log_ps) * (log_ps - log_pt)).sum(axis=1).mean()
    ce = -_log_softmax(s)[np.arange(len(y)), y].mean()
    ce_T = -log_ps[np.arange(len(y)), y].mean()
    lt1, ls1 = _log_softmax(t), _log_softmax(s)
    kl_1 = (np.exp(lt1) * (lt1 - ls1)).sum(axis=1).mean()
    return {"without the T² factor on the soft term": alpha * kl + (1 - alpha) * ce,
            "with the KL the wrong way round (student ‖ teacher)": alpha * T * T * kl_rev + (1 - alpha) * ce,
            "with α and 1 − α swapped": (1 - alpha) * T * T * kl + alpha * ce,
            "without dividing the logits by T": alpha * T * T * kl_1 + (1 - alpha) * ce,
            "with the hard cross-entropy also softened by T": alpha * T * T * kl + (1 - alpha) * ce_T,
            "summed over the batch instead of averaged": len(y) * (alpha * T * T * kl + (1 - alpha) * ce)}


def check_distillation_loss(fn) -> str:
    """Check the student's ``distillation_loss(student_logits, teacher_logits, y, T, alpha) -> float``
    (numpy arrays in). Taught in: 06_pipeline"""
    rng = np.random.default_rng(6)
    cases = [(np.array([[2.0, 0.0, -1.0]]), np.array([[3.0, 1.0, 0.0]]), np.array([0]), 2.0, 0.5)]
    for B, C, T, a in [(4, 5, 4.0, 0.7), (8, 10, 1.0, 0.3), (3, 2, 8.0, 1.0), (5, 3, 3.0, 0.0)]:
        cases.append((rng.normal(size=(B, C)) * 3, rng.normal(size=(B, C)) * 3, rng.integers(0, C, B), T, a))
    for s, t, y, T, a in cases:
        got = _call(fn, s.copy(), t.copy(), y.copy(), T, a)
        try:
            got = float(np.asarray(got, dtype=np.float64))
        except (TypeError, ValueError):
            _fail(f"expected one number, got {type(got).__name__}", "average over the batch and return a float")
        want = distillation_loss_reference(s, t, y, T, a)
        if np.isclose(got, want, rtol=1e-6, atol=1e-9):
            continue
        hint = ("loss = α·T²·KL(p_teacher ‖ p_student) + (1 − α)·CE(student, y) with p = softmax(logits / T), "
                "KL(p ‖ q) = Σ p·(log p − log q), both terms averaged over the batch; the cross-entropy uses T = 1")
        for what, v in _variants(s, t, y, T, a).items():
            if np.isclose(got, v, rtol=1e-6, atol=1e-9) and not np.isclose(v, want, rtol=1e-6, atol=1e-9):
                hint = f"your value matches the loss {what}. " + hint
                break
        _fail(f"for T={T}, alpha={a} and a batch of {len(y)} you returned {got:.6f}, expected {want:.6f}", hint)
    return "✓ distillation_loss is right"


SOLUTIONS = {"stage_factors": stage_factors_reference, "distillation_loss": distillation_loss_reference}
