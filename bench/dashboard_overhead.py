"""The live dashboard's cost: a toy CoOp run with and without `Dashboard`, measured in one run.

Both runs record nothing else and use the same seed; the dashboard run builds its widget and draws
its PNG with the default throttle (every 20 steps and 3 s, and once at the end), exactly as in
JupyterLab, only without a browser to receive the bytes. Per-epoch validation is part of both runs
(the Trainer's own `valid`), so the difference is recording + drawing.
Target: overhead at most 3% of training time.

python bench/dashboard_overhead.py [epochs]
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
    callbacks = [dashboard] if dashboard else []
    start = time.perf_counter()
    Trainer(method, train, valid, epochs=epochs, callbacks=callbacks, progress=False).fit()
    return time.perf_counter() - start


def main(epochs=60):
    torch.set_num_threads(2)
    clip = load_clip(device="cpu")
    pool = toy_recordset(ToyWorld(3000, seed=11, domains=("photo", "cartoon", "painting"), distractors=True))
    train = FeatureDataset.encode(clip, few_shot(pool, 16, seed=1).dataset(clip.preprocess))
    valid = FeatureDataset.encode(clip, ToyWorld(400, seed=8, distractors=True))
    run(clip, train, valid, 2)                                                     # warm-up
    plain = min(run(clip, train, valid, epochs) for _ in range(2))
    dashboards = [Dashboard(display=True) for _ in range(2)]              # reads the Trainer's validation
    with_dashboard = min(run(clip, train, valid, epochs, d) for d in dashboards)
    print(f"CoOp, {epochs} epochs: plain {plain:.2f} s, with dashboard {with_dashboard:.2f} s "
          f"({dashboards[0].redraws} redraws)")
    print(f"overhead: {100 * (with_dashboard / plain - 1):.1f}% (target <= 3%)")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 60)
