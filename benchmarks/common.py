"""Shared helpers for the benchmark modules: careful timing, environment facts, atomic JSON.

Every ``benchmarks/bench_*.py`` module exposes ``run() -> dict[str, float]`` that prints its own
human-readable lines and returns ``{"name": value}``; ``python -m benchmarks`` merges them.

Timing rules used here (the machines are shared and noisy):
  * warm up before measuring (first calls pay for page faults, BLAS thread start-up, caches);
  * take the best of several repeats (noise only ever adds time);
  * time things that are compared *side by side*: interleave them round by round, so a burst
    of load from another process hits both sides, and compare best with best.
"""
from __future__ import annotations

import json
import os
import platform
import time
from pathlib import Path
from typing import Callable

import numpy as np

#: environment variables that change which BLAS kernel runs or how many threads it uses
BLAS_ENV = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE", "OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS",
            "MKL_NUM_THREADS")


def best_of(fn: Callable[[], object], *, repeat: int = 7, warmup: int = 2, number: int = 1) -> float:
    """Best wall time in seconds of ``fn()``, over ``repeat`` runs of ``number`` calls each.

    Parameters
    ----------
    fn : callable with no arguments
    repeat : int
        Timed runs; the fastest is returned (noise only adds time).
    warmup : int
        Untimed calls first.
    number : int
        Calls per timed run (raise it for calls of a few microseconds).
    """
    for _ in range(warmup):
        fn()
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        for _ in range(number):
            fn()
        best = min(best, (time.perf_counter() - t0) / number)
    return best


def side_by_side(fns: dict[str, Callable[[], object]], *, repeat: int = 7, warmup: int = 2,
                 number: int = 1) -> dict[str, float]:
    """Best time in seconds of each function, measured interleaved round by round.

    Each round runs every function once (``number`` calls) in turn, so slow periods on a
    shared machine fall on all of them; the best round of each is returned.
    """
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    best = {name: float("inf") for name in fns}
    for _ in range(repeat):
        for name, fn in fns.items():
            t0 = time.perf_counter()
            for _ in range(number):
                fn()
            best[name] = min(best[name], (time.perf_counter() - t0) / number)
    return best


def side_by_side_samples(fns: dict[str, Callable[[], object]], *, rounds: int = 15, warmup: int = 1,
                         number: int | dict[str, int] = 1,
                         clock: Callable[[], float] = time.perf_counter) -> dict[str, list[float]]:
    """Seconds per call of each function in every round, measured interleaved round by round.

    Like :func:`side_by_side`, but returns all ``rounds`` samples so the caller can take medians
    (robust to bursts of load in either direction) as well as minima. ``number`` may differ per
    function (a dict), so that fast and slow functions each get timed runs of similar length.
    ``clock=time.thread_time`` measures the calling thread's CPU time instead of wall time: for
    single-threaded work that is what it costs, whatever else the machine is running.
    """
    calls = number if isinstance(number, dict) else {name: number for name in fns}
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    samples: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(rounds):
        for name, fn in fns.items():
            k = calls[name]
            t0 = clock()
            for _ in range(k):
                fn()
            samples[name].append((clock() - t0) / k)
    return samples


def side_by_side_threads(fns: dict[str, Callable[[], object]], *, threads=(None, 1), repeat: int = 7,
                         warmup: int = 1, number: int | dict[str, int] = 1) -> dict[str, tuple[float, int | None]]:
    """:func:`side_by_side`, with every function also timed under each BLAS thread limit.

    ``None`` means the library default; ``number`` may differ per function (a dict), so that
    fast and slow functions each get timed runs of similar length.
    Returns ``{name: (best seconds per call, threads)}``:
    each side gets its best thread count. On a shared machine this keeps a multi-threaded BLAS
    call from being judged by the moments another process holds one of its cores (single-
    threaded code barely notices them), and on a quiet one it picks what really is fastest.
    """
    controller = blas_controller()
    if controller is None:
        threads = (None,)

    calls = number if isinstance(number, dict) else {name: number for name in fns}

    def limited(fn, limit, k):
        def run():
            if limit is None:
                for _ in range(k):
                    fn()
                return
            with controller.limit(limits=limit, user_api="blas"):
                for _ in range(k):
                    fn()
        return run

    variants = {(name, t): limited(fn, t, calls[name]) for name, fn in fns.items() for t in threads}
    times = side_by_side(variants, repeat=repeat, warmup=warmup)
    best: dict[str, tuple[float, int | None]] = {}
    for (name, t), sec in times.items():
        per_call = sec / calls[name]
        if name not in best or per_call < best[name][0]:
            best[name] = (per_call, t)
    return best


def blas_controller():
    """A threadpoolctl controller (built once: building one costs ~0.2 ms), or None."""
    global _CONTROLLER
    if _CONTROLLER is None:
        try:
            from threadpoolctl import ThreadpoolController
        except ImportError:
            return None
        _CONTROLLER = ThreadpoolController()
    return _CONTROLLER


_CONTROLLER = None


def auto_number(fn: Callable[[], object], *, target: float = 0.02) -> int:
    """Calls per timed run so that a run lasts about ``target`` seconds (at least 1)."""
    t0 = time.perf_counter()
    fn()
    once = max(time.perf_counter() - t0, 1e-7)
    return max(1, int(target / once))


def blas_info() -> list[dict]:
    """Thread pools and BLAS kernels in this process (threadpoolctl), or [] if unavailable."""
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return []
    keep = ("user_api", "internal_api", "prefix", "version", "architecture", "num_threads", "threading_layer")
    return [{k: info.get(k) for k in keep if info.get(k) is not None} for info in threadpool_info()]


def load_average() -> float | None:
    """1-minute load average (runnable processes), or None where the OS has none."""
    try:
        return round(os.getloadavg()[0], 2)
    except (AttributeError, OSError):
        return None


def busy(env: dict) -> bool:
    """True when other processes were using most of the CPUs: multi-threaded BLAS then slows
    down far more than single-threaded code, and every ratio against it is inflated."""
    load, cpus = env.get("loadavg"), env.get("cpu_count") or 1
    return load is not None and load > 0.5 * cpus


def environment() -> dict:
    """Facts that change the figures: CPU count and load, numpy, BLAS kernel and threads, BLAS env vars."""
    return {
        "python": platform.python_version(),
        "numpy": np.__version__,
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
        "loadavg": load_average(),
        "blas": blas_info(),
        "blas_env": {k: os.environ[k] for k in BLAS_ENV if k in os.environ},
    }


def describe_environment(env: dict) -> str:
    """One human paragraph for :func:`environment`."""
    lines = [f"python {env['python']}, numpy {env['numpy']}, {env['machine']}, {env['cpu_count']} CPUs, "
             f"load average {env['loadavg']}"]
    for pool in env["blas"]:
        arch = f", kernel {pool['architecture']}" if "architecture" in pool else ""
        lines.append(f"  {pool.get('user_api')}: {pool.get('internal_api')} {pool.get('version') or ''}"
                     f"{arch}, {pool.get('num_threads')} threads")
    if env["blas_env"]:
        lines.append("  env: " + ", ".join(f"{k}={v}" for k, v in env["blas_env"].items()))
    if busy(env):
        lines.append(f"  WARNING: load average {env['loadavg']} on {env['cpu_count']} CPUs – other processes are "
                     "running; multi-threaded BLAS suffers most, so ratios against it come out inflated. "
                     "Rerun on a quiet machine.")
    return "\n".join(lines)


def write_json_atomic(path: Path, data: dict) -> None:
    """Write ``data`` as JSON to ``path`` via a temporary file and an atomic rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
