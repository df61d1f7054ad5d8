"""VPT (shallow and deep), IVLP and MaPLe references from muzairkhattak/multimodal-prompt-learning: logits, the
training loss and the gradients of every learned parameter, from each official trainer's `CustomCLIP`.

    python tools/golden/mpl.py MIRROR_OF_muzairkhattak/multimodal-prompt-learning MIRROR_OF_KaiyangZhou/Dassl.pytorch

Each config is the official base-to-new config (its values merged by Dassl's own `get_cfg_default` and the
repository's own `extend_cfg` from `train.py`), with the golden backbone's image size, fp32, and a prompt depth of
DEPTH = 3 (the golden towers have 4 layers: layers 0-2 prompted, layer 3 not). The official code's hard-coded
`.half()` and `.cuda()` are made no-ops (fp32 on the CPU); `dassl.engine` (which imports tensorboard and every
trainer) is stubbed by its registry decorator, the rest of Dassl is the real one. Every learned parameter is set to
seeded random values (so zero-initialised or word-initialised prompts hide nothing) and stored in clipexplore's
layout; MaPLe's coupling matrices (1.2 MB each) are regenerated from `coupler_values(seed)` instead, and only their
first GRAD_COLUMNS input columns of gradient are stored."""
import ast
import contextlib
import sys
import types
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from tools.golden.common import GOLDEN_CLASSNAMES, GOLDEN_CLIP_CONFIG, build_official, golden_images, mirror_provenance, official_checkout, save_golden
from tools.golden.run_official import cuda_on_cpu

DEPTH, LABELS, GRAD_COLUMNS = 3, torch.tensor([0, 3, 5, 7]), 8
TEXT_STD, VISUAL_STD = 0.05, 0.5           # scales of the seeded learned values: token-embedding-like, patch-token-like
IMAGE_SIZE = GOLDEN_CLIP_CONFIG["vision_cfg"]["image_size"]

@contextlib.contextmanager
def fp32_on_cpu():
    "The official model code casts prompts with `.half()` and moves tensors with `.cuda()`: both become no-ops."
    half = torch.Tensor.half
    torch.Tensor.half = lambda self, *a, **k: self
    try:
        with cuda_on_cpu(): yield
    finally: torch.Tensor.half = half

def stub_dassl_engine():
    "`dassl.engine` imports tensorboard and every Dassl trainer; the official trainers use only its registry and base class."
    engine = types.ModuleType("dassl.engine")
    engine.TRAINER_REGISTRY = types.SimpleNamespace(register=lambda *a, **k: (lambda cls: cls))
    engine.TrainerX = type("TrainerX", (), {})
    sys.modules["dassl.engine"] = engine

def official_cfg(root, config_file, overrides):
    "Dassl's default config, the repository's `extend_cfg` (read from its train.py), its config file, then `overrides`."
    from dassl.config import get_cfg_default
    tree = ast.parse((Path(root) / "train.py").read_text())
    extend = next(node for node in tree.body if isinstance(node, ast.FunctionDef) and node.name == "extend_cfg")
    namespace = {}
    exec(compile(ast.Module(body=[extend], type_ignores=[]), "train.py", "exec"), namespace)
    cfg = get_cfg_default()
    namespace["extend_cfg"](cfg)
    cfg.merge_from_file(str(Path(root) / config_file))
    cfg.merge_from_list([x for k, v in overrides.items() for x in (k, v)])
    return cfg

def seeded_(params, seed, std_of):
    "Fill each named parameter (sorted by name) with seeded N(0, std_of(name)^2)."
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in sorted(params.items()):
            p.copy_(torch.randn(p.shape, generator=g) * std_of(name))

def coupler_values(seed, depth=DEPTH, text_width=512, vision_width=768):
    "MaPLe's coupling maps as clipexplore's `couplers.{j}.weight/bias` (j = 0: the layer-0 `proj`), from a seed."
    g = torch.Generator().manual_seed(seed)
    out = {}
    for j in range(depth):
        out[f"couplers.{j}.weight"] = torch.randn(vision_width, text_width, generator=g) * text_width ** -0.5 * 20
        out[f"couplers.{j}.bias"] = torch.randn(vision_width, generator=g) * 0.5
    return out

def learned_parameters(model):
    "The parameters the official trainers train: names with 'prompt_learner' or 'VPT' (as their build_model selects)."
    return {n: p for n, p in model.named_parameters() if "prompt_learner" in n or "VPT" in n}

