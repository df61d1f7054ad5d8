"""One CoOp (and CoCoOp) training step, the official way versus clipexplore's, measured in one run.

ViT-B-32 architecture with random weights, 10 classes, n_ctx 4, CPU, fp32; batch 32 for CoOp and
batch 1 for CoCoOp (their official configs).
Naive (as the official code): image encoder every step, text encoder over all 77 tokens.
clipexplore: image features cached once, text sequences cut at the longest EOT.
Target: at least 10x faster for CoOp, logits equal to 1e-4.

python bench/coop_step.py [steps]
"""
import copy
import sys
import time

import torch
import torch.nn.functional as F

from clipexplore.backbone import load_clip
from clipexplore.methods.cocoop import CoCoOp
from clipexplore.methods.coop import CoOp

CLASSES = ["circle", "square", "triangle", "star", "heart", "cross", "diamond", "ring", "hexagon", "crescent"]


def naive_encode_embeddings(clip):
    "The text tower over all 77 tokens, as the official CoOp code runs it."
    return lambda emb, eot, deep_prompts=None, truncate=True: type(clip).encode_embeddings(clip, emb, eot, deep_prompts, truncate=False)


def step_seconds(method, batch, labels, steps):
    "Mean seconds of forward + backward + SGD step over `steps` steps (after one warm-up step)."
    opt = torch.optim.SGD([p for p in method.parameters() if p.requires_grad], lr=0.002, momentum=0.9)
    def step():
        opt.zero_grad()
        loss = F.cross_entropy(method.logits(batch), labels)
        loss.backward(); opt.step()
    step()
    t0 = time.perf_counter()
    for _ in range(steps): step()
    return (time.perf_counter() - t0) / steps


def compare(make, clip, images, labels, steps):
    "Time the naive and the clipexplore step of the method `make` builds; return (speed-up, max logit difference)."
    torch.manual_seed(0); ours = make()
    torch.manual_seed(0); naive = make()
    naive.clip = copy.copy(clip)                                   # the same frozen model, another text path
    naive.clip.encode_embeddings = naive_encode_embeddings(clip)
    with torch.no_grad(): cached = F.normalize(clip.encode_image(images), dim=-1)
    with torch.no_grad():
        diff = (naive.logits(dict(image=images)) - ours.logits(dict(image_features=cached))).abs().max().item()
    t_naive = step_seconds(naive, dict(image=images), labels, steps)
    t_ours = step_seconds(ours, dict(image_features=cached), labels, steps)
    return t_naive, t_ours, diff


if __name__ == "__main__":
    steps = int(sys.argv[1]) if len(sys.argv) > 1 else 3
    torch.set_num_threads(2)
    torch.manual_seed(0)
    clip = load_clip("ViT-B-32", pretrained=None, device="cpu")
    images, labels = torch.randn(32, 3, 224, 224), torch.arange(32) % len(CLASSES)
    cases = [("CoOp", lambda: CoOp(clip, CLASSES, n_ctx=4), 32), ("CoCoOp", lambda: CoCoOp(clip, CLASSES, n_ctx=4, ctx_init=None), 1)]
    for name, make, batch in cases:
        t_naive, t_ours, diff = compare(make, clip, images[:batch], labels[:batch], steps)
        print(f"{name:>6} (batch {batch:2d}): naive {t_naive * 1e3:8.1f} ms/step   clipexplore {t_ours * 1e3:7.1f} ms/step   "
              f"speed-up {t_naive / t_ours:5.1f}x   max |logit difference| {diff:.1e}")
