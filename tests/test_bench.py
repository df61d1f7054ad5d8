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


def test_data_pipeline_benchmark_prints_rates_and_ratios():
    out = run("data_pipeline.py", "96")
    rates = re.findall(r"^(0 workers|default|limit).*?([0-9]+)$", out, flags=re.M)
    assert [r[0] for r in rates] == ["0 workers", "default", "limit"], out
    assert all(float(r[1]) > 0 for r in rates) and "default / 0 workers:" in out


@pytest.mark.slow
def test_real_scale_benchmark_prints_its_table():
    out = run("real_scale.py", "--classes", "2", "--shots", "1", "--test", "2", "--batch-size", "2", "--phases", "encode")
    rows = [l.split() for l in out.splitlines() if l.split()[:1] == ["encode"]]
    assert [r[1] == "0" for r in rows] == [True, False] and all(float(r[2]) > 0 for r in rows), out
    assert "ImageNet's train set" in out
