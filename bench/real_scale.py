"""Real scale: ViT-B-16 (random weights, full size) on a generated ImageNet-like JPEG tree, measured in one run.

The tree: CLASSES folders of wnid-like names, SHOTS training JPEGs per class and TEST test JPEGs,
at 500x375 (ImageNet's typical size), decoded and preprocessed by CLIP's eval transform.
Phases, each in its own process (so that its peak memory is its own), with 0 loader workers and
with the default (`default_workers`):
- encode:    the training shots and the test images through the image tower (what the feature cache holds);
- coop:      CoOp (n_ctx 16) fitted on the cached 16-shot features, then evaluated on the cached test features;
- vpt-epoch: one VPT epoch (8 tokens, first layer) on the raw training images, with Dassl's augmentation.
Printed as a table of wall time, images/s and peak memory (RSS, and CUDA when present), with ratios,
and the per-image costs that extrapolate to ImageNet (1.28 M training / 50 k validation images).

The default size is small enough for a 2-core CPU (a few minutes); the issue's size is
python bench/real_scale.py --classes 100 --shots 16 --test 2000
"""
import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

IMAGENET_TRAIN, IMAGENET_VAL = 1_281_167, 50_000


def make_tree(root, classes, shots, test, size=(500, 375)):
    "root/train/<wnid>/ and root/test/<wnid>/ of textured JPEGs (quality 90)."
    rng = np.random.default_rng(0)
    for split, per_class in (("train", shots), ("test", -(-test // classes))):
        for c in range(classes):
            folder = root / split / f"n{c:08d}"; folder.mkdir(parents=True, exist_ok=True)
            for i in range(per_class):
                base = rng.integers(0, 255, (size[1] // 25, size[0] // 25, 3), dtype=np.uint8)
                pixels = np.kron(base, np.ones((25, 25, 1), dtype=np.uint8)) + rng.integers(0, 16, (size[1], size[0], 3), dtype=np.uint8)
                Image.fromarray(pixels).save(folder / f"{c}_{i}.JPEG", quality=90)
    return root


def peak_memory():
    "Peak RSS of this process in MiB, and CUDA's peak allocation if there is a GPU."
    import torch
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return rss, (torch.cuda.max_memory_allocated() / 2**20 if torch.cuda.is_available() else None)


def run_phase(phase, root, workers, batch_size):
    "One phase in this process; returns its measurements."
    import torch
    from clipexplore.backbone import load_clip
    from clipexplore.data import image_folder_records
    from clipexplore.engine import FeatureDataset, Trainer, coop_train_transform, evaluate
    torch.manual_seed(0)
    clip = load_clip("ViT-B-16", pretrained=None)
    train_records = image_folder_records(Path(root) / "train", check=False)
    test_records = image_folder_records(Path(root) / "test", check=False)
    train, test = train_records.dataset(clip.preprocess), test_records.dataset(clip.preprocess)
    t0 = time.perf_counter()
    if phase == "encode":
        FeatureDataset.encode(clip, train, batch_size=batch_size, num_workers=workers)
        FeatureDataset.encode(clip, test, batch_size=batch_size, num_workers=workers)
        images = len(train) + len(test)
    elif phase == "coop":
        from clipexplore.methods.coop import CoOp
        cached_train = FeatureDataset.encode(clip, train, batch_size=batch_size, num_workers=workers)
        cached_test = FeatureDataset.encode(clip, test, batch_size=batch_size, num_workers=workers)
        t0 = time.perf_counter()                                            # the fit and evaluation alone
        coop = CoOp(clip, train.classes, n_ctx=16)
        Trainer(coop, cached_train, epochs=2, batch_size=32, progress=False).fit()
        accuracy = evaluate(coop, cached_test).where(domain="mean")[0]["accuracy"]
        images = 2 * len(train) + len(test)
    elif phase == "vpt-epoch":
        from clipexplore.methods.vpt import VPT
        vpt = VPT(clip, train.classes, n_tokens=8, depth=1)
        raw = train_records.dataset(coop_train_transform(clip.image_size[0]))
        Trainer(vpt, raw, epochs=1, batch_size=batch_size, warmup_epochs=0, progress=False, num_workers=workers).fit()
        images = len(raw) // batch_size * batch_size
    seconds = time.perf_counter() - t0
    rss, cuda = peak_memory()
    return dict(phase=phase, workers=workers, seconds=seconds, images=images, rss_mib=rss, cuda_mib=cuda,
                device=str(clip.device), threads=torch.get_num_threads())


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--classes", type=int, default=10); p.add_argument("--shots", type=int, default=4)
    p.add_argument("--test", type=int, default=100); p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--phases", default="encode,coop,vpt-epoch")
    p.add_argument("--phase"); p.add_argument("--root"); p.add_argument("--workers", type=int)     # one phase (internal)
    args = p.parse_args()
    if args.phase:
        print(json.dumps(run_phase(args.phase, args.root, args.workers, args.batch_size))); return
    from clipexplore.metrics import default_workers, usable_cpus
    with tempfile.TemporaryDirectory() as tmp:
        root = make_tree(Path(tmp), args.classes, args.shots, args.test)
        from clipexplore.data import image_folder_records
        default = default_workers(image_folder_records(root / "train", check=False).dataset())
        rows = []
        for phase in args.phases.split(","):
            for workers in (0, default):
                out = subprocess.run([sys.executable, __file__, "--phase", phase, "--root", str(root), "--workers", str(workers),
                                      "--batch-size", str(args.batch_size)], capture_output=True, text=True, check=True)
                rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
                print(f"  {phase} with {workers} workers: {rows[-1]['seconds']:.1f} s", file=sys.stderr)
    print(f"ViT-B-16 (random weights) on {rows[0]['device']}, {rows[0]['threads']} threads, {usable_cpus()} usable CPUs; "
          f"{args.classes} classes x {args.shots} shots + {args.test} test JPEGs at 500x375; batch {args.batch_size}")
    print(f"{'phase':<11}{'workers':>8}{'seconds':>9}{'images/s':>10}{'peak RSS MiB':>14}{'peak CUDA MiB':>15}{'vs 0 workers':>14}")
    for r in rows:
        base = next(b for b in rows if b["phase"] == r["phase"] and b["workers"] == 0)
        cuda = f"{r['cuda_mib']:.0f}" if r["cuda_mib"] is not None else "-"
        print(f"{r['phase']:<11}{r['workers']:>8}{r['seconds']:>9.1f}{r['images'] / r['seconds']:>10.1f}{r['rss_mib']:>14.0f}"
              f"{cuda:>15}{base['seconds'] / r['seconds']:>13.2f}x")
    enc = min((r for r in rows if r["phase"] == "encode"), key=lambda r: r["seconds"], default=None)
    if enc:
        per = enc["seconds"] / enc["images"]
        print(f"extrapolated with the faster encoding ({per * 1000:.0f} ms per image here): ImageNet's train set "
              f"{IMAGENET_TRAIN * per / 3600:.1f} h, its validation set {IMAGENET_VAL * per / 3600:.2f} h, once (the cache keeps them)")


if __name__ == "__main__":
    main()
