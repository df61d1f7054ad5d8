"""DualCoOp references: the official asymmetric loss (value and gradient) and the official forward on given regions.

    python tools/golden/dualcoop.py MIRROR_OF_sunxm2357/DualCoOp MIRROR_OF_KaiyangZhou/Dassl.pytorch

1. `utils/asymmetric_loss.py:AsymmetricLoss` (the class `utils/trainers.py:train_coop` uses, gamma_neg 2, gamma_pos 1,
   clip 0.05, focal weight computed without gradient) on seeded [B, 2, K] logits with partial targets (-1 unknown):
   the loss and its gradient with respect to the logits.
2. `models/dualcoop.py:DualCoop.forward` with the official prompt learner and text encoder on the golden backbone.
   The official vision side exists only for ResNets (`clip/model.py:AttentionConv`, the value path of the attention
   pool over the feature grid); on the golden ViT the image encoder is replaced by one that returns the given region
   features (our projected pooled + patch tokens), so the comparison is at formula level from the regions on:
   prompts, text encoder, class-specific region aggregation, logits [B, 2, K], loss and context gradients. The CLIP is
   the repository's `clip/model.py:build_model` (its text side is what `DualCoop` uses; `build_model_conv_proj`
   only differs in the ResNet vision side).
"""
import sys
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from tools.golden.recipes import dassl_recipe
from tools.golden.common import GOLDEN_CLASSNAMES, golden_clip, build_official, golden_images, official_checkout, save_golden

LOSS_WEIGHT = 0.03                                  # README: --loss_w 0.03 (VOC/COCO, 50% labels)

def partial_targets(shape, seed):
    "Targets in {-1, 0, 1} with at least one positive per row."
    g = torch.Generator().manual_seed(seed)
    t = torch.randint(-1, 2, shape, generator=g)
    t[:, 0] = 1
    return t

class GivenRegions(nn.Module):
    "Stands in for the official ResNet `AttentionConv` encoder: returns the regions [B, D, R] it is handed, no attention."
    def __init__(self, regions):
        super().__init__()
        self.regions = regions
    def forward(self, image): return self.regions.permute(0, 2, 1).to(image.dtype), None

def official_loss(x, y):
    "The official AsymmetricLoss value and gradient on logits x [B, 2, K]."
    from utils.asymmetric_loss import AsymmetricLoss
    from dassl.config import get_cfg_default
    from utils.build_cfg import extend_cfg
    cfg = get_cfg_default(); extend_cfg(cfg)
    criterion = AsymmetricLoss(cfg.TRAINER.COOP_MLC.ASL_GAMMA_NEG, cfg.TRAINER.COOP_MLC.ASL_GAMMA_POS)
    x = x.clone().requires_grad_(True)
    loss = criterion(x, y)
    loss.backward()
    no_detach = AsymmetricLoss(cfg.TRAINER.COOP_MLC.ASL_GAMMA_NEG, cfg.TRAINER.COOP_MLC.ASL_GAMMA_POS, disable_torch_grad_focal_loss=False)
    x2 = x.detach().clone().requires_grad_(True)
    no_detach(x2, y).backward()
    return loss.detach(), x.grad, x2.grad, (cfg.TRAINER.COOP_MLC.ASL_GAMMA_NEG, cfg.TRAINER.COOP_MLC.ASL_GAMMA_POS)

README_RUN = ["--input_size", "448", "--lr", "0.002", "--loss_w", str(LOSS_WEIGHT), "-pp", "0.5"]   # README: COCO, 50% labels

def official_recipe(root):
    "The training recipe of the README's partial-label run, read from the config `train.py` builds for it."
    from opts import arg_parser
    from utils.build_cfg import setup_cfg
    cfg = setup_cfg(arg_parser().parse_args(["--config_file", str(root / "configs/models/rn101_ep50.yaml")] + README_RUN))
    return dassl_recipe(cfg)

