"""MetaPrompt references: the official forward (mixed, image-side and text-side logits), the in-domain loss and its
gradients, and both meta steps on a fixed split, from the official trainers run on CPU.

    python tools/golden/metaprompt.py MIRROR_OF_Vill-Lab/2024-TIP-MetaPrompt

`trainers/meta.py` is imported with its Dassl imports stubbed (only the trainer registry, `compute_accuracy` and
names are used) and `Tensor.cuda` made a no-op. `Meta_B2N.forward_backward` and `Meta_DG.forward_backward` are the
official functions themselves, called on a stand-in trainer whose `model_backward_and_update`
* records the gradients of the first (in-domain) loss without stepping, so that both sides compute the meta step at
  the same prompts (the official code steps first; clipexplore deviation 3),
* takes later (inner) steps as plain SGD steps at `INNER_LR` (the official optimiser adds momentum and weight decay;
  deviation 2), out of place so that the official restore (`ctx.data = saved`) restores. With an in-place step, as
  a real optimiser takes, the parameter aliases the saved copy after the first restore and the third domain's inner
  step starts from the second's (deviation 1); that run is stored as `dg_aliased_*`.
The class split comes from the official `random.shuffle` under a fixed seed and is stored with the reference; every
cross-entropy and every `autograd.grad` the official code computes is recorded in order. LAYERS is 4 (the golden
towers' depth; the official config's 12 is all layers of ViT-B/16); the frozen-text template is the official PACS one.
"""
import random
import sys
import types
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from tools.golden.common import GOLDEN_CLASSNAMES, build_official, golden_images, official_checkout, save_golden

N_CTX, N_PRO, LAYERS, META_STEP, INNER_LR, SPLIT_SEED = 2, 2, 4, 0.2, 1.0, 3
LABELS = [0, 5, 2, 7, 1, 3, 6, 4, 2, 5]
DOMAINS = [0, 1, 2, 0, 1, 2, 0, 1, 2, 0]

def stub_dassl():
    "The Dassl names `trainers/meta.py` imports; only the registry decorator and `compute_accuracy` are ever called."
    registry = types.SimpleNamespace(register=lambda: (lambda cls: cls))
    modules = {"dassl": {}, "dassl.engine": dict(TRAINER_REGISTRY=registry, TrainerX=object),
               "dassl.metrics": dict(compute_accuracy=lambda logits, label: [torch.tensor(0.0)]),
               "dassl.utils": dict(load_pretrained_weights=None, load_checkpoint=None),
               "dassl.optim": dict(build_optimizer=None, build_lr_scheduler=None)}
    for name, attrs in modules.items():
        module = types.ModuleType(name); module.__dict__.update(attrs); sys.modules[name] = module

def config():
    node = types.SimpleNamespace
    return node(TRAINER=node(META=node(N_CTX=N_CTX, N_PRO=N_PRO, LAYERS=LAYERS, META_STEP=META_STEP, PREC="fp32")),
                INPUT=node(SIZE=(96, 96)), DATASET=node(NAME="PACS"))

class Recorder:
    "Wraps a module's `cross_entropy` / `grad` to record every value the official code computes, in order."
    def __init__(self, module, name):
        self.values, self.module, self.name = [], module, name
    def __getattr__(self, attr):
        fn = getattr(self.module, attr)
        if attr != self.name: return fn
        def recorded(*args, **kwargs):
            out = fn(*args, **kwargs); self.values.append(out[0] if isinstance(out, tuple) else out); return out
        return recorded

class StandIn:
    "The parts of Dassl's TrainerX that `forward_backward` touches."
    def __init__(self, model, batch, in_place=True):
        self.model, self.batch, self.first_grads, self.in_place = model, batch, None, in_place
        self.dm = types.SimpleNamespace(dataset=types.SimpleNamespace(classnames=GOLDEN_CLASSNAMES))
        self.meta_step, self.batch_idx, self.num_batches = META_STEP, 0, 2
    def parse_batch_train(self, batch): return tuple(batch[k] for k in ("img", "label", "domain") if k in batch)
    def get_current_lr(self): return INNER_LR
    def update_lr(self): pass
    def model_backward_and_update(self, loss):
        params = [p for p in self.model.parameters() if p.requires_grad]
        for p in params: p.grad = None
        loss.backward()
        if self.first_grads is None:                       # the in-domain step: record, do not step
            self.first_grads = {"text": self.model.prompt_learner.ctx.grad.clone(), "vision": self.model.vision_prompt_learner.ctx.grad.clone()}
            return
        with torch.no_grad():
            for p in params:
                if self.in_place: p.data -= INNER_LR * p.grad       # as an optimiser steps: the official restore then aliases
                else: p.data = p.data - INNER_LR * p.grad           # new storage: the official restore really restores

