"Notebooks are committed executed: a cell that displays something has its output saved (the outputs policy in the index)."
import ast
import json
import re
from pathlib import Path

import pytest

NBS = Path(__file__).parents[1] / "nbs"
QUIET_CALLS = {"test_eq", "test_ne", "test_close", "test_fail", "test_is", "test_warns", "test_stdout", "test_shuffled",
               "manual_seed", "seed", "set_num_threads", "savefig", "save", "close", "show", "fit", "update", "append",
               "extend", "add", "unpause", "pause", "stop", "wait", "join", "resume", "load_state_dict", "eval", "train",
               "requires_grad_", "zero_", "copy_", "set_classes", "set_tasks", "sleep", "nbdev_export", "rmtree", "unlink", "mkdir",
               "write_text", "write_bytes", "register", "filterwarnings", "simplefilter"}


def _called_name(node):
    func = node.func
    return func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)


def displays(source):
    "Whether a cell's last statement is an expression Jupyter would display (not assigned, no trailing `;`, not a known None call)."
    lines = [l for l in source.splitlines() if l.strip() and not l.lstrip().startswith("#")]
    if not lines or lines[-1].rstrip().endswith(";") or lines[-1].lstrip().startswith(("%", "!")): return False
    try: tree = ast.parse(source)
    except SyntaxError: return False
    if not tree.body or not isinstance(tree.body[-1], ast.Expr): return False
    value = tree.body[-1].value
    if isinstance(value, ast.Constant): return False                         # a docstring-like string or an Ellipsis
    if isinstance(value, (ast.Await, ast.Yield)): return False
    return not (isinstance(value, ast.Call) and _called_name(value) in QUIET_CALLS)


DRAWS_OR_PRINTS = re.compile(r"\bplt\.|\bdisplay\(|\bprint\(|\bshow_static\(|\.plot\(|\bplot_\w+\(")

def shows_something(source):
    "Whether running a (non-library) cell shows something: a displayed value, a pyplot figure, a print or a display call."
    return displays(source) or ("#| export" not in source and bool(DRAWS_OR_PRINTS.search(source)))


def cells_without_output(path):
    "Indices of code cells in `path` that display something but were saved without output."
    nb = json.loads(path.read_text())
    missing = []
    for i, cell in enumerate(nb["cells"]):
        if cell["cell_type"] != "code" or cell.get("outputs"): continue
        source = "".join(cell["source"])
        if "#| eval: false" in source or "#|eval: false" in source: continue
        if shows_something(source): missing.append(i)
    return missing


def test_displays_recognises_what_jupyter_shows():
    assert displays("t = Table(rows)\nt") and displays("plot(x)") and displays("a.b[0]")
    assert not displays("x = 1") and not displays("plot(x);") and not displays("test_eq(a, b)") and not displays("import os")
    assert not displays("for i in range(3):\n    print(i)") and not displays("torch.manual_seed(0)")
    assert shows_something("fig, ax = plt.subplots()\nax.plot(x);") and shows_something("for i in range(3):\n    print(i)")
    assert not shows_something("#| export\ndef f(ax): ax.plot(x)")


@pytest.mark.parametrize("path", sorted(NBS.rglob("*.ipynb")), ids=lambda p: str(p.relative_to(NBS)))
def test_every_displaying_cell_has_its_output_saved(path):
    missing = cells_without_output(path)
    assert not missing, (f"{path.relative_to(NBS.parent)}: cells {missing} display something but were saved without output; "
                         f"execute the notebook and save it (`nbdev-test {path.relative_to(NBS.parent)} --save` keeps the saved outputs of the cells it skips)")


WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"

def widget_views(path):
    "Indices of cells whose saved outputs are widget views: `nbdev-clean` drops the widget state, so a reader sees only their text stub."
    nb = json.loads(path.read_text())
    return [i for i, cell in enumerate(nb["cells"]) if any(WIDGET_VIEW in o.get("data", {}) for o in cell.get("outputs", []))]


def test_widget_views_are_found(tmp_path):
    nb = dict(cells=[dict(cell_type="code", source="bar", outputs=[dict(output_type="display_data", data={WIDGET_VIEW: {}, "text/plain": "0%"})]),
                     dict(cell_type="code", source="x", outputs=[dict(output_type="stream", name="stderr", text="10/10")])])
    (tmp_path / "a.ipynb").write_text(json.dumps(nb))
    assert widget_views(tmp_path / "a.ipynb") == [0]


@pytest.mark.parametrize("path", sorted(NBS.rglob("*.ipynb")), ids=lambda p: str(p.relative_to(NBS)))
def test_saved_progress_is_text_not_a_widget(path):
    views = widget_views(path)
    assert not views, (f"{path.relative_to(NBS.parent)}: cells {views} saved widget views (a progress bar saved at 0%, a dashboard with no picture); "
                       f"save it with `nbdev-test {path.relative_to(NBS.parent)} --save`, which has no widget front end, so bars are saved as text")
