"""ProGrad's official CustomCLIP, zero-shot CLIP, ProGradLoss and its trainer's `forward_backward`, whose update is
Dassl.ProGrad's own `TrainerBase.prograd_backward_and_update` (BeierZhu/Prompt-align, folders ProGrad.public and
Dassl.ProGrad.pytorch).

    python tools/golden/prograd.py MIRROR_OF_BeierZhu/Prompt-align

Writes `prograd`: the context as initialised (CTX_INIT True: the ImageNet template's words "a photo of a" in the last
4 of 16 slots, zeros before), then that plus seeded noise (std 0.02, so no slot is zero); logits, zero-shot teacher logits, the CE and KL terms, the gradients of
each, and the projected gradient the official update leaves in `ctx.grad` (lambda 1, T 1). The labels are the first
seeded ones for which the two gradients conflict, so the projection is exercised."""
import sys
from collections import OrderedDict
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from tools.golden.common import GOLDEN_CLASSNAMES, build_official, official_checkout, save_golden
from tools.golden.coop_family import (inputs_meta, cpu_only, reference_images, golden_labels, image_size, import_trainer, load_file_as,
                                      namespace, official_cfg, run_forward_backward, seeded_like, sub_root)

FILES = ["ProGrad.public/trainers/prograd.py", "ProGrad.public/clip/model.py", "ProGrad.public/clip/clip.py",
         "Dassl.ProGrad.pytorch/dassl/engine/trainer.py"]
LAMBDA, T = 1.0, 1.0

def dassl_prograd_trainer(root):
    "The fork's real dassl/engine/trainer.py (TrainerBase.prograd_backward_and_update), its data/model builders stood in."
    import dassl.optim, dassl.utils                                   # the fork's own, light to import
    none = lambda *a, **k: None
    stand_ins = {"dassl.data": dict(DataManager=none), "dassl.modeling": dict(build_head=none, build_backbone=none),
                 "dassl.evaluation": dict(build_evaluator=none), "torch.utils.tensorboard": dict(SummaryWriter=none)}
    trainer = load_file_as("dassl_prograd_trainer", root / "Dassl.ProGrad.pytorch/dassl/engine/trainer.py", stand_ins)
    return trainer, dict(utils=dassl.utils, optim=dassl.optim)

def gradients(model, zs_clip, criterion, images, labels):
    "CE and KL of the official loss and their gradients with respect to the context."
    xe, kl = criterion(model(images), zs_clip(images).detach(), labels)
    ctx = model.prompt_learner.ctx
    return xe, kl, torch.autograd.grad(xe, ctx, retain_graph=True)[0], torch.autograd.grad(kl, ctx)[0]

def main(mirror):
    torch.manual_seed(0)
    images = reference_images(4)
    with official_checkout(mirror) as root, cpu_only():
        sub_root(root, "Dassl.ProGrad.pytorch"); sub_root(root, "ProGrad.public")
        trainer, real = dassl_prograd_trainer(root)
        from clip import model as clip_model_module
        prograd = import_trainer("trainers.prograd", **real)
        prograd.load_clip_to_cpu = lambda cfg: build_official(clip_model_module)      # the golden weights, not a download
        cfg = official_cfg(image_size(), 16, ctx_init=True, dataset="ImageNet", LOSS=dict(NAME="prograd", T=T, LAMBDA=LAMBDA))
        zs_clip = prograd.CLIP(cfg, GOLDEN_CLASSNAMES)
        model = prograd.CustomCLIP(cfg, GOLDEN_CLASSNAMES, prograd.load_clip_to_cpu(cfg))
        for name, p in model.named_parameters(): p.requires_grad_("prompt_learner" in name)
        out = dict(initial_ctx=model.prompt_learner.ctx.detach().clone())
        with torch.no_grad(): model.prompt_learner.ctx.add_(seeded_like(model.prompt_learner.ctx, seed=5))   # init + noise
        criterion = prograd.ProGradLoss(T=T)
        for label_seed in range(50):                                  # the first labels whose two gradients conflict
            labels = golden_labels(len(images), len(GOLDEN_CLASSNAMES), seed=label_seed)
            xe, kl, g_ce, g_kl = gradients(model, zs_clip, criterion, images, labels)
            if (g_ce * g_kl).sum() < 0: break
        else: raise RuntimeError("no conflicting labels found")
        with torch.no_grad(): logits, teacher = model(images), zs_clip(images)
        optim = torch.optim.SGD(model.prompt_learner.parameters(), lr=0.0)           # a step that leaves ctx as it is
        runner, summary = run_forward_backward(
            prograd.ProGrad, model, cfg, images, labels, base=trainer.TrainerBase, zs_clip=zs_clip, criterion=criterion,
            _models=OrderedDict(prompt_learner=model.prompt_learner), _optims=OrderedDict(prompt_learner=optim),
            _scheds=OrderedDict(prompt_learner=None))
        out.update(labels=labels, ctx=model.prompt_learner.ctx.detach().clone(), logits=logits, teacher_logits=teacher,
                   ce=xe.detach(), kl=kl.detach(), grad_ce=g_ce, grad_kl=g_kl, grad_projected=model.prompt_learner.ctx.grad.clone(),
                   trainer_terms=torch.tensor([summary["xe_loss"], summary["kl_loss"]], dtype=torch.float64))
    save_golden("prograd", out, mirror, FILES, __file__,
                meta=dict(**inputs_meta(images), classnames=GOLDEN_CLASSNAMES, n_ctx=16, template="a photo of a {}.",
                          lam=LAMBDA, temperature=T, label_seed=label_seed, dataset="ImageNet"))

if __name__ == "__main__":
    main(sys.argv[1])
