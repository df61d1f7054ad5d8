"""TaI-DPT references: caption-side logits and the double ranking loss, image-side logits from given regions.

    python tools/golden/taidpt.py MIRROR_OF_guozix/TaI-DPT

Runs `trainers/Caption_distill_double.py` (`DenseCLIP`, `PromptLearner`, `TextEncoder`) and `trainers/utils.py:ranking_loss`
with the repository's own config (`train_caption.py:extend_cfg`, `configs/trainers/Caption_distill_double/rn50_voc2007.yaml`)
and its vendored Dassl (`Dassl.pytorch-master`), on the golden backbone's text tower:

1. training forward `DenseCLIP(None, captions)`: global logits (EOT feature vs the global prompt, scale 4) and local
   logits (token features pooled per class with temperature 50, padding masked), the loss
   `ranking_loss(global) + ranking_loss(local)` (LOSSFUNC double_ranking) and the gradients of both contexts;
2. test forward `DenseCLIP(image, if_test=True)`: official only for ResNets (layer4 map, `attnpool(if_pos=False)` for the
   global feature, the value path `c_proj(v_proj(x))` per location for the local ones). On the golden ViT the vision
   side is replaced by the given regions (our pooled token for the global feature, projected patch tokens as the
   map, identity value path), so the comparison is at formula level from the regions on (temperature 40).
"""
import contextlib
import subprocess
import sys
import tempfile
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from tools.golden.common import GOLDEN_CLASSNAMES, build_official, golden_clip, golden_images, save_golden
from tools.golden.official_stubs import load_function, stub_optional_imports
from tools.golden.recipes import dassl_recipe

CAPTIONS = ["a dog and a red fox play on the grass", "a tram passes a pizza shop", "an alarm clock next to a daisy",
            "a golden retriever swims after a sea turtle", "two dogs, one tram and a daisy field at night",
            "a pizza", "a red fox sleeping", "the sea turtle and the alarm clock"]

def caption_targets():
    "Multi-hot labels [N, K] of the class names each caption names (by hand: 'dogs' is a dog)."
    named = [["dog", "red fox"], ["tram", "pizza"], ["alarm clock", "daisy"], ["golden retriever", "sea turtle"],
             ["dog", "tram", "daisy"], ["pizza"], ["red fox"], ["sea turtle", "alarm clock"]]
    return torch.tensor([[int(c in n) for c in GOLDEN_CLASSNAMES] for n in named])

class GivenVision(nn.Module):
    "The parts of a CLIP ResNet that `DenseCLIP` reads, standing in for it: `attnpool` returns the given pooled feature."
    def __init__(self, pooled, width, resolution):
        super().__init__()
        self.input_resolution, self.layer4, self.pooled = resolution, nn.Identity(), pooled
        self.conv1 = nn.Conv2d(3, 1, 1)                                # CLIP.dtype reads visual.conv1's dtype (fp32)
        self.attnpool = nn.Module()
        self.attnpool.positional_embedding = torch.zeros(2, width)
        for name in ("v_proj", "c_proj"):                             # identity value path: the regions are already projected
            layer = nn.Linear(width, width); nn.init.eye_(layer.weight); nn.init.zeros_(layer.bias)
            setattr(self.attnpool, name, layer)
        self.attnpool.forward = lambda feat, if_pos=True: (self.pooled, None)

PATHS = ["clip", "trainers", "configs", "datasets", "train_caption.py", "Dassl.pytorch-master"]

@contextlib.contextmanager
def checkout_paths(mirror, paths):
    "Like `official_checkout`, but unpacks only `paths`: the mirror lacks the blob of the repository's large output.zip."
    with tempfile.TemporaryDirectory() as tmp:
        archive = subprocess.run(["git", "-C", str(mirror), "archive", "HEAD", "--", *paths], capture_output=True, check=True).stdout
        subprocess.run(["tar", "-x", "-C", tmp], input=archive, check=True)
        saved_path, saved_modules = list(sys.path), dict(sys.modules)
        sys.path[:0] = [tmp, str(Path(tmp) / "Dassl.pytorch-master")]       # the Dassl the repository ships
        try: yield Path(tmp)
        finally:
            sys.path[:] = saved_path
            for k in list(sys.modules):
                if k not in saved_modules: del sys.modules[k]

