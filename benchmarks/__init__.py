"""thinlab benchmarks: speed and memory ratios measured side by side in one run.

``python -m benchmarks`` (or ``make bench``) discovers every ``benchmarks/bench_*.py``
module, calls its ``run() -> dict[str, float]``, merges the results and writes
``build/bench.json``. Shared timing helpers live in :mod:`benchmarks.common`.
"""