def stack_layers(named, first, deeper, layers):
    "[layers, n, D] from the layer-0 tensor `first` and the per-block ones `deeper.format(i)` for i = 1..layers-1."
    return torch.stack([named[first]] + [named[deeper.format(i)] for i in range(1, layers)])

def forward_and_grads(model, images, call):
    "Official logits (eval), training loss and the learned parameters' gradients (train)."
    model.eval()
    with torch.no_grad(): logits = call(model, images, None)
    model.train()
    loss = call(model, images, LABELS)
    loss.backward()
    model.eval()
    return logits, loss

def vpt_reference(root, depth, n_ctx=8, seed=1):
    "VPT: only visual prompts, classifier = frozen 'a photo of a {}.' text features."
    from clip import model as clip_model
    import trainers.vpt as vpt
    cfg = official_cfg(root, "configs/trainers/VPT/vit_b16_c2_ep5_batch4_4.yaml",
                       {"INPUT.SIZE": (IMAGE_SIZE, IMAGE_SIZE), "TRAINER.VPT.PREC": "fp32",
                        "TRAINER.VPT.PROMPT_DEPTH_VISION": depth, "TRAINER.VPT.N_CTX_VISION": n_ctx})
    design = dict(trainer="VPT", vision_depth=depth, vision_ctx=n_ctx, language_depth=0, language_ctx=0)
    model = vpt.CustomCLIP(cfg, GOLDEN_CLASSNAMES, build_official(clip_model, design_details=design)).float()
    learned = learned_parameters(model)
    seeded_(learned, seed, lambda n: VISUAL_STD)
    images = golden_images()
    logits, loss = forward_and_grads(model, images, lambda m, x, y: m(x) if y is None else m(x, y, training=True))
    values = stack_layers(learned, "image_encoder.VPT", "image_encoder.transformer.resblocks.{}.VPT_shallow", depth)
    grads = stack_layers({n: p.grad for n, p in learned.items()}, "image_encoder.VPT",
                         "image_encoder.transformer.resblocks.{}.VPT_shallow", depth)
    return dict(labels=LABELS, logits=logits, loss=loss, prompts=values, grad_prompts=grads), cfg

def ivlp_reference(root, depth, n_ctx=2, seed=2):
    "IVLP: independent deep text and visual prompts (the official 2+2 tokens, 'a photo of a' with 2 of its words replaced)."
    from clip import model as clip_model
    import trainers.independentVL as ivlp
    cfg = official_cfg(root, "configs/trainers/IVLP/vit_b16_c2_ep5_batch4_2+2ctx.yaml",
                       {"INPUT.SIZE": (IMAGE_SIZE, IMAGE_SIZE), "TRAINER.IVLP.PREC": "fp32", "TRAINER.IVLP.N_CTX_TEXT": n_ctx,
                        "TRAINER.IVLP.N_CTX_VISION": n_ctx, "TRAINER.IVLP.PROMPT_DEPTH_TEXT": depth,
                        "TRAINER.IVLP.PROMPT_DEPTH_VISION": depth})
    design = dict(trainer="IVLP", vision_depth=depth, language_depth=depth, vision_ctx=n_ctx, language_ctx=n_ctx)
    model = ivlp.CustomCLIP(cfg, GOLDEN_CLASSNAMES, build_official(clip_model, design_details=design)).float()
    learned = learned_parameters(model)
    seeded_(learned, seed, lambda n: VISUAL_STD if n.startswith("image_encoder") else TEXT_STD)
    images = golden_images()
    logits, loss = forward_and_grads(model, images, lambda m, x, y: m(x, y))
    out = dict(labels=LABELS, logits=logits, loss=loss)
    for tensors, prefix in [(learned, ""), ({n: p.grad for n, p in learned.items()}, "grad_")]:
        text = stack_layers(tensors, "prompt_learner.ctx", "text_encoder.transformer.resblocks.{}.VPT_shallow", depth)
        out.update({f"{prefix}ctx": text[0], f"{prefix}deep_text": text[1:],
                    f"{prefix}visual": stack_layers(tensors, "image_encoder.VPT", "image_encoder.transformer.resblocks.{}.VPT_shallow", depth)})
    return out, cfg

