"""GOPro references: the official forward and loss (`trainers/gopro.py`) on CPU, with the augmented views handed in.

    python tools/golden/gopro.py MIRROR_OF_mainaksingha01/GOPro

The official training forward needs CUDA only for its augmentations (`CustomCLIP.mocov3` and `augmixtrans` move the
batch to "cuda" and round-trip it through PIL); here both are replaced on the instance by functions returning given
view tensors, so `CustomCLIP.forward` itself runs: the patched vision tower's per-layer tokens, `PromptLearner.forward`
(AdaIN style and content projectors, the layer mix rho, the shifted context), the text encoder, the SimCLR projector;
then `GOProLoss` and `SIMCLRLoss`. Adjustments to the golden backbone, each where the official code hard-codes
ViT-B/16: `clip/model.py`'s cast of the pooled feature to fp16 before `proj` is removed from the source (fp32 on
CPU, as for every reference); `rho` is rebuilt as Linear(4, 1) for the 4 layers (Linear(12, 1)); `frg` pools to the
text width (it pools to the embedding width, equal to the text width on ViT-B/16 only); `simproj` is rebuilt at the
embedding width 256 (Linear(512, 512) + BatchNorm1d(512)); only the first 4 of the 12 style and content projectors
are used, as the official loop over layers does. `pandas` (imported, unused) and Dassl are stubbed.
"""
import sys
import types
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from tools.golden.common import GOLDEN_CLASSNAMES, build_official, golden_images, official_checkout, save_golden

LABELS = [1, 4, 6, 2]
N = len(LABELS)

def stub(name, **attrs):
    module = types.ModuleType(name); module.__dict__.update(attrs); sys.modules[name] = module

def load_official(root):
    model_py = root / "clip" / "model.py"
    source = model_py.read_text()
    assert source.count("x = x.to(torch.float16)") == 1
    model_py.write_text(source.replace("x = x.to(torch.float16)", "pass  # fp16 cast removed for the fp32 reference"))
    registry = types.SimpleNamespace(register=lambda: (lambda cls: cls))
    stub("pandas", DataFrame=dict)
    stub("dassl"); stub("dassl.engine", TRAINER_REGISTRY=registry, TrainerX=object); stub("dassl.metrics", compute_accuracy=None)
    stub("dassl.utils", MetricMeter=None, AverageMeter=None, load_pretrained_weights=None, load_checkpoint=None, save_checkpoint=None)
    stub("dassl.optim", build_optimizer=None, build_lr_scheduler=None)
    from clip import model as clip_module
    from trainers import gopro
    return clip_module, gopro

def learned_names(layers):
    "The learned tensors, in the order their seeded values are drawn (clipexplore's parameter names)."
    names = ["ctx"] + [f"{part}.{i}.{kind}" for i in range(layers) for part in ("style", "content") for kind in ("weight", "bias")]
    return names + ["rho.weight", "rho.bias", "projector.0.weight", "projector.0.bias", "projector.1.weight", "projector.1.bias"]

def learned_values(shapes, seed=40):
    "Seeded values for `shapes` (name -> shape, in `learned_names` order); the test draws the same (they are too large to store)."
    g, out = torch.Generator().manual_seed(seed), {}
    for name, shape in shapes.items():
        scale = 0.3 if name == "ctx" else 1.0 if name.startswith(("rho", "projector.1.weight")) else 0.05
        out[name] = (1.0 if name == "projector.1.weight" else 0.0) + scale * torch.randn(shape, generator=g)
    return out

def probes(width, embed, seed=41):
    "Fixed random vectors that reduce the [out, in] weight gradients to [out] for storage."
    g = torch.Generator().manual_seed(seed)
    return torch.randn(width, generator=g), torch.randn(embed, generator=g)

