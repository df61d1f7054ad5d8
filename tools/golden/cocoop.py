"""CoCoOp's official PromptLearner (with its meta-net) and CustomCLIP (trainers/cocoop.py) on the golden backbone.

    python tools/golden/cocoop.py MIRROR_OF_KaiyangZhou/CoOp

Writes `cocoop`: the official config's context (M=4 from "a photo of a") as initialised, then seeded context and
meta-net weights; the logits (eval mode), the cross entropy the CustomCLIP returns in training mode, and the
gradients of the context and of every meta-net weight."""
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from tools.golden.common import GOLDEN_CLASSNAMES, build_official, official_checkout, save_golden
from tools.golden.coop_family import inputs_meta, reference_images, golden_labels, image_size, import_trainer, official_cfg, seeded_like

FILES = ["trainers/cocoop.py", "clip/model.py", "clip/clip.py"]
META_NET = ("linear1.weight", "linear1.bias", "linear2.weight", "linear2.bias")

def main(mirror):
    torch.manual_seed(0)
    images = reference_images(4)
    labels = golden_labels(len(images), len(GOLDEN_CLASSNAMES))
    with official_checkout(mirror):
        from clip import model as clip_model_module
        cocoop = import_trainer("trainers.cocoop")
        cfg = official_cfg(image_size(), 4, ctx_init="a photo of a")
        model = cocoop.CustomCLIP(cfg, GOLDEN_CLASSNAMES, build_official(clip_model_module))
        learner = model.prompt_learner
        out = dict(labels=labels, initial_ctx=learner.ctx.detach().clone())
        with torch.no_grad():                                    # seeded values; std 0.1 so the meta-net's shift matters
            learner.ctx.copy_(seeded_like(learner.ctx, seed=3))
            for i, name in enumerate(META_NET):
                p = learner.meta_net.state_dict()[name]; p.copy_(seeded_like(p, seed=10 + i, std=0.1))
        out["ctx"] = learner.ctx.detach().clone()
        out.update({f"meta_net.{k}": v.clone() for k, v in learner.meta_net.state_dict().items()})
        model.eval()
        with torch.no_grad(): out["logits"] = model(images)
        model.train()
        loss = model(images, labels)                             # the official training forward returns the CE
        loss.backward()
        out["loss"] = loss.detach()
        out["grad_ctx"] = learner.ctx.grad.clone()
        out.update({f"grad_meta_net.{k}": p.grad.clone() for k, p in learner.meta_net.named_parameters()})
    save_golden("cocoop", out, mirror, FILES, __file__,
                meta=dict(**inputs_meta(images), classnames=GOLDEN_CLASSNAMES, n_ctx=4,
                          ctx_init="a photo of a", config="configs/trainers/CoCoOp/vit_b16_c4_ep10_batch1_ctxv1.yaml"))

if __name__ == "__main__":
    main(sys.argv[1])