def build(meta, clip_model, text_ctx, vision_ctx):
    model = meta.CustomCLIP(config(), GOLDEN_CLASSNAMES, clip_model)
    with torch.no_grad():
        model.prompt_learner.ctx.copy_(text_ctx); model.vision_prompt_learner.ctx.copy_(vision_ctx)
    return model

def run_official(mirror, images, text_ctx, vision_ctx):
    out = {}
    cuda = torch.Tensor.cuda
    torch.Tensor.cuda = lambda self, *a, **k: self
    try:
        with official_checkout(mirror):
            stub_dassl()
            from clip import model as clip_module
            from trainers import meta
            clip_model = build_official(clip_module)
            labels, domains = torch.tensor(LABELS), torch.tensor(DOMAINS)
            model = build(meta, clip_model, text_ctx, vision_ctx).eval()
            with torch.no_grad(): out["logits"] = model(images)
            model.train()
            with torch.no_grad(): _, out["logits_image"], out["logits_text"] = model(images)
            runs = (("b2n", meta.Meta_B2N, False), ("dg", meta.Meta_DG, False), ("dg_aliased", meta.Meta_DG, True))
            for name, trainer, in_place in runs:
                model = build(meta, clip_model, text_ctx, vision_ctx).train()
                stand_in = StandIn(model, dict(img=images, label=labels, **({"domain": domains} if "dg" in name else {})), in_place)
                ce, grads = Recorder(F, "cross_entropy"), Recorder(torch.autograd, "grad")
                meta.F, meta.autograd = ce, grads
                random.seed(SPLIT_SEED)
                trainer.forward_backward(stand_in, stand_in.batch)
                meta.F, meta.autograd = F, torch.autograd
                out[f"{name}_ce"] = torch.stack([v.detach() for v in ce.values])       # in-domain mix, image, text; then inner, held-out per split
                out[f"{name}_meta_grad"] = torch.stack(grads.values).sum(0)
                out[f"{name}_meta_splits"] = torch.tensor(len(grads.values))
                out[f"{name}_grad_text"], out[f"{name}_grad_vision"] = stand_in.first_grads["text"], stand_in.first_grads["vision"]
    finally:
        torch.Tensor.cuda = cuda
    for k in ("dg_aliased_ce", "dg_aliased_meta_splits", "dg_aliased_grad_text", "dg_aliased_grad_vision"): del out[k]
    classes = list(range(len(GOLDEN_CLASSNAMES)))
    random.seed(SPLIT_SEED); random.shuffle(classes)                                  # the split forward_backward drew
    half = (len(classes) - 1) // 2 + 1
    out["class_groups"] = torch.tensor([classes[:half], classes[half:]])
    return out

if __name__ == "__main__":
    torch.set_num_threads(1)
    mirror = sys.argv[1]
    g = torch.Generator().manual_seed(20)
    text_ctx = 0.3 * torch.randn(LAYERS, N_CTX, 512, generator=g)
    vision_ctx = 0.3 * torch.randn(LAYERS, N_PRO, 768, generator=g)
    images = golden_images(len(LABELS))
    out = run_official(mirror, images, text_ctx, vision_ctx)
    print({k: tuple(v.shape) for k, v in out.items()}, "splits used:", int(out["b2n_meta_splits"]), int(out["dg_meta_splits"]))
    save_golden("metaprompt", dict(image_sum=images.double().sum(), labels=torch.tensor(LABELS), domains=torch.tensor(DOMAINS),
                                   text_ctx=text_ctx, vision_ctx=vision_ctx, **out),
                mirror, ["trainers/meta.py", "clip/model.py", "clip/clip.py"], __file__,
                meta=dict(classnames=GOLDEN_CLASSNAMES, n_ctx=N_CTX, n_pro=N_PRO, layers=LAYERS, meta_step=META_STEP,
                          inner_lr=INNER_LR, split_seed=SPLIT_SEED, images=f"golden_images({len(LABELS)})", template="a photo of a {}",
                          note="Dassl stubbed; in-domain step recorded not taken; inner steps plain SGD at inner_lr"))
