"""UPL references: pseudo-label selection, zero-shot probabilities and the CoOp prompt's logits, from the official code.

    python tools/golden/upl.py MIRROR_OF_tonyhuang2022/UPL MIRROR_OF_KaiyangZhou/Dassl.pytorch

1. `trainers/utils.py:select_top_k_similarity_per_class` as `UPLTrainer.load_from_exist_file` calls it (averaged
   probabilities, `is_softmax=False`, K = DATASET.NUM_SHOTS) on a seeded pool of class probabilities: which images are
   kept, with which pseudo-label.
2. `trainers/upltrainer.py:CustomCLIP.zero_shot_forward` (the template of `SSImageNet`, "a photo of a {}.") on the
   golden images: the zero-shot logits whose softmax UPL ranks.
3. `CustomCLIP.forward` (CoOp prompt, 16 random context vectors, class token at the end) with seeded context: logits.

Module-level imports that none of the code run here uses (Dassl's tensorboard, gdown, wilds, pandas, OpenCV; `imp`,
gone from Python 3.12) are stubbed by `official_stubs.py`. The config is the repository's own
(`configs/upl_default_config/upl_default.py`, `upl_train.py:extend_cfg`, `configs/trainers/UPLTrainer/rn50_ep50.yaml`).
"""
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from tools.golden.common import GOLDEN_CLASSNAMES, build_official, golden_images, official_checkout, save_golden
from tools.golden.official_stubs import stub_optional_imports
from tools.golden.recipes import dassl_recipe

K = 4                 # images kept per class in the pool below (official: NUM_SHOTS = 16 on thousands of images)

def upl_cfg(mirror_root):
    "The official config: UPL's defaults, `upl_train.py`'s trainer settings, the rn50_ep50 trainer file, a 96 px input."
    from configs.upl_default_config.upl_default import get_cfg_default
    from upl_train import extend_cfg
    cfg = get_cfg_default()
    extend_cfg(cfg)
    cfg.merge_from_file(str(Path(mirror_root) / "configs/datasets/ssimagenet.yaml"))
    cfg.merge_from_file(str(Path(mirror_root) / "configs/trainers/UPLTrainer/rn50_ep50.yaml"))
    cfg.INPUT.SIZE = (96, 96)
    cfg.DATASET.NUM_SHOTS = K
    return cfg

def official_selection(probabilities, k):
    "Selected image indices and pseudo-labels as `load_from_exist_file` obtains them."
    from trainers.utils import select_top_k_similarity_per_class
    paths = np.array([f"./data/pool/{i:04d}.jpg" for i in range(len(probabilities))])
    labels, _ = select_top_k_similarity_per_class(probabilities.clone(), paths, K=k, is_softmax=False)
    chosen = torch.zeros(probabilities.shape, dtype=torch.long)
    for path, label in labels.items(): chosen[int(Path(path).stem), int(label)] = 1
    return chosen                                                   # [N, C]: 1 where image n is kept with label c

if __name__ == "__main__":
    torch.set_num_threads(1)
    mirror, dassl = sys.argv[1], sys.argv[2]
    torch.manual_seed(0)
    pool = (2.5 * torch.randn(60, len(GOLDEN_CLASSNAMES), generator=torch.Generator().manual_seed(21))).softmax(-1)
    ctx = 0.3 * torch.randn(16, 512, generator=torch.Generator().manual_seed(22))
    images = golden_images()
    stub_optional_imports()
    with official_checkout(mirror, dassl) as roots:
        from clip import model as clip_model
        import trainers.upltrainer as upl
        cfg = upl_cfg(roots[0])
        selected = official_selection(pool, cfg.DATASET.NUM_SHOTS)
        clip = build_official(clip_model)
        model = upl.CustomCLIP(cfg, GOLDEN_CLASSNAMES, clip).eval()
        with torch.no_grad():
            zero_shot, _, _ = model.zero_shot_forward(images, "cpu")
            model.prompt_learner.ctx.copy_(ctx)
            logits, _, _ = model(images)
        settings = dict(n_ctx=cfg.TRAINER.UPLTrainer.N_CTX, csc=cfg.TRAINER.UPLTrainer.CSC, position=cfg.TRAINER.UPLTrainer.CLASS_TOKEN_POSITION,
                        template=upl.CUSTOM_TEMPLATES[cfg.DATASET.NAME], dataset=cfg.DATASET.NAME, k=cfg.DATASET.NUM_SHOTS,
                        recipe=dassl_recipe(cfg))
    print(f"kept {int(selected.sum())} of {len(pool)} images; zero-shot logits {tuple(zero_shot.shape)}, prompt logits {tuple(logits.shape)}")
    save_golden("upl", dict(pool=pool, selected=selected, zero_shot_logits=zero_shot, ctx=ctx, logits=logits),
                mirror, ["trainers/utils.py", "trainers/upltrainer.py", "upl_train.py", "configs/upl_default_config/upl_default.py",
                         "configs/trainers/UPLTrainer/rn50_ep50.yaml", "configs/datasets/ssimagenet.yaml", "clip/model.py"], __file__,
                meta=dict(classnames=GOLDEN_CLASSNAMES, images="golden_images()", images_sum=round(float(images.double().sum()), 6), **settings))