def official_forward(regions, targets, ctx_pos, ctx_neg):
    "Official DualCoop logits [B, 2, K], weighted loss and context gradients, the image encoder fed `regions`."
    from opts import arg_parser
    from utils.build_cfg import setup_cfg
    from clip import model as clip_model
    from models.dualcoop import DualCoop
    from utils.asymmetric_loss import AsymmetricLoss
    args = arg_parser().parse_args(["--input_size", "96", "--loss_w", str(LOSS_WEIGHT)])
    cfg = setup_cfg(args)
    clip = build_official(clip_model)      # `build_model_conv_proj` resizes a ResNet's 7x7 pooling grid: not for a ViT
    model = DualCoop(cfg, GOLDEN_CLASSNAMES, clip).eval()
    model.image_encoder = GivenRegions(regions)
    with torch.no_grad():
        model.prompt_learner.ctx_pos.copy_(ctx_pos); model.prompt_learner.ctx_neg.copy_(ctx_neg)
    logits = model(torch.zeros(regions.shape[0], 3, 96, 96))
    loss = args.loss_w * AsymmetricLoss(cfg.TRAINER.COOP_MLC.ASL_GAMMA_NEG, cfg.TRAINER.COOP_MLC.ASL_GAMMA_POS)(logits, targets)
    loss.backward()
    return logits.detach(), loss.detach(), model.prompt_learner.ctx_pos.grad, model.prompt_learner.ctx_neg.grad, dict(
        n_ctx_pos=cfg.TRAINER.COOP_MLC.N_CTX_POS, n_ctx_neg=cfg.TRAINER.COOP_MLC.N_CTX_NEG, csc=cfg.TRAINER.COOP_MLC.CSC)

if __name__ == "__main__":
    torch.set_num_threads(1)
    mirror, dassl = sys.argv[1], sys.argv[2]
    torch.manual_seed(0)
    K = len(GOLDEN_CLASSNAMES)
    loss_logits = 3 * torch.randn(6, 2, K, generator=torch.Generator().manual_seed(7))
    loss_targets = partial_targets((6, K), seed=8)
    from clipexplore.methods.dualcoop import region_features
    regions = region_features(golden_clip(), golden_images())           # [B, 1 + HW, E], normalised
    targets = partial_targets((regions.shape[0], K), seed=9)
    g = torch.Generator().manual_seed(10)
    ctx_pos, ctx_neg = 0.3 * torch.randn(16, 512, generator=g), 0.3 * torch.randn(16, 512, generator=g)
    with official_checkout(mirror, dassl) as roots:
        recipe = official_recipe(roots[0])
        loss, grad, grad_with_focal_gradient, gammas = official_loss(loss_logits, loss_targets)
        logits, forward_loss, grad_pos, grad_neg, settings = official_forward(regions, targets, ctx_pos, ctx_neg)
    print(f"ASL {float(loss):.6f}; gradient with vs without focal-weight gradient: max |diff| "
          f"{float((grad - grad_with_focal_gradient).abs().max()):.3f}; forward loss {float(forward_loss):.6f}")
    save_golden("dualcoop", dict(loss_logits=loss_logits, loss_targets=loss_targets, loss=loss, loss_grad=grad,
                                 loss_grad_with_focal_gradient=grad_with_focal_gradient, regions=regions, targets=targets,
                                 ctx_pos=ctx_pos, ctx_neg=ctx_neg, logits=logits, forward_loss=forward_loss,
                                 ctx_pos_grad=grad_pos, ctx_neg_grad=grad_neg),
                mirror, ["utils/asymmetric_loss.py", "models/dualcoop.py", "utils/build_cfg.py", "opts.py", "configs/models/rn101_ep50.yaml",
                 "README.md", "clip/model.py"], __file__,
                meta=dict(recipe=recipe, gamma_neg=gammas[0], gamma_pos=gammas[1], clip=0.05, loss_weight=LOSS_WEIGHT, classnames=GOLDEN_CLASSNAMES,
                          note="vision side replaced by the given regions (official AttentionConv is ResNet-only)", **settings))
