"""The benchmarks under bench/ still run (tiny sizes; the numbers themselves are printed, not asserted)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.timeout(300)
@pytest.mark.parametrize("script,args", [("lock_bus.py", ["--scans", "2", "--pickups", "3"]),
                                         ("custody_history.py", ["--parcels", "2000", "--samples", "5"]),
                                         ("camera.py", ["--frames", "2", "--idle-frames", "4", "--reps", "2"])])
def test_benchmark_runs(script, args):
    result = subprocess.run([sys.executable, str(ROOT / "bench" / script), *args], capture_output=True, text=True,
                            timeout=280, cwd=ROOT)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "ratio" in result.stdout
