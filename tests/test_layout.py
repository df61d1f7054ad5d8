"Layout rules of the package, checked from files only (no training): every method module is registered, and the import structure holds."
import ast, importlib, json, re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PKG = ROOT / "clipexplore"
CORE = ("backbone", "text", "toyworld", "data", "engine", "metrics", "protocols", "tasks", "concepts", "patchmaps")
NO_PARAMETERS = {"ZeroShotClassifier": "hand-written prompts, nothing learned", "RegionZeroShot": "zero-shot regions, nothing learned",
                 "PromptEnsemble": "mean of members trained elsewhere"}

def _index_text(): return "\n".join("".join(c["source"]) for c in json.loads((ROOT / "nbs" / "index.ipynb").read_text())["cells"] if c["cell_type"] == "markdown")
def _method_modules(): return sorted(p.stem for p in (PKG / "methods").glob("*.py") if p.stem != "__init__")
def _default_exps():
    out = {}
    for nb in (ROOT / "nbs").glob("*.ipynb"):
        m = re.search(r"#\| default_exp ([\w.]+)", nb.read_text().replace("\\n", "\n"))
        if m: out[m.group(1)] = nb.stem
    return out

def _modules():
    mods = {}
    for p in PKG.rglob("*.py"):
        if p.name == "_modidx.py": continue
        parts = p.relative_to(ROOT).with_suffix("").parts
        mods[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = p
    return mods

def _imports(name, path, module_level=True):
    pkg = name if path.name == "__init__.py" else name.rpartition(".")[0]
    tree = ast.parse(path.read_text())
    nodes = tree.body if module_level else list(ast.walk(tree))
    for n in nodes:
        if isinstance(n, ast.Import):
            for a in n.names: yield a.name, None
        elif isinstance(n, ast.ImportFrom):
            mod = n.module
            if n.level:
                base = pkg.split("."); base = base[:len(base) - (n.level - 1)]
                mod = ".".join(base + ([n.module] if n.module else []))
            for a in n.names: yield mod, a.name

def test_every_method_module_has_readme_row_and_notebook():
    index, exps = _index_text(), _default_exps()
    missing_row = [m for m in _method_modules() if f"`methods.{m}`" not in index]
    missing_nb = [m for m in _method_modules() if f"methods.{m}" not in exps]
    assert not missing_row, f"add a row `| NN_name | methods.x | what |` to the 'Where things are' table of nbs/index.ipynb for: {missing_row}, then run `python tools/readme.py`"
    assert not missing_nb, f"add a notebook nbs/NN_name.ipynb with `#| default_exp methods.x` for: {missing_nb}"

def test_every_method_module_has_golden_or_contract_entry():
    exps = _default_exps()
    fidelity = {e["notebook"] for e in json.loads((ROOT / "tests" / "golden" / "fidelity.json").read_text())}
    golden = "\n".join(p.read_text() for p in (ROOT / "tests").glob("test_golden*.py"))
    contract = (ROOT / "tests" / "test_contract.py").read_text()
    bad = []
    for m in _method_modules():
        classes = [n.name for n in ast.parse((PKG / "methods" / f"{m}.py").read_text()).body if isinstance(n, ast.ClassDef)]
        if exps.get(f"methods.{m}") in fidelity or f"methods.{m}" in golden or any(f'"{c}"' in contract for c in classes): continue
        bad.append(m)
    assert not bad, f"add a golden comparison with official code (tests/test_golden*.py importing clipexplore.methods.x, a row in tests/golden/deviations.json) or the method classes to FACTORIES/OWN_TESTS in tests/test_contract.py for: {bad}"

def test_trainable_methods_have_recipes():
    from clipexplore.engine import Method
    for m in _method_modules(): importlib.import_module(f"clipexplore.methods.{m}")
    found, todo = set(), [Method]
    while todo:
        for sub in todo.pop().__subclasses__():
            if sub.__module__.startswith("clipexplore.") and sub not in found: found.add(sub); todo.append(sub)
    bad = sorted(f"{c.__module__}.{c.__name__}" for c in found if vars(c).get("training_free", c.training_free) is not True
                 and c.__name__ not in NO_PARAMETERS and "recipes" not in vars(c))
    assert not bad, (f"give these trainable methods their own `recipes = {{'toy': Recipe(...), 'official': Recipe(...)}}` in their notebook "
                     f"(see CoOp.recipes; `recipes = Parent.recipes` to reuse on purpose), or `training_free = True`, or list them in NO_PARAMETERS in tests/test_layout.py: {bad}")

def test_no_import_cycle():
    mods = _modules()
    graph = {m: {i for i, _ in _imports(m, p) if i in mods and i != m} for m, p in mods.items()}
    graph = {m: {d for d in ds if d != "clipexplore"} for m, ds in graph.items()}
    state, cycles = {}, []
    def visit(m, stack):
        state[m] = 1
        for d in graph[m]:
            if state.get(d) == 1: cycles.append(stack[stack.index(d):] + [d])
            elif d not in state: visit(d, stack + [d])
        state[m] = 2
    for m in graph:
        if m not in state: visit(m, [m])
    assert not cycles, f"move the import inside the function that needs it (or the shared code to a lower module) to break: {[' -> '.join(c) for c in cycles]}"

def test_no_private_imports_and_open_clip_only_in_backbone():
    mods = _modules()
    private = [f"{m} imports {n} from {i}" for m, p in mods.items() for i, n in _imports(m, p, False) if i and i.startswith("clipexplore") and n and n.startswith("_")]
    oc = [m for m, p in mods.items() for i, _ in _imports(m, p, False) if i and i.split(".")[0] == "open_clip" and m != "clipexplore.backbone"]
    assert not private, f"export (rename without `_`) or move these names: {private}"
    assert not sorted(set(oc)), f"only clipexplore/backbone.py may import open_clip: give backbone (nbs/00_backbone.ipynb) a function for what these need: {sorted(set(oc))}"

def test_core_never_imports_methods():
    mods = _modules()
    bad = [f"clipexplore.{c} imports {i}" for c in CORE if f"clipexplore.{c}" in mods for i, _ in _imports(f"clipexplore.{c}", mods[f"clipexplore.{c}"], False) if i and i.startswith("clipexplore.methods")]
    assert not bad, f"core modules must not import clipexplore.methods (move that code into the method's notebook): {bad}"

def test_data_flow_names_real_modules():
    index, mods = _index_text(), _modules()
    named = set(re.findall(r"clipexplore(?:\.[a-z_]+)+", index))
    bad = sorted(n for n in named if n not in mods)
    assert not bad, f"the data-flow picture in nbs/index.ipynb names modules that do not exist: {bad}"


def test_package_imports_from_the_folder_above_a_clone_named_clipexplore(tmp_path):
    "A clone used from its parent folder: the clone (a folder named clipexplore, no __init__) must not shadow the package."
    import subprocess, sys
    (tmp_path / "clipexplore").symlink_to(ROOT, target_is_directory=True)
    code = "import clipexplore, clipexplore.backbone as b; print(clipexplore.__file__); print(b.toy_weights_path().exists())"
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    path, weights = out.stdout.split()
    assert Path(path).resolve() == (PKG / "__init__.py").resolve() and weights == "True"


def test_notebooks_do_not_export_themselves():
    "Running a notebook never rewrites the package: nbdev-export is asked for, from a terminal."
    calls = [nb.relative_to(ROOT) for nb in (ROOT / "nbs").rglob("*.ipynb")
             if any("nbdev_export()" in "".join(c["source"]) for c in json.loads(nb.read_text())["cells"] if c["cell_type"] == "code")]
    assert not calls, f"notebooks that export the package when run: {calls}"
