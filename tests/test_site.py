"The static site of the executed notebooks (tools/site.py, used where Quarto is missing): every page built, linked, and readable in Chromium."
import importlib.util
import re
from pathlib import Path

import pytest

from test_browser import chromium_page

ROOT = Path(__file__).resolve().parents[1]


def site_tool():
    spec = importlib.util.spec_from_file_location("site_tool", ROOT / "tools" / "site.py")
    module = importlib.util.module_from_spec(spec); spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    out = tmp_path_factory.mktemp("site")
    return out, site_tool().build_static(ROOT / "nbs", out)


def test_every_notebook_has_a_page_and_every_link_resolves(site):
    out, pages = site
    notebooks = {p.relative_to(ROOT / "nbs").with_suffix(".html").as_posix() for p in (ROOT / "nbs").rglob("*.ipynb")
                 if ".ipynb_checkpoints" not in p.parts}
    assert set(pages) == notebooks and pages[0] == "index.html"
    for name in pages:
        text = (out / name).read_text()
        for target in re.findall(r'(?:href|src)="([^"#?]+)', text):
            if re.match(r"[a-z]+:|//", target): continue                                   # CDN, data: URIs
            assert (out / name).parent.joinpath(target).resolve().is_file(), f"{name} links to missing {target}"
        assert not re.search(r'<span class="c1">#\|', text), f"{name} shows nbdev directives in its code"


def test_a_method_page_reads_with_its_results_in_chromium(site):
    out, _ = site
    with chromium_page(1400, 1000) as page:
        page.goto((out / "11_coop.html").as_uri())
        assert page.title() == "CoOp · clipexplore" and page.locator("h1").first.inner_text().startswith("CoOp")
        page.wait_for_function("[...document.images].some(i => i.complete && i.naturalWidth > 300)")   # the dashboard PNG decoded
        assert page.locator(".jp-OutputArea table").count() >= 2                                     # results as HTML tables
        assert page.locator(".ce-sidebar a.ce-current").inner_text() == "CoOp"
        page.locator(".ce-sidebar a", has_text="CoCoOp").click()
        page.wait_for_url("**/12_cocoop.html")
        assert page.locator("h1").first.inner_text().startswith("CoCoOp")
