"""What every golden-reference script shares: the seeded backbone both sides run, an official repository unpacked
from its local git mirror, and writing reference tensors with their provenance to `tests/golden/`.

The scripts run official code only at run time, from a mirror whose path is passed on the command line; nothing of
that code is copied into this project, and no machine path is written into a reference."""
import contextlib
import functools
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import open_clip
import torch

ROOT = Path(__file__).resolve().parents[2]
GOLDEN_DIR = ROOT / "tests" / "golden"

# A small ViT with OpenAI CLIP's conventions (QuickGELU, 64-wide heads, 77-token context, OpenAI's BPE), so that the
# official repositories' vendored `clip/model.py` builds the same network from the same state dict. Vision width 768
# because MaPLe, IVLP and PromptSRC hard-code it.
GOLDEN_CLIP_CONFIG = dict(
    embed_dim=256,
    vision_cfg=dict(image_size=96, patch_size=32, width=768, layers=4, head_width=64),
    text_cfg=dict(context_length=77, vocab_size=49408, width=512, heads=8, layers=4),
    quick_gelu=True,
)
GOLDEN_CLASSNAMES = ["dog", "sea turtle", "alarm clock", "red fox", "pizza", "golden retriever", "tram", "daisy"]

def golden_state_dict(seed=0):
    "The backbone's weights: every entry filled from one seeded generator in sorted key order (independent of open_clip's init)."
    model = open_clip.model.CLIP(embed_dim=GOLDEN_CLIP_CONFIG["embed_dim"],
                                 vision_cfg=open_clip.model.CLIPVisionCfg(**GOLDEN_CLIP_CONFIG["vision_cfg"]),
                                 text_cfg=open_clip.model.CLIPTextCfg(**GOLDEN_CLIP_CONFIG["text_cfg"]),
                                 quick_gelu=True)
    g = torch.Generator().manual_seed(seed)
    state = {}
    for key, value in sorted(model.state_dict().items()):
        name = key.split(".")[-2] if key.count(".") else ""
        noise = torch.randn(value.shape, generator=g, dtype=torch.float32)
        if key == "logit_scale": state[key] = torch.tensor(4.6052, dtype=torch.float32)       # log(100)
        elif name.startswith("ln"): state[key] = (1.0 if key.endswith("weight") else 0.0) + 0.1 * noise
        elif key.endswith(("class_embedding", "positional_embedding")): state[key] = noise * value.shape[-1] ** -0.5
        elif key.endswith(("visual.proj", "text_projection")): state[key] = noise * value.shape[0] ** -0.5
        else: state[key] = noise * 0.02
    return model, state

def golden_open_clip(seed=0):
    "The open_clip model with the golden weights, fp32, eval mode."
    model, state = golden_state_dict(seed)
    model.load_state_dict(state)
    return model.eval()

def golden_clip(seed=0):
    "clipexplore's frozen `CLIP` wrapper around the golden backbone (CPU, fp32)."
    from clipexplore.backbone import CLIP
    size = GOLDEN_CLIP_CONFIG["vision_cfg"]["image_size"]
    return CLIP(golden_open_clip(seed), open_clip.tokenizer.SimpleTokenizer(context_length=77),
                open_clip.image_transform(size, is_train=False), name="golden")

def golden_images(n=4, seed=0):
    "Seeded inputs in CLIP-normalised space [n, 3, 96, 96]."
    size = GOLDEN_CLIP_CONFIG["vision_cfg"]["image_size"]
    return torch.randn(n, 3, size, size, generator=torch.Generator().manual_seed(1000 + seed))

def backbone_fingerprint(state):
    "A few numbers that change if the backbone's weights change: stored with each reference and checked by the tests."
    keys = ["token_embedding.weight", "visual.conv1.weight", "visual.ln_pre.weight", "transformer.resblocks.0.attn.in_proj_weight"]
    return {k: round(float(state[k].double().abs().sum()), 6) for k in keys}

def official_state_dict(seed=0):
    "The golden weights keyed as OpenAI's `clip/model.py` expects (open_clip keeps OpenAI's names)."
    return dict(golden_state_dict(seed)[1])

def build_official(model_module, seed=0, **kwargs):
    "An official repository's vendored CLIP built from the golden weights, kept in fp32 (its `build_model` casts to fp16)."
    state = official_state_dict(seed)
    model = model_module.build_model(dict(state), **kwargs).float()
    model.load_state_dict(state, strict=False)
    missing = [k for k in state if k not in model.state_dict()]
    if missing: raise RuntimeError(f"official model lacks golden keys {missing[:3]}")
    return model.eval()

def mirror_provenance(mirror):
    "owner/name and the commit of a mirror made by the search tool's fetch (folder `owner+name/repo`)."
    mirror = Path(mirror)
    repo = (mirror.parent.name if mirror.name in ("repo", "repo.git") else mirror.name).replace("+", "/", 1)
    commit = subprocess.run(["git", "-C", str(mirror), "rev-parse", "HEAD"], capture_output=True, text=True, check=True).stdout.strip()
    return repo, commit

