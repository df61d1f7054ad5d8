"""Threads for the toy CLIP on the CPU: `Trainer.fit` on one thread (its default for small models) against torch's default.

Two workloads, each run both ways in one process, interleaved and repeated (best of `repeats`): CoOp on cached features
(a text-encoder forward per step, the notebooks' common case) and VPT on raw 64 px images (the image tower per step).
Both on a quiet machine and with one core kept busy by another process (a student's machine runs JupyterLab, a
browser, perhaps a second kernel). Prints seconds and the ratio default / one thread (above 1: one thread is faster).

python bench/toy_threads.py [repeats]      (default 3; about two minutes)
"""
import multiprocessing
import sys
import time

import torch

import clipexplore.engine as engine
from clipexplore.backbone import load_clip
from clipexplore.data import few_shot, toy_recordset
from clipexplore.engine import FeatureDataset, Trainer
from clipexplore.methods.coop import CoOp
from clipexplore.methods.vpt import VPT
from clipexplore.toyworld import ToyWorld


def timed_fit(make, data, epochs, one_thread):
    "Seconds of one fit, with the small-model rule on (one thread) or off (torch's default threads)."
    engine.SMALL_MODEL = 30_000_000 if one_thread else 0
    torch.manual_seed(0)
    trainer = Trainer(make(), data, epochs=epochs, batch_size=32, lr=0.002, warmup_epochs=0, progress=False)
    start = time.perf_counter()
    trainer.fit()
    return time.perf_counter() - start


def spin():
    "Keep one core busy."
    while True: pass


def compare(workloads, repeats, condition):
    "Print default-threads and one-thread seconds of each workload, best of `repeats`, and their ratio."
    for name, (make, data, epochs) in workloads.items():
        timed_fit(make, data, 1, True)                                       # warm-up: first-call costs out of the timing
        default, one = [], []
        for _ in range(repeats):
            default.append(timed_fit(make, data, epochs, False)); one.append(timed_fit(make, data, epochs, True))
        print(f"{name:36s} {condition:>10s} {min(default):10.2f} {min(one):10.2f} {min(default) / min(one):6.2f}")


def main(repeats=3):
    clip = load_clip(device="cpu")
    pool = toy_recordset(ToyWorld(1200, seed=11, domains=("photo", "cartoon", "painting"), distractors=True))
    shots = few_shot(pool, 16, seed=1)
    features = FeatureDataset.encode(clip, shots.dataset(clip.preprocess))
    images = shots.dataset(clip.preprocess)
    workloads = {"CoOp, cached features, 10 epochs": (lambda: CoOp(clip, pool.classes, n_ctx=4), features, 10),
                 "VPT, raw images, 1 epoch": (lambda: VPT(clip, pool.classes, n_tokens=4), images, 1)}
    print(f"torch default threads: {torch.get_num_threads()}; {len(shots)} training images, batch 32; best of {repeats}")
    print(f"{'workload':36s} {'machine':>10s} {'default s':>10s} {'1 thread s':>10s} {'ratio':>6s}")
    compare(workloads, repeats, "quiet")
    busy = multiprocessing.Process(target=spin, daemon=True); busy.start()
    try: compare(workloads, repeats, "1 core busy")
    finally: busy.terminate()


if __name__ == "__main__":
    main(*map(int, sys.argv[1:]))