def taidpt_cfg(root):
    from dassl.config import get_cfg_default
    extend_cfg = load_function(root / "train_caption.py", "extend_cfg")   # without the script's dataset imports (nltk, pycocotools)
    cfg = get_cfg_default(); extend_cfg(cfg)
    cfg.merge_from_file(str(root / "configs/datasets/voc2007_distill.yaml"))
    cfg.merge_from_file(str(root / "configs/trainers/Caption_distill_double/rn50_voc2007.yaml"))
    cfg.INPUT.SIZE = (96, 96)
    return cfg

if __name__ == "__main__":
    torch.set_num_threads(1)
    mirror = sys.argv[1]
    torch.manual_seed(0)
    regions = __import__("clipexplore.methods.dualcoop", fromlist=["region_features"]).region_features(golden_clip(), golden_images())
    pooled, patches = regions[:, 0], regions[:, 1:]                  # [B, E], [B, HW, E]
    side = int(patches.shape[1] ** 0.5)
    g = torch.Generator().manual_seed(31)
    ctx, ctx_double = 0.3 * torch.randn(16, 512, generator=g), 0.3 * torch.randn(16, 512, generator=g)
    targets = caption_targets()
    stub_optional_imports()
    import numpy
    if not hasattr(numpy, "deprecate"): numpy.deprecate = lambda *a, **k: None    # trainers/utils.py imports it, unused (numpy 2 removed it)
    with checkout_paths(mirror, PATHS) as root:
        from clip import clip as clip_api, model as clip_model
        import trainers.Caption_distill_double as tai
        from trainers.utils import ranking_loss
        cfg = taidpt_cfg(root)
        clip = build_official(clip_model)
        clip.visual = GivenVision(pooled, pooled.shape[-1], 96)
        model = tai.DenseCLIP(cfg, GOLDEN_CLASSNAMES, clip).eval()
        model.encode_image = lambda x: patches.permute(0, 2, 1).reshape(len(patches), -1, side, side)   # [B, E, h, w]
        with torch.no_grad(): model.prompt_learner.ctx.copy_(ctx); model.prompt_learner.ctx_double.copy_(ctx_double)
        tokens = clip_api.tokenize(CAPTIONS)
        caption_global, caption_local, _, _ = model(None, tokens)
        caption_global, caption_local = caption_global.detach().clone().requires_grad_(), caption_local.detach().clone().requires_grad_()
        model.zero_grad()
        out_global, out_local, _, _ = model(None, tokens)
        assert cfg.TRAIN.LOSSFUNC == "double_ranking"
        loss = ranking_loss(out_global, targets, scale_=1.0, margin_=1) + ranking_loss(out_local, targets, scale_=1.0, margin_=1)
        loss.backward()
        with torch.no_grad():
            image_global, image_local, _, _ = model(torch.zeros(len(patches), 3, 96, 96), if_test=True)
        merge = cfg.TRAINER.Caption.GL_merge_rate
        meta = dict(n_ctx=cfg.TRAINER.Caption.N_CTX, scale=4.0, text_temperature=cfg.TRAIN.spatial_SCALE_text,
                    image_temperature=cfg.TRAIN.spatial_SCALE_image, merge_rate=merge, lossfunc=cfg.TRAIN.LOSSFUNC,
                    learn_scale=cfg.TRAIN.IF_LEARN_SCALE, recipe=dassl_recipe(cfg), captions=CAPTIONS, classnames=GOLDEN_CLASSNAMES,
                    note="image side: vision replaced by the given regions (official dense features are ResNet-only)")
        grads = model.prompt_learner.ctx.grad.clone(), model.prompt_learner.ctx_double.grad.clone()
    print(f"double ranking loss {float(loss):.4f}; image logits {tuple(image_global.shape)}")
    save_golden("taidpt", dict(tokens=tokens, targets=targets, ctx=ctx, ctx_double=ctx_double, caption_global=caption_global,
                               caption_local=caption_local, loss=loss, ctx_grad=grads[0], ctx_double_grad=grads[1], regions=regions,
                               image_global=image_global, image_local=image_local, image_merged=merge * image_global + (1 - merge) * image_local),
                mirror, ["trainers/Caption_distill_double.py", "trainers/utils.py", "train_caption.py",
                         "configs/trainers/Caption_distill_double/rn50_voc2007.yaml", "Dassl.pytorch-master/dassl/evaluation/evaluator.py",
                         "clip/model.py"], __file__, meta=meta)
