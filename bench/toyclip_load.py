"""Time to load the bundled toy CLIP (imports excluded), measured in one run. Target: under 3 s.

python bench/toyclip_load.py
"""
import time

t_import = time.perf_counter()
from clipexplore.backbone import load_clip  # noqa: E402
t_import = time.perf_counter() - t_import

TARGET = 3.0

if __name__ == "__main__":
    t0 = time.perf_counter()
    clip = load_clip("toy", device="cpu")
    seconds = time.perf_counter() - t0
    print(f"import clipexplore.backbone: {t_import:.2f} s")
    print(f"load_clip('toy'): {seconds:.2f} s  ({TARGET / seconds:.1f}x faster than the {TARGET:.0f} s target)")
