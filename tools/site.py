"""Build the browsable site of the executed notebooks: nbdev's own (Quarto) where Quarto is installed, else static HTML.

    python tools/site.py            # -> _site/index.html (open it in a browser; no server needed)
    python tools/site.py --nbdev    # insist on nbdev-docs (fails without Quarto)

Without Quarto each notebook becomes one page through nbconvert, as nbdev would show it: nbdev's directive lines and
`#| hide` / `#| default_exp` cells dropped, saved outputs (tables, PNG figures) kept, links between notebooks pointing
at their pages, and a sidebar of every page grouped as the notebooks are numbered."""
import argparse
import html
import re
import shutil
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
GROUPS = {"0": "Foundations", "1": "Prompt learners", "2": "Visual and multi-modal prompts", "3": "Unlabelled, multi-label, multi-task",
          "4": "Adapters and fine-tuning", "5": "Concepts", "6": "Dashboard", "9": "Command line"}
HIDDEN = ("#| hide", "#| default_exp")
STYLE = """<style>
body { margin: 0; }
.ce-sidebar { position: fixed; top: 0; left: 0; bottom: 0; width: 250px; overflow-y: auto; padding: 12px 14px;
              border-right: 1px solid #ddd; background: #fafafa; font: 13px/1.45 system-ui, sans-serif; }
.ce-sidebar h2 { font-size: 15px; margin: 4px 0 10px; } .ce-sidebar h3 { font-size: 11px; text-transform: uppercase; color: #666; margin: 14px 0 4px; }
.ce-sidebar a { display: block; color: #1a4f8b; text-decoration: none; padding: 1px 0; } .ce-sidebar a.ce-current { font-weight: 600; }
.ce-page { margin-left: 280px; max-width: 1100px; padding: 0 20px 60px; }
</style>"""


def notebooks(nbs):
    "Pages in reading order: the index, the numbered notebooks, then each sub-folder's."
    top = sorted(p for p in nbs.glob("*.ipynb") if p.name != "index.ipynb")
    return [nbs / "index.ipynb", *top, *sorted(p for p in nbs.glob("*/*.ipynb") if not p.parent.name.startswith((".", "_")))]


def page_name(nb, nbs): return nb.relative_to(nbs).with_suffix(".html").as_posix()


def group_of(nb, nbs):
    "Sidebar heading of a notebook: its sub-folder, or the family its number belongs to."
    rel = nb.relative_to(nbs)
    if len(rel.parts) > 1: return rel.parts[0].replace("_", " ").capitalize()
    return "Start" if nb.name == "index.ipynb" else GROUPS.get(nb.name[0], "More")


def title_of(notebook, fallback):
    "The notebook's first Markdown heading, else `fallback`."
    for cell in notebook["cells"]:
        if cell["cell_type"] == "markdown":
            found = re.search(r"^#\s+(.+)$", "".join(cell["source"]), flags=re.M)
            if found: return found.group(1).strip()
    return fallback


def for_reading(notebook):
    "The notebook as nbdev shows it: hidden cells dropped, directive lines stripped."
    cells = []
    for cell in notebook["cells"]:
        source = "".join(cell["source"])
        if cell["cell_type"] == "code":
            if any(line.strip().startswith(HIDDEN) for line in source.splitlines()): continue
            source = "\n".join(l for l in source.splitlines() if not l.lstrip().startswith("#|")).strip("\n")
            outputs = [o for o in cell.get("outputs", []) if o.get("output_type") not in ("display_data", "execute_result") or o.get("data")]
            if not source and not outputs: continue
            cell = dict(cell, outputs=outputs)                                     # (an object that displayed itself returns {})
        cells.append(dict(cell, source=source, metadata={}))                   # run metadata is not for readers
    return dict(notebook, cells=cells)


def link_pages(text):
    "Links to sibling notebooks point at their pages."
    return re.sub(r'href="([^":#?]+)\.ipynb(#[^"]*)?"', lambda m: f'href="{m.group(1)}.html{m.group(2) or ""}"', text)


def sidebar(pages, current, depth):
    "The navigation: every page under its group heading, the current one marked."
    up, parts, group = "../" * depth, ['<nav class="ce-sidebar"><h2>clipexplore</h2>'], None
    for name, title, heading in pages:
        if heading != group: parts.append(f"<h3>{html.escape(heading)}</h3>"); group = heading
        mark = ' class="ce-current"' if name == current else ""
        parts.append(f'<a href="{up}{name}"{mark}>{html.escape(title)}</a>')
    return "".join(parts) + "</nav>"


def build_static(nbs, out):
    "One HTML page per notebook under `out`; returns the page names."
    import nbformat
    from nbconvert import HTMLExporter
    exporter = HTMLExporter(template_name="lab", exclude_input_prompt=True, exclude_output_prompt=True)
    sources = notebooks(nbs)
    loaded = {nb: nbformat.read(nb, as_version=4) for nb in sources}
    pages = [(page_name(nb, nbs), title_of(loaded[nb], nb.stem), group_of(nb, nbs)) for nb in sources]
    for nb, (name, title, _) in zip(sources, pages):
        body, _ = exporter.from_notebook_node(nbformat.from_dict(for_reading(loaded[nb])))
        body = link_pages(body).replace("<title>Notebook</title>", f"<title>{html.escape(title)} · clipexplore</title>")
        body = re.sub(r"(<body[^>]*>)", lambda m: m.group(1) + sidebar(pages, name, name.count("/")) + '<div class="ce-page">', body, count=1)
        body = body.replace("</head>", STYLE + "</head>", 1).replace("</body>", "</div></body>", 1)
        (out / name).parent.mkdir(parents=True, exist_ok=True)
        (out / name).write_text(body)
    return [name for name, _, _ in pages]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "_site", help="where the static pages go")
    parser.add_argument("--nbdev", action="store_true", help="use nbdev-docs (needs Quarto)")
    args = parser.parse_args(argv)
    if args.nbdev or shutil.which("quarto"):
        subprocess.run(["nbdev-docs"], cwd=ROOT, check=True); print(f"nbdev's site in {ROOT / '_docs'}"); return
    if args.out.exists(): shutil.rmtree(args.out)
    args.out.mkdir(parents=True)
    pages = build_static(ROOT / "nbs", args.out)
    print(f"{len(pages)} pages in {args.out}; open {args.out / 'index.html'}")


if __name__ == "__main__": main()
