"""Toy-world rendering rate, measured in one run. Target: at least 2,000 images/s on two CPU cores.

python bench/toyworld_speed.py [n_images]
"""
import sys
import time

from clipexplore.toyworld import ToyWorld

TARGET = 2000


def rate(get, n):
    "Items per second of `get(i)` over i < n, after one warm-up call (fills the stamp caches)."
    get(0)
    t0 = time.perf_counter()
    for i in range(n): get(i)
    return n / (time.perf_counter() - t0)


if __name__ == "__main__":
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 5000
    cases = {"single objects": ToyWorld(n, seed=0).image,
             "1-3 objects": ToyWorld(n, seed=0, n_objects=(1, 2, 3)).image,
             "+ captions": ToyWorld(n, seed=0, n_objects=(1, 1, 2, 3), captions=True, transform=None).__getitem__,
             "+ CLIP tensors": ToyWorld(n, seed=0).__getitem__}
    for name, get in cases.items():
        r = rate(get, n)
        print(f"{name:>15}: {r:8,.0f} images/s  ({r / TARGET:.2f}x the {TARGET:,}/s target)")
