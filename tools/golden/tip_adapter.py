"""Tip-Adapter and Tip-Adapter-F references from the official code (gaopengcuhk/Tip-Adapter: main.py, utils.py).

    python tools/golden/tip_adapter.py MIRROR_OF_gaopengcuhk/Tip-Adapter

On the golden backbone (fp32, CPU): the official `clip_classifier` and `build_cache_model` give the class weights and
the cache; `run_tip_adapter` computes the training-free logits at given alpha, beta (read from its `cls_acc` calls);
`run_tip_adapter_F` trains seeded keys for two epochs of two batches with its own AdamW (eps 1e-4, default weight
decay 0.01) and per-iteration cosine: each step's gradient and keys are read from the optimiser."""
import sys
import tempfile
import types
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from tools.golden.common import GOLDEN_CLASSNAMES, build_official, golden_images, official_checkout, save_golden
from tools.golden.run_official import cuda_on_cpu, recording, recording_adamw, top1_accuracy

ALPHA, BETA = 1.7, 3.3            # away from the configs' initial 1, 1.17 so that neither hides a swapped role
TEMPLATE = ["a photo of a {}."]   # the template of Tip-Adapter's Caltech101/ImageNet-style loaders
EPOCHS, BATCH, LR = 2, 4, 1e-3
# The two-epoch run trains at a small alpha and a large lr. At alpha 1.7 the keys' gradients (up to 0.5) are far above
# AdamW's eps (1e-4), where its normalisation amplifies float32 rounding by up to max|g| / eps; and at lr 1e-3 the keys
# move by ~1e-3, so the update's float32 resolution (one ulp of the keys, 3e-8) is itself 30 times the floor. At alpha
# 1e-4 and lr 0.05 the gradients stay below eps and the keys move by ~1e-2. The logits and the gradient at alpha 1.7
# come from the first run's first step.
TRAIN_ALPHA, TRAIN_LR = 1e-4, 0.05


def inputs():
    "Eight training images (one per class), four test images, seeded keys noise and the per-epoch sample orders."
    g = torch.Generator().manual_seed(7)
    train_images, test_images = golden_images(8, seed=1), golden_images(4, seed=2)
    train_labels = torch.arange(8)
    orders = torch.stack([torch.randperm(8, generator=g) for _ in range(EPOCHS)])           # [epochs, N]
    return train_images, train_labels, test_images, orders, g


def official(mirror):
    train_images, train_labels, test_images, orders, g = inputs()
    sys.modules.setdefault("gdown", types.ModuleType("gdown"))                 # only used to download datasets
    with official_checkout(mirror), cuda_on_cpu(), tempfile.TemporaryDirectory() as cache_dir:
        import main as tip_main
        import utils as tip_utils
        from clip import model as clip_model
        model = build_official(clip_model)
        cfg = dict(load_cache=False, load_pre_feat=False, augment_epoch=1, shots=1, cache_dir=cache_dir, init_alpha=ALPHA,
                   init_beta=BETA, search_hp=True, search_scale=[1.0, 1.0], search_step=[1, 1], lr=LR, train_epoch=EPOCHS)
        clip_weights = tip_utils.clip_classifier(GOLDEN_CLASSNAMES, TEMPLATE, model).float()          # [D, K]
        keys, values = tip_utils.build_cache_model(cfg, model, [(train_images, train_labels)])       # [D, N], [N, K] half
        values = values.float()                                                                      # one-hot: exact
        test_features, _ = tip_utils.pre_load_features(cfg, "test", model, [(test_images, torch.zeros(4, dtype=torch.long))])
        test_labels = (test_features @ clip_weights).argmax(-1)     # labels CLIP gets right: the official F keeps a best epoch only if accuracy > 0
        with recording(tip_main, "cls_acc", top1_accuracy) as calls:
            tip_utils.cls_acc = top1_accuracy                               # search_hp's own calls
            tip_main.run_tip_adapter(cfg, keys, values, test_features, test_labels, test_features, test_labels, clip_weights)
        zero_shot, tip_logits = calls[0][0], calls[1][0]                      # the val pass: zero-shot, then alpha/beta
        # Tip-Adapter-F from seeded keys (not the training features, so that a key initialisation bug shows)
        keys_init = (keys + 0.05 * torch.randn(keys.shape, generator=g)).t().contiguous()            # [N, D]
        train_features = torch.nn.functional.normalize(model.encode_image(train_images).detach(), dim=-1)
        loader = [[(train_images[order[i:i + BATCH]], train_labels[order[i:i + BATCH]]) for i in range(0, 8, BATCH)] for order in orders]
        epochs = iter(loader)
        class Loader(list):                       # a fresh epoch's batches at each pass, like a shuffling DataLoader
            def __iter__(self): return iter(next(epochs))
        with recording(tip_main, "cls_acc", top1_accuracy) as calls, recording_adamw() as steps:
            tip_main.run_tip_adapter_F(cfg, keys_init.t().clone(), values,          # a copy: the official Parameter shares it
                                       test_features, test_labels, test_features, test_labels,
                                       clip_weights, model, Loader(loader[0]))
        epochs = iter(loader)                                     # again, at a small alpha (see TRAIN_ALPHA)
        with recording(tip_main, "cls_acc", top1_accuracy), recording_adamw() as train_steps:
            tip_main.run_tip_adapter_F(dict(cfg, init_alpha=TRAIN_ALPHA, lr=TRAIN_LR), keys_init.t().clone(), values, test_features,
                                       test_labels, test_features, test_labels, clip_weights, model, Loader(loader[0]))
    return dict(train_labels=train_labels, test_labels=test_labels,     # images: golden_images(8, seed=1), golden_images(4, seed=2)
                orders=orders, clip_weights=clip_weights.t(), cache_keys=keys.t(), cache_values=values,
                test_features=test_features, zero_shot_logits=zero_shot, tip_logits=tip_logits,
                train_features=train_features, keys_init=keys_init, f_logits_step0=calls[0][0],
                f_grad_step0=steps[0]["grads"][0], f_keys_final=train_steps[-1]["params"][0],
                f_lrs=torch.tensor([s["lr"] for s in train_steps], dtype=torch.float64))


if __name__ == "__main__":
    torch.set_num_threads(1)
    mirror = sys.argv[1]
    tensors = official(mirror)
    print("Tip-Adapter-F lr per step:", tensors["f_lrs"].tolist())
    save_golden("tip_adapter", tensors, mirror, ["main.py", "utils.py", "clip/model.py"], __file__,
                meta=dict(train_alpha=TRAIN_ALPHA, train_lr=TRAIN_LR, train_images="golden_images(8, seed=1)", test_images="golden_images(4, seed=2)", alpha=ALPHA, beta=BETA, template=TEMPLATE[0], epochs=EPOCHS, batch_size=BATCH, lr=LR, eps=1e-4,
                          weight_decay="torch.optim.AdamW default (0.01)", schedule="CosineAnnealingLR(T_max=epochs*batches), stepped per batch",
                          note="logits use the official hard-coded 100; compare with a backbone whose logit scale is exactly 100"))
