"""Write README.md from nbs/index.ipynb, as `nbdev-readme` does, without needing Quarto.

Usage: python tools/readme.py [--check]   (--check: exit 1 if README.md is out of date)
"""
import json, sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

def _directives(source):
    return {line[3:].strip().split()[0] for line in source.splitlines() if line.startswith("#| ") and line[3:].strip()}

def _code(source):
    return "\n".join(line for line in source.splitlines() if not line.startswith("#|")).strip()

def _outputs(cell):
    for out in cell.get("outputs", []):
        data = out.get("data", {})
        if "text/markdown" in data: yield "".join(data["text/markdown"])
        elif "text/plain" in data: yield "```\n" + "".join(data["text/plain"]).rstrip() + "\n```"
        elif out.get("output_type") == "stream": yield "```\n" + "".join(out["text"]).rstrip() + "\n```"

def render_readme(nb_path=ROOT / "nbs" / "index.ipynb"):
    "The README text for a notebook: markdown as is, visible code fenced, with its text outputs."
    parts = ["<!-- WARNING: generated from nbs/index.ipynb by tools/readme.py (or nbdev-readme): edit the notebook -->"]
    for cell in json.loads(Path(nb_path).read_text())["cells"]:
        source = "".join(cell["source"])
        if cell["cell_type"] == "markdown": parts.append(source.strip()); continue
        if _directives(source) & {"hide", "exporti", "export", "exports"}: continue
        if _code(source): parts.append("```python\n" + _code(source) + "\n```")
        parts.extend(_outputs(cell))
    return "\n\n".join(parts) + "\n"

if __name__ == "__main__":
    text, readme = render_readme(), ROOT / "README.md"
    if "--check" in sys.argv:
        if not readme.exists() or readme.read_text() != text:
            sys.exit("README.md is out of date with nbs/index.ipynb: run `python tools/readme.py`")
    else: readme.write_text(text)