def maple_reference(root, depth, n_ctx=2, seed=3):
    "MaPLe: deep text prompts, and visual prompts that are linear maps of them."
    from clip import model as clip_model
    import trainers.maple as maple
    cfg = official_cfg(root, "configs/trainers/MaPLe/vit_b16_c2_ep5_batch4_2ctx.yaml",
                       {"INPUT.SIZE": (IMAGE_SIZE, IMAGE_SIZE), "TRAINER.MAPLE.PREC": "fp32", "TRAINER.MAPLE.N_CTX": n_ctx,
                        "TRAINER.MAPLE.PROMPT_DEPTH": depth})
    design = dict(trainer="MaPLe", vision_depth=0, language_depth=0, vision_ctx=0, language_ctx=0, maple_length=n_ctx)
    model = maple.CustomCLIP(cfg, GOLDEN_CLASSNAMES, build_official(clip_model, design_details=design)).float()
    learned = learned_parameters(model)
    official_coupler = lambda j, kind: f"prompt_learner.proj.{kind}" if j == 0 else f"prompt_learner.compound_prompt_projections.{j - 1}.{kind}"
    text_prompts = {n: p for n, p in learned.items() if n == "prompt_learner.ctx" or ".compound_prompts_text." in n}
    seeded_(text_prompts, seed, lambda n: TEXT_STD)
    couplers = coupler_values(seed)
    with torch.no_grad():
        for j in range(depth):
            for kind in ("weight", "bias"): learned[official_coupler(j, kind)].copy_(couplers[f"couplers.{j}.{kind}"])
    if set(learned) != set(text_prompts) | {official_coupler(j, k) for j in range(depth) for k in ("weight", "bias")}:
        raise RuntimeError(f"unexpected learned parameters {sorted(learned)}")
    images = golden_images()
    logits, loss = forward_and_grads(model, images, lambda m, x, y: m(x, y))
    out = dict(labels=LABELS, logits=logits, loss=loss)
    for tensors, prefix in [(learned, ""), ({n: p.grad for n, p in learned.items()}, "grad_")]:
        text = torch.stack([tensors["prompt_learner.ctx"]] + [tensors[f"prompt_learner.compound_prompts_text.{i}"] for i in range(depth - 1)])
        out.update({f"{prefix}ctx": text[0], f"{prefix}deep_text": text[1:]})
    for j in range(depth):
        out[f"grad_couplers.{j}.weight"] = learned[official_coupler(j, "weight")].grad[:, :GRAD_COLUMNS]
        out[f"grad_couplers.{j}.bias"] = learned[official_coupler(j, "bias")].grad
    return out, cfg

FILES = {"vpt": ["trainers/vpt.py", "clip/model.py", "configs/trainers/VPT/vit_b16_c2_ep5_batch4_4.yaml", "train.py"],
         "ivlp": ["trainers/independentVL.py", "clip/model.py", "configs/trainers/IVLP/vit_b16_c2_ep5_batch4_2+2ctx.yaml", "train.py"],
         "maple": ["trainers/maple.py", "clip/model.py", "configs/trainers/MaPLe/vit_b16_c2_ep5_batch4_2ctx.yaml", "train.py"]}

if __name__ == "__main__":
    torch.set_num_threads(1)
    mirror, dassl = sys.argv[1], sys.argv[2]
    dassl_used = "{}@{}: dassl/config/defaults.py".format(*mirror_provenance(dassl))
    with official_checkout(mirror, dassl) as (root, _), fp32_on_cpu():
        stub_dassl_engine()
        torch.manual_seed(0)
        runs = [("mpl_vpt_shallow", "vpt", lambda: vpt_reference(root, 1), dict(depth=1, n_ctx=8)),
                ("mpl_vpt_deep", "vpt", lambda: vpt_reference(root, DEPTH), dict(depth=DEPTH, n_ctx=8)),
                ("mpl_ivlp", "ivlp", lambda: ivlp_reference(root, DEPTH), dict(depth=DEPTH, n_ctx=2, n_visual=2, ctx_init="a photo of a")),
                ("mpl_maple", "maple", lambda: maple_reference(root, DEPTH), dict(depth=DEPTH, n_ctx=2, ctx_init="a photo of a",
                                                                                   coupler_seed=3, grad_columns=GRAD_COLUMNS))]
        for name, kind, run, meta in runs:
            tensors, cfg = run()
            print(f"{name}: loss {float(tensors['loss']):.6f}, logits[0] {tensors['logits'][0, :4].tolist()}")
            save_golden(name, tensors, mirror, FILES[kind], __file__,
                        meta=dict(meta, dassl=dassl_used, classnames=GOLDEN_CLASSNAMES, labels=LABELS.tolist(), text_std=TEXT_STD, visual_std=VISUAL_STD,
                                  images="golden_images() (4, seed 0)", note="fp32 on CPU (.half()/.cuda() no-ops); learned values seeded; loss = CE in train mode"))
