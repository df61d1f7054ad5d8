"""Stand-ins for the optional third-party modules that official repositories import at module level but whose code
the golden scripts never run (Dassl's tensorboard writer, gdown downloads, WILDS datasets, pandas, OpenCV, `imp` which
Python 3.12 removed, pickle5). Each stub module answers every attribute with an empty class, so `from x import y` succeeds."""
import pickle
import sys
import types

class StubModule(types.ModuleType):
    "A module whose every attribute is an empty class."
    def __getattr__(self, name):
        if name.startswith("__"): raise AttributeError(name)
        return type(name, (), {"__init__": lambda self, *a, **k: None})

OPTIONAL = ("imp", "gdown", "wilds", "pandas", "cv2", "torch.utils.tensorboard")

def stub_optional_imports(names=OPTIONAL):
    "Install stubs for `names` that are not importable here (tensorboard's torch shim is always stubbed); pickle5 is pickle."
    import importlib.util
    for name in names:
        if name == "torch.utils.tensorboard" or importlib.util.find_spec(name.split(".")[0]) is None:
            sys.modules[name] = StubModule(name)
    sys.modules.setdefault("pickle5", pickle)

def load_function(path, name):
    "The function `name` defined in the Python file `path`, compiled on its own: the file's module-level imports are not run."
    import ast
    from pathlib import Path
    tree = ast.parse(Path(path).read_text())
    found = [node for node in tree.body if isinstance(node, ast.FunctionDef) and node.name == name]
    if not found: raise LookupError(f"{path} defines no function {name}")
    namespace = {}
    exec(compile(ast.Module(body=found, type_ignores=[]), str(path), "exec"), namespace)
    return namespace[name]
