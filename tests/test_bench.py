"The benchmark scripts run and print their measured ratios (the ratios themselves are read, not asserted: no timed unit tests)."
import re
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "bench"


def run(script, *args):
    out = subprocess.run([sys.executable, str(BENCH / script), *args], capture_output=True, text=True, timeout=900)
    assert out.returncode == 0, out.stderr[-2000:]
    return out.stdout


@pytest.mark.slow
def test_coop_step_benchmark_prints_ratios_and_equal_logits():
    out = run("coop_step.py", "1")
    lines = [l for l in out.splitlines() if "speed-up" in l]
    assert [l.split()[0] for l in lines] == ["CoOp", "CoCoOp"], out
    for line in lines:
        assert float(re.search(r"max \|logit difference\| ([0-9.e+-]+)", line).group(1)) < 1e-4, line


def test_toyworld_and_load_benchmarks_print_rates():
    assert "images/s" in run("toyworld_speed.py", "200")
    assert "load_clip('toy')" in run("toyclip_load.py")
