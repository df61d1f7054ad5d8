"""The fidelity table of the README: run the golden tests, collect each comparison's ratio to the backbone floor,
and write one markdown row per method with its official source (repository @ commit, read from the provenance of
the references its tests compare with) and its documented deviations (`tests/golden/deviations.json`).

    python tools/golden/fidelity_table.py            # writes tests/golden/fidelity.json and prints the table
    python tools/golden/fidelity_table.py --write    # ... and puts the table into nbs/index.ipynb (then tools/readme.py)"""
import collections
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from tools.golden.common import GOLDEN_DIR, ROOT

HEADING = "## Fidelity to the official code"
INDEX = ROOT / "nbs" / "index.ipynb"

def collect_ratios():
    "Run the golden tests with reporting on; (method, quantity, ratio) for every comparison that passed or failed."
    with tempfile.NamedTemporaryFile("r", suffix=".jsonl") as report:
        env = dict(os.environ, CLIPEXPLORE_GOLDEN_REPORT=report.name)
        files = sorted(str(p.relative_to(ROOT)) for p in (ROOT / "tests").glob("test_golden*.py"))
        subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *files], cwd=ROOT, env=env, check=False)
        return [json.loads(line) for line in Path(report.name).read_text().splitlines()]

def source_of(references):
    "'repo@commit' of each reference file named (its provenance JSON), deduplicated."
    found = []
    for name in references:
        info = json.loads((GOLDEN_DIR / f"{name}.json").read_text())
        entry = f"{info['repo']}@{info['commit'][:7]}"
        if entry not in found: found.append(entry)
    return ", ".join(found)

def fidelity_rows(ratios, deviations):
    "One row per method: source, how many quantities were compared, the worst ratio to the floor, deviations."
    by_method = collections.defaultdict(list)
    for r in ratios: by_method[r["method"]].append(r)
    unknown = set(by_method) - set(deviations)
    if unknown: raise KeyError(f"methods compared but missing from deviations.json: {sorted(unknown)}")
    rows = []
    for method, info in deviations.items():
        rs = by_method.get(method, [])
        if info.get("official", True) and not rs: raise ValueError(f"{method}: has official code but no golden comparison ran")
        worst = max(rs, key=lambda r: r["ratio"]) if rs else None
        rows.append(dict(method=method, notebook=info["notebook"], source=source_of(info.get("references", [])),
                         compared=len(rs), worst=worst["ratio"] if worst else None,
                         worst_quantity=worst["quantity"] if worst else "", deviations=info["deviations"]))
    return sorted(rows, key=lambda r: (r["compared"] == 0, r["method"].lower()))

def markdown_table(rows):
    "The README's table: method | official source | forward equal (worst difference / floor) | deviations."
    lines = ["| method | official source (repo @ commit) | equal to official: worst difference / floor (quantities) | documented deviations |",
             "|---|---|---|---|"]
    for r in rows:
        equal = f"{r['worst']:.2g}x ({r['compared']}; worst: {r['worst_quantity']})" if r["compared"] else "no official code"
        lines.append(f"| {r['method']} (`{r['notebook']}`) | {r['source'] or '-'} | {equal} | {r['deviations']} |")
    return "\n".join(lines)

def index_cell(rows, floor):
    "The markdown cell of nbs/index.ipynb that holds the table."
    return (f"{HEADING}\n\nEvery method with official code is run beside that code (read at run time from a mirror of its repository) "
            "on one small seeded CLIP with identical weights and inputs; `tests/test_golden*.py` compare logits, loss terms, "
            "gradients and schedules with the references in `tests/golden/`. The floor is what plain zero-shot CLIP differs by "
            f"between open_clip and the official code's vendored CLIP on those weights (relative {floor:.2g}); a comparison "
            "passes within 20 times it. Regenerate with `python tools/golden/fidelity_table.py --write`.\n\n" + markdown_table(rows))

def write_index(text):
    "Replace (or append) the fidelity cell of nbs/index.ipynb."
    nb = json.loads(INDEX.read_text())
    cell = dict(cell_type="markdown", id="fidelity", metadata={}, source=text.splitlines(keepends=True))
    at = [i for i, c in enumerate(nb["cells"]) if "".join(c["source"]).startswith(HEADING)]
    if at: nb["cells"][at[0]] = cell
    else: nb["cells"].append(cell)
    INDEX.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + "\n")

if __name__ == "__main__":
    deviations = json.loads((GOLDEN_DIR / "deviations.json").read_text())
    rows = fidelity_rows(collect_ratios(), deviations)
    (GOLDEN_DIR / "fidelity.json").write_text(json.dumps(rows, indent=1) + "\n")
    text = index_cell(rows, json.loads((GOLDEN_DIR / "floor.json").read_text())["meta"]["relative_floor"])
    print(text)
    if "--write" in sys.argv: write_index(text)