def present_files(mirror):
    "Paths of HEAD whose blobs the mirror holds (a fetched mirror may lack large binaries such as PDFs and figures)."
    listing = subprocess.run(["git", "-C", str(mirror), "ls-tree", "-r", "HEAD"], capture_output=True, text=True, check=True).stdout
    entries = [line.split("\t", 1) for line in listing.splitlines()]
    query = "".join(meta.split()[2] + "\n" for meta, _ in entries)
    answers = subprocess.run(["git", "-C", str(mirror), "cat-file", "--batch-check"], input=query, capture_output=True, text=True).stdout
    return [path for (_, path), answer in zip(entries, answers.splitlines()) if not answer.endswith("missing")]

@contextlib.contextmanager
def official_checkout(mirror, *also):
    "Unpack the present files of the mirror's HEAD (and of any further mirrors) into a temporary folder first on `sys.path`."
    with tempfile.TemporaryDirectory() as tmp:
        roots = []
        for i, m in enumerate((mirror, *also)):
            root = Path(tmp) / str(i); root.mkdir()
            archive = subprocess.run(["git", "-C", str(m), "archive", "HEAD", "--", *present_files(m)], capture_output=True, check=True).stdout
            subprocess.run(["tar", "-x", "-C", str(root)], input=archive, check=True)
            roots.append(root)
        sys.path[:0] = [str(r) for r in roots]
        saved = dict(sys.modules)
        try: yield roots if also else roots[0]
        finally:
            for r in roots:
                if str(r) in sys.path: sys.path.remove(str(r))
            for k in list(sys.modules):
                if k not in saved: del sys.modules[k]

def save_golden(name, tensors, mirror, files, script, meta=None, seed=0):
    "Write `tests/golden/{name}.safetensors` and its `.json` provenance (repository, commit, files, script, backbone)."
    from safetensors.torch import save_file
    repo, commit = mirror_provenance(mirror)
    GOLDEN_DIR.mkdir(parents=True, exist_ok=True)
    save_file({k: v.detach().float().contiguous().cpu() if v.is_floating_point() else v.detach().contiguous().cpu()
               for k, v in tensors.items()}, str(GOLDEN_DIR / f"{name}.safetensors"))
    info = dict(name=name, repo=repo, commit=commit, files=list(files), script=f"tools/golden/{Path(script).name}",
                backbone=dict(config=GOLDEN_CLIP_CONFIG, seed=seed, fingerprint=backbone_fingerprint(golden_state_dict(seed)[1])),
                meta=meta or {})
    (GOLDEN_DIR / f"{name}.json").write_text(json.dumps(info, indent=1) + "\n")
    print(f"wrote tests/golden/{name}.safetensors ({len(tensors)} tensors) from {repo}@{commit[:8]}")

# Test side

FLOOR_MULTIPLE = 20       # a reference passes within this many times the backbone's own floor (open_clip vs vendored CLIP)

@functools.lru_cache(maxsize=None)
def golden_fingerprint(seed):
    "The fingerprint of the golden weights of `seed` (built once per process)."
    return backbone_fingerprint(golden_state_dict(seed)[1])

def load_golden(name):
    "A reference's tensors and provenance; fails clearly if the golden backbone no longer has the recorded weights."
    from safetensors.torch import load_file
    path = GOLDEN_DIR / f"{name}.safetensors"
    if not path.exists(): raise FileNotFoundError(f"{path.name}: run tools/golden/{name.split('_')[0]}*.py with the official mirror")
    info = json.loads((GOLDEN_DIR / f"{name}.json").read_text())
    now = golden_fingerprint(info["backbone"]["seed"])
    if now != info["backbone"]["fingerprint"]:
        raise AssertionError(f"{name}: the golden backbone's weights changed ({now} vs {info['backbone']['fingerprint']}); regenerate")
    return load_file(str(path)), info

def backbone_floor():
    "Relative difference of zero-shot logits between open_clip and the official vendored CLIP on the golden weights."
    return json.loads((GOLDEN_DIR / "floor.json").read_text())["meta"]["relative_floor"]

def relative_difference(ours, reference):
    "max |ours - reference| / max |reference|."
    ours, reference = ours.detach().double().cpu(), reference.detach().double().cpu()
    if ours.shape != reference.shape: raise AssertionError(f"shape {tuple(ours.shape)} != reference {tuple(reference.shape)}")
    return float((ours - reference).abs().max() / reference.abs().max().clamp_min(1e-30))

def assert_golden(ours, reference, method, quantity, multiple=FLOOR_MULTIPLE):
    "Assert `ours` equals the official `reference` within `multiple` times the backbone floor; returns the ratio to the floor."
    floor = backbone_floor()
    ratio = relative_difference(ours, reference) / floor
    report = os.environ.get("CLIPEXPLORE_GOLDEN_REPORT")          # tools/golden/fidelity_table.py collects the ratios
    if report:
        with open(report, "a") as f: f.write(json.dumps(dict(method=method, quantity=quantity, ratio=ratio)) + "\n")
    assert ratio <= multiple, f"{method}, {quantity}: {ratio:.1f} times the backbone floor ({floor:.2e}); allowed {multiple}"
    return ratio
