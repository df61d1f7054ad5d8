"""Decode + preprocess throughput of the raw-image pipeline, measured in one run.

A generated tree of 224 px JPEGs (CLASSES x PER_CLASS), read through clipexplore's own path
(`image_folder_records` -> `RecordDataset` with CLIP's eval transform -> `data_loader`):
- 0 workers: everything in the main process, as before;
- the default (`default_workers`: one per usable CPU, at most 8);
- the machine's limit: the same decoding in that many plain processes (multiprocessing.Pool,
  no DataLoader, no collation, no transfer back), the most these CPUs can decode.
Printed as images/s and ratios. No model runs: this is the CPU side a GPU waits on.

python bench/data_pipeline.py [images]
"""
import multiprocessing as mp
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image


def make_tree(root, n, size=224, classes=10):
    "n random-texture JPEGs of `size` px under root/<class>/ (quality 90, like a photo dataset)."
    rng = np.random.default_rng(0)
    for i in range(n):
        folder = root / f"class_{i % classes:02d}"; folder.mkdir(parents=True, exist_ok=True)
        base = rng.integers(0, 255, (size // 8, size // 8, 3), dtype=np.uint8)
        pixels = np.kron(base, np.ones((8, 8, 1), dtype=np.uint8)) + rng.integers(0, 20, (size, size, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(folder / f"{i:05d}.jpg", quality=90)
    return root


def eval_transform():
    "CLIP's eval preprocessing at 224 px (resize, centre crop, to tensor, normalise), as open_clip builds it."
    import open_clip
    return open_clip.image_transform(224, is_train=False)


def loader_rate(dataset, workers, batch_size=32):
    "Images/s through `data_loader` with `workers` (after the workers have started: first batch excluded)."
    from clipexplore.metrics import data_loader
    loader = data_loader(dataset, "cpu", workers, batch_size=batch_size, shuffle=False)
    it = iter(loader); first = next(it)
    t0, n = time.perf_counter(), 0
    for batch in it: n += len(batch["image"])
    return n / (time.perf_counter() - t0), len(first["image"])


def _decode_share(args):
    paths, = args
    from clipexplore.data import load_image
    transform = eval_transform()
    for p in paths: transform(load_image(p))
    return len(paths)


def limit_rate(paths, processes):
    "Images/s of the same decode + preprocess in `processes` plain processes (pool started before the clock)."
    with mp.get_context("fork").Pool(processes) as pool:
        pool.map(_decode_share, [(paths[:2],)] * processes)                       # warm: imports, transform built
        shares = [(paths[i::processes],) for i in range(processes)]
        t0 = time.perf_counter()
        n = sum(pool.map(_decode_share, shares))
        return n / (time.perf_counter() - t0)


if __name__ == "__main__":
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 800
    torch.set_num_threads(1)
    from clipexplore.data import image_folder_records
    from clipexplore.metrics import default_workers, usable_cpus
    with tempfile.TemporaryDirectory() as tmp:
        records = image_folder_records(make_tree(Path(tmp), n), check=False)
        dataset = records.dataset(eval_transform())
        workers = default_workers(dataset)
        paths = [r.image for r in records.records]
        serial, _ = loader_rate(dataset, 0)
        default, _ = loader_rate(dataset, workers)
        limit = limit_rate(paths, workers)
    print(f"{n} JPEGs of 224x224, CLIP eval preprocessing, {usable_cpus()} usable CPUs, default workers {workers}")
    print(f"{'pipeline':<34}{'images/s':>10}")
    print(f"{'0 workers (main process)':<34}{serial:>10.0f}")
    print(f"{f'default ({workers} workers)':<34}{default:>10.0f}")
    print(f"{f'limit ({workers} plain processes)':<34}{limit:>10.0f}")
    print(f"default / 0 workers: {default / serial:.2f}x; default / limit: {default / limit:.2f} "
          f"(1.00 = the loader costs nothing beyond the decoding itself)")
