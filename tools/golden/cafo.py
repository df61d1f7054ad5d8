"""CaFo (CoMo's multi-knowledge cache) references from the official code (OpenGVLab/CaFo: main.py, utils.py).

    python tools/golden/cafo.py MIRROR_OF_OpenGVLab/CaFo

1. `logits_fuse` (normalize='mean') on seeded zero-shot and cache logits.
2. The whole adapter on the golden backbone: CLIP is the golden model built by CaFo's vendored `clip/model.py`, the
   second ("DINO") encoder the same architecture with the golden weights of seed 1. The official
   `gpt_clip_classifier` (one prompt per class), `build_clip_cache_model`, `build_dino_cache_model` and
   `run_ensemble_tip_dalle_adapter_F` run as they are, with seeded keys, two epochs of two batches and no DALL-E
   images; the training logits, each step's gradients (DINO keys first: the optimiser chains them first) and the
   final keys are read from its `cls_acc` calls and its AdamW (eps 1e-4, default weight decay 0.01)."""
import os
import sys
import tempfile
import types
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from tools.golden.common import official_checkout, GOLDEN_CLASSNAMES, build_official, golden_images, save_golden
from tools.golden.run_official import cuda_on_cpu, recording, recording_adamw, top1_accuracy

ALPHA, BETA = 1.3, 2.7
EPOCHS, BATCH, LR = 2, 4, 1e-3
TRAIN_ALPHA, TRAIN_LR = 1e-4, 0.05     # the two-epoch run's: gradients below AdamW's eps, keys moving by ~1e-2 (see tip_adapter.py)


class Encoder:
    "What CaFo's loop calls: `encode_image` (CLIP) or the module itself (DINO), and CLIP's `dtype`."
    dtype = torch.float32
    def __init__(self, model): self.model = model
    def encode_image(self, images): return self.model.encode_image(images)
    def __call__(self, images): return self.model.encode_image(images)


def official(mirror):
    g = torch.Generator().manual_seed(5)
    fuse_inputs = [torch.randn(6, 8, generator=g) * s for s in (10.0, 1.0, 3.0)]
    train_images, train_labels, test_images = golden_images(8, seed=5), torch.arange(8), golden_images(4, seed=6)
    orders = torch.stack([torch.randperm(8, generator=g) for _ in range(EPOCHS)])
    sys.modules.setdefault("gdown", types.ModuleType("gdown"))
    cwd = os.getcwd()
    with official_checkout(mirror), cuda_on_cpu(), tempfile.TemporaryDirectory() as cache_dir:
        os.chdir(cache_dir)                                           # the search writes best.txt to the working folder
        try:
            import main as cafo_main
            import utils as cafo_utils
            from clip import model as clip_model
            fused = cafo_utils.logits_fuse(fuse_inputs[0], fuse_inputs[1:])
            clip, dino = Encoder(build_official(clip_model)), Encoder(build_official(clip_model, seed=1))
            cfg = dict(load_cache=False, load_pre_feat=False, augment_epoch=1, shots=1, cache_dir=cache_dir, init_alpha=ALPHA,
                       init_beta=BETA, search_hp=True, search_scale=[1.0, 1.0], search_step=[1, 1], lr=LR, train_epoch=EPOCHS)
            prompts = {c: [f"a photo of a {c}."] for c in GOLDEN_CLASSNAMES}
            clip_weights = cafo_utils.gpt_clip_classifier(GOLDEN_CLASSNAMES, prompts, clip.model, None).float()     # [D, K]
            clip_keys, values = cafo_utils.build_clip_cache_model(cfg, clip.model, [(train_images, train_labels)])
            dino_keys, _ = cafo_utils.build_dino_cache_model(cfg, dino, [(train_images, train_labels)])
            values = values.float()                                   # one-hot, exact (official: fp16)
            with torch.no_grad():
                test_clip = F.normalize(clip.encode_image(test_images), dim=-1)
                test_dino = F.normalize(dino(test_images), dim=-1)
            test_labels = (test_clip @ clip_weights).argmax(-1)       # so that some epoch is "best" (> 0 %) and its keys saved
            keys_init = [(k + 0.05 * torch.randn(k.shape, generator=g)) for k in (clip_keys, dino_keys)]      # [D, N] each
            batches = [[(train_images[o[i:i + BATCH]], train_labels[o[i:i + BATCH]]) for i in range(0, 8, BATCH)] for o in orders]
            epochs = iter(batches)
            class Loader(list):                                       # each pass: the next epoch's batches
                def __iter__(self): return iter(next(epochs))
            cafo_utils.cls_acc = top1_accuracy
            run = lambda cfg: cafo_main.run_ensemble_tip_dalle_adapter_F(
                cfg, keys_init[0].clone(), values, test_clip, test_clip, keys_init[1].clone(), values, test_dino, test_dino,
                test_labels, test_labels, clip_weights, clip, dino, Loader([None, None]), [])           # copies: Parameters share them
            with recording(cafo_main, "cls_acc", top1_accuracy) as calls, recording_adamw() as steps:
                run(cfg)
            epochs = iter(batches)
            with recording(cafo_main, "cls_acc", top1_accuracy), recording_adamw() as train_steps:      # again, at a small alpha
                run(dict(cfg, init_alpha=TRAIN_ALPHA, lr=TRAIN_LR))
        finally:
            os.chdir(cwd)
    return dict(fuse_zero_shot=fuse_inputs[0], fuse_cache_a=fuse_inputs[1], fuse_cache_b=fuse_inputs[2], fused=fused,
                train_labels=train_labels, orders=orders, clip_weights=clip_weights.t(), clip_cache_keys=clip_keys.t(),
                dino_cache_keys=dino_keys.t(), cache_values=values, clip_keys_init=keys_init[0].t(), dino_keys_init=keys_init[1].t(),
                logits_step0=calls[0][0], dino_grad_step0=steps[0]["grads"][0], clip_grad_step0=steps[0]["grads"][1],
                dino_keys_final=train_steps[-1]["params"][0], clip_keys_final=train_steps[-1]["params"][1],
                lrs=torch.tensor([s["lr"] for s in train_steps], dtype=torch.float64))


if __name__ == "__main__":
    torch.set_num_threads(1)
    mirror = sys.argv[1]
    tensors = official(mirror)
    print("CaFo lr per step:", tensors["lrs"].tolist())
    save_golden("cafo", tensors, mirror, ["main.py", "utils.py", "clip/model.py"], __file__,
                meta=dict(train_alpha=TRAIN_ALPHA, train_lr=TRAIN_LR, train_images="golden_images(8, seed=5)", second_encoder="golden weights of seed 1", alpha=ALPHA, beta=BETA,
                          template="a photo of a {}.", epochs=EPOCHS, batch_size=BATCH, lr=LR, eps=1e-4,
                          weight_decay="torch.optim.AdamW default (0.01)", schedule="CosineAnnealingLR(T_max=epochs*batches), stepped per batch",
                          note="logits use the official hard-coded 100; compare with a backbone whose logit scale is exactly 100"))
