"""CLIP-Adapter references from the official code (gaopengcuhk/CLIP-Adapter: clip_adapter.py, which runs inside CoOp).

    python tools/golden/clip_adapter.py MIRROR_OF_gaopengcuhk/CLIP-Adapter MIRROR_OF_KaiyangZhou/CoOp

The official `CustomCLIP` (frozen image encoder, `Adapter`, residual ratio 0.2 hard-coded in its forward, the class
texts re-encoded by its `TextEncoder`) on the golden backbone built by CoOp's vendored `clip/model.py`. Its
`Adapter(1024, 4)` is hard-coded for RN50's width; the official `Adapter` class is built again at the golden width
(256) with seeded weights. Dassl's trainer machinery is stubbed (only its registry decorator is needed to import the
file). Saved: the adapter weights, the logits, the cross entropy and its gradient on both adapter matrices."""
import sys
import types
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from tools.golden.common import official_checkout, GOLDEN_CLASSNAMES, build_official, golden_images, save_golden
from tools.golden.run_official import cuda_on_cpu


def stub_dassl():
    "The names clip_adapter.py imports from Dassl, as inert stand-ins (the trainer class is never used)."
    registry = types.SimpleNamespace(register=lambda *a, **k: (lambda cls: cls))
    modules = {"dassl": {}, "dassl.engine": dict(TRAINER_REGISTRY=registry, TrainerX=object),
               "dassl.metrics": dict(compute_accuracy=None), "dassl.utils": dict(load_pretrained_weights=None, load_checkpoint=None),
               "dassl.optim": dict(build_optimizer=None, build_lr_scheduler=None)}
    for name, attrs in modules.items():
        module = types.ModuleType(name); module.__dict__.update(attrs); sys.modules[name] = module


def official(adapter_mirror, coop_mirror):
    images, labels = golden_images(4, seed=4), torch.tensor([2, 7, 0, 5])
    g = torch.Generator().manual_seed(11)
    saved = dict(sys.modules)
    try:
        stub_dassl()
        with official_checkout(adapter_mirror, coop_mirror), cuda_on_cpu():       # the mirror lacks its PDF's blob
            import clip_adapter
            from clip import model as clip_model
            model = build_official(clip_model)
            cfg = types.SimpleNamespace(DATASET=types.SimpleNamespace(NAME="ImageNet"))
            custom = clip_adapter.CustomCLIP(cfg, GOLDEN_CLASSNAMES, model)
            custom.adapter = clip_adapter.Adapter(model.visual.output_dim, 4)
            with torch.no_grad():
                for layer in (custom.adapter.fc[0], custom.adapter.fc[2]):
                    layer.weight.copy_(torch.randn(layer.weight.shape, generator=g) * layer.weight.shape[1] ** -0.5)
            weights = [custom.adapter.fc[0].weight.detach().clone(), custom.adapter.fc[2].weight.detach().clone()]
            logits = custom(images)
            loss = F.cross_entropy(logits, labels)                     # the loss of CLIP_Adapter.forward_backward
            loss.backward()
            grads = [custom.adapter.fc[0].weight.grad.clone(), custom.adapter.fc[2].weight.grad.clone()]
    finally:
        for k in list(sys.modules):
            if k not in saved: del sys.modules[k]
    return dict(labels=labels, down_weight=weights[0], up_weight=weights[1], logits=logits.detach(), loss=loss.detach(),
                down_grad=grads[0], up_grad=grads[1])


if __name__ == "__main__":
    torch.set_num_threads(1)
    adapter_mirror, coop_mirror = sys.argv[1], sys.argv[2]
    save_golden("clip_adapter", official(adapter_mirror, coop_mirror), adapter_mirror, ["clip_adapter.py"], __file__,
                meta=dict(images="golden_images(4, seed=4)", ratio=0.2, reduction=4, template="a photo of a {}.",
                          backbone_code="KaiyangZhou/CoOp: clip/model.py, clip/clip.py",
                          note="Adapter rebuilt at the golden width 256 (the official CustomCLIP hard-codes RN50's 1024)"))
