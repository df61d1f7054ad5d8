"""CoOp's official PromptLearner/TextEncoder/CustomCLIP (trainers/coop.py) on the golden backbone.

    python tools/golden/coop.py MIRROR_OF_KaiyangZhou/CoOp

Writes `coop_unified` (M=16 shared context, seeded; class token at the end, middle and front; plus the context
initialised from "a photo of a" with M=4) and `coop_csc` (class-specific context, M=4, end and middle): logits,
the cross entropy of the official trainer's `forward_backward`, and the gradient of the context."""
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from tools.golden.common import GOLDEN_CLASSNAMES, build_official, official_checkout, save_golden
from tools.golden.coop_family import inputs_meta, reference_images, golden_labels, image_size, import_trainer, official_cfg, run_forward_backward, seeded_like

FILES = ["trainers/coop.py", "clip/model.py", "clip/clip.py"]

def official_run(coop, clip_model, cfg, ctx, images, labels):
    "Logits, CE loss and context gradient of the official CustomCLIP with context `ctx` (None: keep its own init)."
    model = coop.CustomCLIP(cfg, GOLDEN_CLASSNAMES, clip_model)
    if ctx is not None:
        with torch.no_grad(): model.prompt_learner.ctx.copy_(ctx)
    initial = model.prompt_learner.ctx.detach().clone()
    model.eval()
    with torch.no_grad(): logits = model(images)
    runner, _ = run_forward_backward(coop.CoOp, model, cfg, images, labels)
    return dict(ctx=initial, logits=logits, loss=runner.losses[0], grad=model.prompt_learner.ctx.grad.clone())

def main(mirror):
    torch.manual_seed(0)
    images = reference_images(4)
    labels = golden_labels(len(images), len(GOLDEN_CLASSNAMES))
    with official_checkout(mirror):
        from clip import model as clip_model_module
        coop = import_trainer("trainers.coop")
        clip_model = build_official(clip_model_module)
        unified = dict(labels=labels)
        ctx = seeded_like(torch.empty(16, 512), seed=1)
        for position in ("end", "middle", "front"):
            out = official_run(coop, clip_model, official_cfg(image_size(), 16, position=position), ctx, images, labels)
            unified.update({f"{position}_{k}": v for k, v in out.items() if k != "ctx"})
        unified["ctx"] = ctx
        words = official_run(coop, clip_model, official_cfg(image_size(), 4, ctx_init="a photo of a"), None, images, labels)
        unified.update({f"word_init_{k}": v for k, v in words.items()})
        save_golden("coop_unified", unified, mirror, FILES, __file__,
                    meta=dict(**inputs_meta(images), classnames=GOLDEN_CLASSNAMES, n_ctx=16, positions=["end", "middle", "front"],
                              word_init=dict(ctx_init="a photo of a", n_ctx=4, note="context as the official init leaves it")))
        csc = dict(labels=labels, ctx=seeded_like(torch.empty(len(GOLDEN_CLASSNAMES), 4, 512), seed=2))
        for position in ("end", "middle"):
            out = official_run(coop, clip_model, official_cfg(image_size(), 4, csc=True, position=position), csc["ctx"], images, labels)
            csc.update({f"{position}_{k}": v for k, v in out.items() if k != "ctx"})
        save_golden("coop_csc", csc, mirror, FILES, __file__,
                    meta=dict(**inputs_meta(images), classnames=GOLDEN_CLASSNAMES, n_ctx=4, class_specific=True, positions=["end", "middle"]))

if __name__ == "__main__":
    main(sys.argv[1])
