"""The live dashboard's cost: toy CoOp runs with and without `Dashboard`, measured in one run.

Both runs use the same seed and the Trainer's own per-epoch validation, so the difference is the
dashboard's recording and drawing. The dashboard builds its widget and draws its PNG with the
default throttle (every 20 steps and 3 s at most, each of drawing and embedding frames within 1% of
wall time by its own measured cost, and once at the end), exactly as in JupyterLab, only without a browser to receive the bytes.
On top, the dashboard keeps the whole run within the budget: it skips a picture or frame while what it has spent,
plus that action and the final frame and picture to come, would exceed 90% of 3% of the time trained.
Target: overhead at most 3% of training time. Two measures: the dashboard's own time (it counts the
seconds spent in its callbacks) as a share of the plain run, which is exact; and the wall-time
difference of the two runs, which on a shared 2-core machine carries several percent of noise either
way. A run of a few seconds pays a fixed cost (the zero-shot reference, the first and last embedding
frames, the final picture: a few tenths of a second) that a longer run amortises; both are printed.

python bench/dashboard_overhead.py [epochs ...]      (default: 60 300, about 2 s and 10 s of training)
"""
import sys
import time

import torch

from clipexplore.backbone import load_clip
from clipexplore.data import few_shot, toy_recordset
from clipexplore.engine import FeatureDataset, Trainer
from clipexplore.methods.coop import CoOp
from clipexplore.toyworld import ToyWorld
from clipexplore.widgets import Dashboard


def run(clip, train, valid, epochs, dashboard=None):
    torch.manual_seed(0)
    method = CoOp(clip, train.classes, n_ctx=4, ctx_init="a photo of a")
    start = time.perf_counter()
    Trainer(method, train, valid, epochs=epochs, callbacks=[dashboard] if dashboard else [], progress=False).fit()
    return time.perf_counter() - start


def wait_for_pictures(dashboard, seconds=60):
    "Let the picture process deliver the final picture (outside the timed run)."
    start = time.perf_counter()
    while dashboard.pictures is not None and dashboard.pictures.pending(dashboard._picture_key) and time.perf_counter() - start < seconds:
        time.sleep(0.05)


def main(epoch_counts=(60, 300), repeats=2):
    torch.set_num_threads(1)                                                             # the toy rule (bench/toy_threads.py)
    clip = load_clip(device="cpu")
    pool = toy_recordset(ToyWorld(3000, seed=11, domains=("photo", "cartoon", "painting"), distractors=True))
    train = FeatureDataset.encode(clip, few_shot(pool, 16, seed=1).dataset(clip.preprocess))
    valid = FeatureDataset.encode(clip, ToyWorld(400, seed=8, distractors=True))
    run(clip, train, valid, 2, Dashboard(display=True))                                 # warm-up, imports
    for epochs in epoch_counts:
        for offload in (False, True):
            plain, dashed, dashboards = [], [], []
            for _ in range(repeats):                                                     # interleaved: same machine state
                plain.append(run(clip, train, valid, epochs))
                dashboards.append(Dashboard(display=True, offload=offload))             # reads the Trainer's validation
                dashed.append(run(clip, train, valid, epochs, dashboards[-1]))
                wait_for_pictures(dashboards[-1])
            own = min(d.seconds for d in dashboards)
            print(f"CoOp, {epochs} epochs, pictures drawn {'in a child process' if offload else 'in the training process'}: "
                  f"plain {min(plain):.2f} s, with dashboard {min(dashed):.2f} s ({dashboards[0].redraws} pictures, "
                  f"{len(dashboards[0].frames)} embedding frames); dashboard's own time {own:.2f} s: overhead "
                  f"{100 * own / min(plain):.1f}% (target <= 3%); wall-time difference {100 * (min(dashed) / min(plain) - 1):+.1f}%")


if __name__ == "__main__":
    main([int(a) for a in sys.argv[1:]] or (60, 300))
