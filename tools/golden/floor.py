"""The backbone floor: zero-shot logits of open_clip and of the official vendored OpenAI CLIP on the same golden weights.

    python tools/golden/floor.py MIRROR_OF_KaiyangZhou/CoOp

Every other reference is compared within a small multiple of this relative difference."""
import sys
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from tools.golden.common import GOLDEN_CLASSNAMES, build_official, golden_clip, golden_images, official_checkout, save_golden

def official_zero_shot(mirror, images, texts):
    "Logits of the official repository's own CLIP forward."
    with official_checkout(mirror):
        from clip import clip, model as clip_model
        model = build_official(clip_model)
        with torch.no_grad():
            logits, _ = model(images, clip.tokenize(texts))
    return logits

def ours_zero_shot(images, texts):
    clip = golden_clip()
    with torch.no_grad():
        image = F.normalize(clip.encode_image(images), dim=-1)
        text = F.normalize(clip.encode_text(texts), dim=-1)
    return clip.logit_scale * image @ text.t()

if __name__ == "__main__":
    mirror = sys.argv[1]
    images, texts = golden_images(), [f"a photo of a {c}." for c in GOLDEN_CLASSNAMES]
    official, ours = official_zero_shot(mirror, images, texts), ours_zero_shot(images, texts)
    absolute = float((official - ours).abs().max())
    relative = absolute / float(official.abs().max())
    print(f"floor: max |logit difference| {absolute:.2e}, relative {relative:.2e}")
    save_golden("floor", dict(logits=official), mirror, ["clip/model.py", "clip/clip.py"], __file__,
                meta=dict(texts=texts, absolute_floor=absolute, relative_floor=max(relative, 1e-7)))
