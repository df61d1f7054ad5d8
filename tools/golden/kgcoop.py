"""KgCoOp's official PromptLearner/CustomCLIP and its trainer's `forward_backward` (KgCoOp/trainers/kgcoop.py).

    python tools/golden/kgcoop.py MIRROR_OF_htyao89/KgCoOp

Writes `kgcoop`: the context as initialised (CTX_INIT True: "a photo of a", M=4), then seeded; the logits, the
knowledge term (`score`), the trainer's loss CE + W * score with W = 8.0 (scripts/run.sh), and the context gradient.
The official PromptLearner loads a second CLIP for the hand-crafted features and moves it to CUDA: here it is the
same golden backbone and `.cuda()` is a no-op. The template is the ImageNet one ("a photo of a {}.")."""
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from tools.golden.common import GOLDEN_CLASSNAMES, build_official, official_checkout, save_golden
from tools.golden.coop_family import (inputs_meta, cpu_only, reference_images, golden_labels, image_size, import_trainer, official_cfg,
                                      run_forward_backward, seeded_like, sub_root)

FILES = ["KgCoOp/trainers/kgcoop.py", "KgCoOp/clip/model.py", "KgCoOp/clip/clip.py", "KgCoOp/scripts/run.sh"]
WEIGHT = 8.0

def main(mirror):
    torch.manual_seed(0)
    images = reference_images(4)
    labels = golden_labels(len(images), len(GOLDEN_CLASSNAMES))
    with official_checkout(mirror) as root, cpu_only():
        sub_root(root, "KgCoOp")
        from clip import model as clip_model_module
        kgcoop = import_trainer("trainers.kgcoop")
        kgcoop.load_clip_to_cpu = lambda cfg: build_official(clip_model_module)       # the golden weights, not a download
        cfg = official_cfg(image_size(), 4, ctx_init=True, dataset="ImageNet")
        model = kgcoop.CustomCLIP(cfg, GOLDEN_CLASSNAMES, kgcoop.load_clip_to_cpu(cfg))
        out = dict(labels=labels, initial_ctx=model.prompt_learner.ctx.detach().clone(),
                   handcrafted=model.ori_embedding.detach().clone())
        with torch.no_grad(): model.prompt_learner.ctx.copy_(seeded_like(model.prompt_learner.ctx, seed=4))
        out["ctx"] = model.prompt_learner.ctx.detach().clone()
        with torch.no_grad(): out["logits"], out["knowledge"] = model(images)
        for name, p in model.named_parameters(): p.requires_grad_("ctx" in name)          # as KgCoOp.build_model
        runner, _ = run_forward_backward(kgcoop.KgCoOp, model, cfg, images, labels, w=WEIGHT)
        out["loss"], out["grad_ctx"] = runner.losses[0], model.prompt_learner.ctx.grad.clone()
    save_golden("kgcoop", out, mirror, FILES, __file__,
                meta=dict(**inputs_meta(images), classnames=GOLDEN_CLASSNAMES, n_ctx=4, ctx_init="a photo of a",
                          weight=WEIGHT, template="a photo of a {}.", dataset="ImageNet"))

if __name__ == "__main__":
    main(sys.argv[1])
