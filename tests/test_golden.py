"""The golden-reference harness itself: the backbone floor, and every reference's provenance.

The per-family comparisons live beside this file in `test_golden_<family>.py`; each reference in `tests/golden/` was
written by a script in `tools/golden/` that ran the official repository's own code (see the README's fidelity table)."""
import json
import re
import sys
from pathlib import Path

import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from tools.golden.common import GOLDEN_CLASSNAMES, GOLDEN_DIR, backbone_floor, golden_clip, golden_images, load_golden, relative_difference

REFERENCES = sorted(p.stem for p in GOLDEN_DIR.glob("*.json") if p.stem not in ("deviations", "fidelity"))


def test_zero_shot_logits_sit_at_the_recorded_floor():
    "Our zero-shot logits differ from the official vendored CLIP's by exactly the recorded floor: the backbone wrapper has not drifted."
    reference, info = load_golden("floor")
    clip = golden_clip()
    with torch.no_grad():
        image = F.normalize(clip.encode_image(golden_images()), dim=-1)
        text = F.normalize(clip.encode_text(info["meta"]["texts"]), dim=-1)
    difference = relative_difference(clip.logit_scale * image @ text.t(), reference["logits"])
    assert difference <= max(2 * backbone_floor(), 5e-6)             # float summation order differs between CPUs (1.3e-6 vs 2.0e-6 seen)
    assert backbone_floor() < 1e-5                                  # fp32 on CPU: any real disagreement is far above this


def test_every_reference_names_its_source_and_no_machine_path():
    for name in REFERENCES:
        text = (GOLDEN_DIR / f"{name}.json").read_text()
        info = json.loads(text)
        assert re.fullmatch(r"[\w.-]+/[\w.-]+", info["repo"]), name
        assert re.fullmatch(r"[0-9a-f]{40}", info["commit"]), name
        assert info["files"] and (ROOT / info["script"]).is_file(), name
        assert not re.search(r"/(work|tmp|root|home)/", text), f"{name}.json holds a machine path"


def test_every_reference_is_checked_by_a_test():
    tests = "".join(p.read_text() for p in (ROOT / "tests").glob("test_golden_*.py"))
    def read(name):              # by its name, or as a parametrised f"{family}_{variant}" whose variant is listed
        family, _, variant = name.rpartition("_")
        return f'"{name}"' in tests or (f'{family}_{{' in tests and f'"{variant}"' in tests)
    unused = [n for n in REFERENCES if n != "floor" and not read(n)]
    assert not unused, f"references no test reads: {unused}"


def test_references_stay_small():
    total = sum(p.stat().st_size for p in GOLDEN_DIR.iterdir())
    assert total < 8 * 2**20, f"tests/golden holds {total / 2**20:.1f} MiB"


def test_the_readme_table_lists_every_method_with_its_source():
    "deviations.json names every method the golden tests compare (and the ones without official code); index.ipynb shows each."
    deviations = json.loads((GOLDEN_DIR / "deviations.json").read_text())
    tests = "".join(p.read_text() for p in (ROOT / "tests").glob("test_golden_*.py"))
    compared = set(re.findall(r'assert_golden\([^\n]*?, "([^"]+)", f?"', tests))
    assert compared and compared <= set(deviations), f"compared but not in deviations.json: {sorted(compared - set(deviations))}"
    for method, info in deviations.items():
        assert info.get("official", True) == bool(info.get("references")), method
        assert all((GOLDEN_DIR / f"{r}.json").exists() for r in info.get("references", [])), method
    index = (ROOT / "nbs" / "index.ipynb").read_text()
    missing = [m for m in deviations if f"| {m} (`{deviations[m]['notebook']}`) |" not in index]
    assert not missing, f"the fidelity table in index.ipynb lacks {missing}: run tools/golden/fidelity_table.py --write"
