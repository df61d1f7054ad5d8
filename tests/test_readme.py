"README.md is generated from nbs/index.ipynb, and CI runs exactly its two quick-start commands."
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def quick_start_commands():
    quick = (ROOT / "README.md").read_text().split("## Quick start", 1)[1].split("\n## ", 1)[0]
    return [c.strip() for c in re.findall(r"```sh\n(.*?)\n```", quick, flags=re.S)]


def test_readme_is_in_sync_with_index_notebook():
    out = subprocess.run([sys.executable, str(ROOT / "tools" / "readme.py"), "--check"], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr


def test_two_commands_set_up_and_test():
    setup, test = quick_start_commands()
    assert "pip install" in setup and "clipexplore demo" in setup
    assert "nbdev-test" in test and "pytest tests" in test


def test_ci_runs_the_readme_commands():
    ci = (ROOT / ".ci" / "run").read_text()
    assert "README.md" in ci and 'bash -c "${commands[0]}"' in ci and 'bash -c "${commands[1]}"' in ci
