"""Text encoding cut at the longest EOT versus the full 77 tokens, measured in one run.

ViT-B-32 architecture with random weights, 10 class prompts "a photo of a {class}.", CPU.
python bench/text_truncation.py [repeats]
"""
import sys
import time

import torch

from clipexplore.backbone import load_clip

CLASSES = ["circle", "square", "triangle", "star", "heart", "cross", "diamond", "ring", "hexagon", "crescent"]


def timed(fn, repeats):
    fn()
    t0 = time.perf_counter()
    for _ in range(repeats): out = fn()
    return (time.perf_counter() - t0) / repeats, out


if __name__ == "__main__":
    repeats = int(sys.argv[1]) if len(sys.argv) > 1 else 10
    torch.manual_seed(0)
    clip = load_clip("ViT-B-32", pretrained=None, device="cpu")
    emb, eot = clip.embed_tokens([f"a photo of a {c}." for c in CLASSES])
    with torch.no_grad():
        full_s, full = timed(lambda: clip.encode_embeddings(emb, eot, truncate=False), repeats)
        cut_s, cut = timed(lambda: clip.encode_embeddings(emb, eot), repeats)
    print(f"sequence length: 77 -> {int(eot.max()) + 1}")
    print(f"full 77 tokens: {full_s * 1e3:.1f} ms   truncated: {cut_s * 1e3:.1f} ms   speed-up {full_s / cut_s:.1f}x")
    print(f"max |difference| of the text features: {(full - cut).abs().max().item():.2e}")
