"""Gradual pruning schedules: the sparsity to apply at a training step.

Both take one step (returns a float) or an array of steps (returns a float64
array of the same shape), so a whole schedule is one call: ``f(np.arange(T), ...)``.

Taught in: 01_pruning
"""
from __future__ import annotations

import numpy as np

from thinlab._validate import check_int, check_real, check_sparsity


def _steps(step):
    steps = np.asarray(step)
    if steps.dtype.kind not in "iu":
        raise TypeError(f"step has dtype {steps.dtype}; expected integer training steps; "
                        "pass an int or an int array, e.g. np.arange(n_steps)")
    if steps.size and steps.min() < 0:
        raise ValueError(f"step contains {int(steps.min())}; expected steps ≥ 0 (step 0 is the first update)")
    return steps.astype(np.int64)


def _out(values: np.ndarray, step):
    return float(values) if np.ndim(step) == 0 else values


def polynomial_sparsity(step, *, final_sparsity: float, initial_sparsity: float = 0.0, begin_step: int,
                        end_step: int, frequency: int = 1, power: float = 3):
    """Automated gradual pruning (Zhu & Gupta 2017): sparsity rises fast, then levels off.

    ``s(t) = s_f + (s_i - s_f) * (1 - (t_u - t_0) / (t_end - t_0)) ** power``, where ``t_u`` is
    the last update step ``t_0 + k * frequency ≤ t`` (the mask is only recomputed there), ``s``
    is 0 before ``t_0 = begin_step`` (the model is still dense) and ``s_f`` from ``end_step`` on.

    Parameters
    ----------
    step : int or ndarray of int, any shape
    final_sparsity : float in [0, 1)
    initial_sparsity : float in [0, final_sparsity]
    begin_step, end_step : int, 0 ≤ begin_step < end_step
    frequency : int ≥ 1
        Steps between mask updates (Δt in the paper).
    power : float > 0
        3 in the paper.

    Returns
    -------
    float, or ndarray of float64 with the shape of ``step``.

    Taught in: 01_pruning
    """
    s_f = check_sparsity(final_sparsity, name="final_sparsity")
    s_i = check_real(initial_sparsity, name="initial_sparsity", low=0.0, high=s_f,
                     hint="the schedule starts at initial_sparsity and only rises to final_sparsity")
    t0 = check_int(begin_step, name="begin_step", low=0, hint="pass the step of the first pruning update")
    t1 = check_int(end_step, name="end_step", low=t0 + 1, hint=f"end_step must come after begin_step={t0}")
    dt = check_int(frequency, name="frequency", low=1, hint="pass the number of steps between mask updates")
    power = check_real(power, name="power", low=0.0, low_open=True, hint="the paper uses power=3")
    steps = _steps(step)
    t_update = np.where(steps >= t1, t1, t0 + (np.clip(steps, t0, t1) - t0) // dt * dt)
    progress = (t_update - t0) / (t1 - t0)
    values = np.where(steps < t0, 0.0, s_f + (s_i - s_f) * (1.0 - progress) ** power)
    return _out(values, step)


def polynomial_sparsity_reference(step: int, *, final_sparsity, initial_sparsity=0.0, begin_step,
                                  end_step, frequency=1, power=3) -> float:
    """Scalar reference for :func:`polynomial_sparsity`: walk the update steps up to ``step``.

    Taught in: 01_pruning
    """
    if step < begin_step:
        return 0.0
    if step >= end_step:
        return float(final_sparsity)
    t_update = begin_step
    while t_update + frequency <= step:
        t_update += frequency
    progress = (t_update - begin_step) / (end_step - begin_step)
    return final_sparsity + (initial_sparsity - final_sparsity) * (1 - progress) ** power


def interval_sparsity(step, *, final_sparsity: float, n_steps: int, interval: int):
    """The DeepThin paper's schedule: raise sparsity in ``n_steps`` equal increments, one every ``interval`` steps.

    ``s(t) = final_sparsity * min(t // interval, n_steps) / n_steps``: 0 until step
    ``interval``, ``final_sparsity`` from step ``n_steps * interval`` on.

    Parameters
    ----------
    step : int or ndarray of int, any shape
    final_sparsity : float in [0, 1)
    n_steps : int ≥ 1
        Number of increments.
    interval : int ≥ 1
        Training steps between increments.

    Returns
    -------
    float, or ndarray of float64 with the shape of ``step``.

    Taught in: 01_pruning
    """
    s_f = check_sparsity(final_sparsity, name="final_sparsity")
    n = check_int(n_steps, name="n_steps", low=1, hint="pass how many equal increments reach final_sparsity")
    dt = check_int(interval, name="interval", low=1, hint="pass the number of training steps between increments")
    steps = _steps(step)
    return _out(s_f * np.minimum(steps // dt, n) / n, step)


def interval_sparsity_reference(step: int, *, final_sparsity, n_steps, interval) -> float:
    """Scalar reference for :func:`interval_sparsity`: count the increments passed so far.

    Taught in: 01_pruning
    """
    done = 0
    for k in range(1, n_steps + 1):
        if step >= k * interval:
            done = k
    return final_sparsity * done / n_steps
