"""Run every ``benchmarks/bench_*.py`` module and write ``build/bench.json``.

Usage: ``python -m benchmarks [NAME ...]`` where NAME selects modules by substring
(``python -m benchmarks deepthin`` runs ``bench_deepthin.py`` only). Each module's
``run() -> dict[str, float]`` prints its own lines; results are merged into
``{"name": value, ..., "env": {...}}``. A module that fails is reported and the others still
run; the exit status is then 1. A run of some modules only updates their figures in an existing
``build/bench.json`` and keeps the others.
"""
from __future__ import annotations

import importlib
import json
import pkgutil
import sys
import time
import traceback
from pathlib import Path

from benchmarks.common import describe_environment, environment, load_average, write_json_atomic

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "build" / "bench.json"


def discover() -> list[str]:
    """Names of the bench_* modules beside this file, sorted."""
    here = Path(__file__).resolve().parent
    return sorted(m.name for m in pkgutil.iter_modules([str(here)]) if m.name.startswith("bench_"))


def main(argv: list[str]) -> int:
    names = [n for n in discover() if not argv or any(a in n for a in argv)]
    if not names:
        print(f"no benchmark module matches {argv}; available: {', '.join(discover())}", file=sys.stderr)
        return 2
    env = environment()
    print(describe_environment(env), flush=True)
    results: dict = {}
    failed = []
    t_all = time.perf_counter()
    for name in names:
        print(f"\n== {name} ==", flush=True)
        t0 = time.perf_counter()
        try:
            module = importlib.import_module(f"benchmarks.{name}")
            got = module.run()
        except Exception:                      # report, keep the other benchmarks
            traceback.print_exc()
            failed.append(name)
            continue
        clash = sorted(set(got) & set(results))
        if clash:
            print(f"warning: {name} overwrites keys {clash}", file=sys.stderr)
        results.update({k: float(v) for k, v in got.items()})
        print(f"({name}: {time.perf_counter() - t0:.1f} s)", flush=True)
    env["loadavg_end"] = load_average()
    results["env"] = env
    if argv and OUT.exists():                 # a subset run updates its own figures and keeps the others
        try:
            previous = json.loads(OUT.read_text())
        except (OSError, ValueError):
            previous = {}
        if isinstance(previous, dict):
            results = {**{k: v for k, v in previous.items() if k != "env"}, **results}
    write_json_atomic(OUT, results)
    print(f"\nwrote {len(results) - 1} figures to {OUT.relative_to(ROOT)} in {time.perf_counter() - t_all:.0f} s")
    if env["loadavg_end"] is not None and env["loadavg_end"] > 0.5 * (env["cpu_count"] or 1):
        print(f"WARNING: load average {env['loadavg_end']} at the end: the figures above are unreliable")
    if failed:
        print(f"FAILED: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
