"""Every method notebook in one shape (issue 20): the idea and its equations, code cells of at most 30 lines
each followed by a small inline test, a demo, "What the numbers say", then a "Knobs" table
(hyperparameter | official | toy | why). Checked from the notebook files only."""
import json
import re
from pathlib import Path

import pytest

NBS = Path(__file__).resolve().parents[1] / "nbs"
METHOD_NOTEBOOKS = sorted(p.stem for p in NBS.glob("[1-5][0-9]_*.ipynb"))
MAX_LINES = 30
KNOBS_HEADER = re.compile(r"^\|\s*hyperparameter\s*\|\s*official\s*\|\s*toy\s*\|\s*why\s*\|", re.M)


def cells(name): return json.loads((NBS / f"{name}.ipynb").read_text())["cells"]
def text(cell): return "".join(cell["source"])
def exported(cell): return cell["cell_type"] == "code" and re.match(r"\s*#\|\s*export", text(cell)) is not None
def _tests_something(cell): return cell["cell_type"] == "code" and not exported(cell) and re.search(r"\btest_\w+\(|\bassert\b", text(cell))
def headings(name): return [m for c in cells(name) if c["cell_type"] == "markdown" for m in re.findall(r"^##\s+(.+?)\s*$", text(c), re.M)]


def test_there_are_method_notebooks(): assert len(METHOD_NOTEBOOKS) >= 30


@pytest.mark.parametrize("name", METHOD_NOTEBOOKS)
def test_equations_then_numbers_then_knobs(name):
    md = "\n".join(text(c) for c in cells(name) if c["cell_type"] == "markdown")
    assert "$" in md, f"{name}: no equation in its markdown"
    found = headings(name)
    assert "What the numbers say" in found and "Knobs" in found, f"{name}: needs '## What the numbers say' and '## Knobs' (has {found})"
    assert found.index("What the numbers say") < found.index("Knobs"), f"{name}: the numbers come before the knobs"
    knobs = next(text(c) for c in cells(name) if c["cell_type"] == "markdown" and re.search(r"^##\s+Knobs\s*$", text(c), re.M))
    table = KNOBS_HEADER.search(knobs)
    assert table, f"{name}: the Knobs section needs a table headed | hyperparameter | official | toy | why |"
    rows = [line for line in knobs[table.end():].splitlines() if line.startswith("|") and not set(line) <= set("|-: ")]
    assert len(rows) >= 2, f"{name}: a Knobs table with at least two hyperparameters"


@pytest.mark.parametrize("name", METHOD_NOTEBOOKS)
def test_code_cells_are_short(name):
    long = [(i, len(text(c).splitlines())) for i, c in enumerate(cells(name)) if c["cell_type"] == "code" and len(text(c).splitlines()) > MAX_LINES]
    assert not long, f"{name}: code cells over {MAX_LINES} lines (index, lines): {long}"


@pytest.mark.parametrize("name", METHOD_NOTEBOOKS)
def test_each_exported_cell_is_followed_by_a_test(name):
    nb, untested = cells(name), []
    for i, cell in enumerate(nb):
        if not exported(cell) or not re.search(r"^(async def|def|class|@)\s*\w", text(cell), re.M):
            continue                                                   # imports and constants (recipes): nothing to test on its own
        following = []
        for later in nb[i + 1:]:
            if exported(later): break
            following.append(later)
        if not any(_tests_something(c) for c in following): untested.append(i)
    assert not untested, f"{name}: exported cells with no test cell (assert / test_*) before the next exported cell: {untested}"