def set_learned(model, layers):
    "Golden-size modules where the official ones are hard-coded, and the seeded values for everything learned."
    pl = model.prompt_learner
    pl.rho, pl.frg = nn.Linear(layers, 1), nn.AdaptiveAvgPool2d((1, pl.ctx.shape[-1]))
    embed = model.image_encoder.output_dim
    model.simproj.linear, model.simproj.batchnorm = nn.Linear(embed, embed), nn.BatchNorm1d(embed)
    modules = {"style": pl.style.linear, "content": pl.content.linear}
    params = {"ctx": pl.ctx, "rho.weight": pl.rho.weight, "rho.bias": pl.rho.bias,
              "projector.0.weight": model.simproj.linear.weight, "projector.0.bias": model.simproj.linear.bias,
              "projector.1.weight": model.simproj.batchnorm.weight, "projector.1.bias": model.simproj.batchnorm.bias,
              **{f"{part}.{i}.{kind}": getattr(modules[part][i], kind) for part in modules for i in range(layers) for kind in ("weight", "bias")}}
    params = {name: params[name] for name in learned_names(layers)}
    with torch.no_grad():
        for name, value in learned_values({k: p.shape for k, p in params.items()}).items(): params[name].copy_(value)
    return params

def run_official(mirror, images, moco, augmix):
    labels = torch.tensor(LABELS)
    with official_checkout(mirror) as root:
        clip_module, gopro = load_official(Path(root))
        clip_model = build_official(clip_module)
        node = types.SimpleNamespace
        cfg = node(TRAINER=node(GOPRO=node(N_CTX=4, CTX_INIT="a photo of a", PREC="fp32")), INPUT=node(SIZE=(96, 96)))
        model = gopro.CustomCLIP(cfg, GOLDEN_CLASSNAMES, clip_model)
        layers = len(clip_model.visual.transformer.resblocks)
        learned = set_learned(model, layers)
        for p in model.parameters(): p.requires_grad_(False)
        for p in learned.values(): p.requires_grad_(True)
        model.mocov3, model.augmixtrans = (lambda images: moco), (lambda images: augmix)
        model.train()
        with torch.no_grad():
            _, data = model.image_encoder(images)
            prompts = model.prompt_learner(data)                                              # [B, C, L, D]
        shift = prompts[:, 0, 1:1 + model.prompt_learner.n_ctx] - model.prompt_learner.ctx.detach()   # [B, n_ctx, D]
        outputs = model(images, labels)
        logits, text, text_moco, text_augmix, proj, proj_moco, _ = outputs
        criterion = gopro.GOProLoss(T=0.07)
        total = criterion(*outputs)
        total.backward()
        out = dict(shift=shift, logits=logits.detach(), loss=total.detach(), ce=F.cross_entropy(logits, labels).detach(),
                   consistency=(F.mse_loss(text, text_moco) + F.mse_loss(text, text_augmix)).detach(),
                   simclr=gopro.SIMCLRLoss(temperature=0.1)(proj, proj_moco).detach(),
                   learned_sums=torch.stack([v.detach().double().sum() for v in learned.values()]),
                   **{f"grad.{k}": learned[k].grad.clone() for k in ("ctx", "rho.weight")})
        probe_width, probe_embed = probes(clip_model.visual.conv1.weight.shape[0], clip_model.visual.output_dim)
        for part in ("style", "content"):                                                   # [layers, D_t]: W.grad @ probe
            out[f"grad.{part}"] = torch.stack([learned[f"{part}.{i}.weight"].grad @ probe_width for i in range(layers)])
            out[f"grad.{part}_bias"] = torch.stack([learned[f"{part}.{i}.bias"].grad for i in range(layers)])
        out["grad.projector.0.weight"] = learned["projector.0.weight"].grad @ probe_embed
    return out

if __name__ == "__main__":
    torch.set_num_threads(1)
    mirror = sys.argv[1]
    images, moco, augmix = golden_images(N), golden_images(N, seed=1), golden_images(N, seed=2)
    out = run_official(mirror, images, moco, augmix)
    assert torch.isclose(out["loss"], out["ce"] + out["consistency"] + 0.1 * out["simclr"])
    print({k: round(float(out[k]), 6) for k in ("loss", "ce", "consistency", "simclr")})
    save_golden("gopro", dict(labels=torch.tensor(LABELS), image_sums=torch.stack([x.double().sum() for x in (images, moco, augmix)]), **out),
                mirror, ["trainers/gopro.py", "clip/model.py", "utils.py"], __file__,
                meta=dict(classnames=GOLDEN_CLASSNAMES, n_ctx=4, ctx_init="a photo of a", consistency_weight=1.0, simclr_weight=0.1,
                          temperature=0.1, images=f"golden_images({N}, seed=0), moco view seed 1, augmix view seed 2",
                          note="augmentations handed in (CUDA in the official code); rho, frg, simproj at golden sizes; fp16 cast removed"))
