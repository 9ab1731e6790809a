"""The scale benchmark's memory figures are the measured process's own, not its parent's."""
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads /proc (Linux)")
def test_a_phase_started_from_a_large_process_reports_its_own_peak():
    big = np.ones(256 * 2**20 // 8)                      # this process now holds ≥ 256 MB
    code = "from benchmarks.bench_scale import _peak_mb; print(_peak_mb())"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    child = float(out.stdout.split()[-1])
    assert big.sum() > 0 and 1 < child < 200             # a fresh Python: tens of MB, not the parent's peak
