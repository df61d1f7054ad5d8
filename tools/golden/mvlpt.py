"""MVLPT references for its three prompt types (CoOp, VPT, UPT): prompts after the coupling, logits, loss, gradients.

    python tools/golden/mvlpt.py MIRROR_OF_sIncerass/MVLPT MIRROR_OF_KaiyangZhou/Dassl.pytorch

Runs `trainers/mvlpt.py` (`MultitaskVLPromptLearner`, `ImageEncoder`, `TextEncoder`, `CustomCLIP`) with the repository's
own config (`train.py:extend_cfg`, `configs/trainers/MVLPT/vit_b16.yaml`) and each variant's settings from
`scripts/mvlpt/main_mt_coopdata_cut.sh` (CoOp: COOP.N_CTX 16, VPT.N_CTX 0; VPT: VPT.N_CTX 16, COOP.N_CTX 0; UPT: both 4,
CUT_CONTEXTLEN True; class token in the middle, unified context) on the golden backbone and images, one task of eight
classes, and `MVLPT.forward_backward`'s loss `F.cross_entropy(output, label)`.

Every learned value is seeded (`learned_values`), so the test regenerates it instead of loading megabytes. Quirk kept
as the official code has it: UPT's shared `clip.model.Transformer` is sequence-first and is fed [1, T, 128], so each
prompt token is a sequence of its own (attends only to itself); the test reproduces that to compare the rest.
The trainer module's ELEVATER helpers (`trainers.vision_benchmark.*`, which need `vision_datasets`, `transformers`) and
Dassl's optional imports are stubbed: no dataset is built here.
"""
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from tools.golden.common import GOLDEN_CLASSNAMES, build_official, golden_images, official_checkout, save_golden
from tools.golden.official_stubs import StubModule, load_function, stub_optional_imports
from tools.golden.recipes import dassl_recipe

LABELS = torch.tensor([3, 0, 6, 1])                                  # one per golden image
VARIANTS = {   # main_mt_coopdata_cut.sh's settings per trainer argument
    "coop": ["TRAINER.MVLPT.VPT.N_CTX", 0, "TRAINER.MVLPT.COOP.N_CTX", 16],
    "vpt": ["TRAINER.MVLPT.VPT.N_CTX", 16, "TRAINER.MVLPT.COOP.N_CTX", 0],
    "upt": ["TRAINER.MVLPT.VPT.N_CTX", 4, "TRAINER.MVLPT.COOP.N_CTX", 4, "TRAINER.CUT_CONTEXTLEN", True],
}
COMMON = ["TRAINER.MVLPT.COOP.CLASS_TOKEN_POSITION", "middle", "TRAINER.MVLPT.COOP.CSC", False]
GRAD_SAMPLE = slice(None, None, 8)                                   # rows of the shared layer's weight gradients kept

def learned_values(variant, layers=4, text_width=512, vision_width=768, dim=128):
    "Seeded values of every learned tensor of a variant, keyed by the official prompt learner's parameter names."
    g = torch.Generator().manual_seed({"coop": 51, "vpt": 52, "upt": 53}[variant])
    n = 4 if variant == "upt" else 16
    values = {}
    if variant != "vpt": values["ctx"] = 0.3 * torch.randn(n, text_width, generator=g)
    if variant != "coop":
        values["vpt_embeddings"] = 0.3 * torch.randn(1, n, vision_width, generator=g)
        values["vpt_embeddings_deep"] = 0.3 * torch.randn(layers - 1, n, vision_width, generator=g)
    if variant == "upt":
        for name, (out, inp) in dict(mvlpt_proj_ctx_coop_pre=(dim, text_width), mvlpt_proj_ctx_coop_post=(text_width, dim),
                                     mvlpt_proj_ctx_vpt_pre=(dim, vision_width), mvlpt_proj_ctx_vpt_post=(vision_width, dim)).items():
            values[f"{name}.weight"] = torch.randn(out, inp, generator=g) / inp ** 0.5
            values[f"{name}.bias"] = 0.1 * torch.randn(out, generator=g)
        block = "mvlpt_proj.resblocks.0."
        for name, shape in [("attn.in_proj_weight", (3 * dim, dim)), ("attn.in_proj_bias", (3 * dim,)), ("attn.out_proj.weight", (dim, dim)),
                            ("attn.out_proj.bias", (dim,)), ("ln_1.weight", (dim,)), ("ln_1.bias", (dim,)), ("mlp.c_fc.weight", (4 * dim, dim)),
                            ("mlp.c_fc.bias", (4 * dim,)), ("mlp.c_proj.weight", (dim, 4 * dim)), ("mlp.c_proj.bias", (dim,)),
                            ("ln_2.weight", (dim,)), ("ln_2.bias", (dim,))]:
            noise = torch.randn(shape, generator=g)
            values[block + name] = (1 + 0.1 * noise) if name.startswith("ln") and name.endswith("weight") else \
                0.1 * noise if len(shape) == 1 else noise / shape[-1] ** 0.5
    return values

def mvlpt_cfg(root, variant):
    from dassl.config import get_cfg_default
    cfg = get_cfg_default()
    load_function(root / "train.py", "extend_cfg")(cfg)            # without train.py's dataset imports
    cfg.merge_from_file(str(root / "configs/trainers/MVLPT/vit_b16.yaml"))
    cfg.merge_from_list(VARIANTS[variant] + COMMON)
    cfg.INPUT.SIZE = (96, 96)
    return cfg

def official_run(root, variant, images):
    "Official prompts after the coupling, logits, loss and gradients of a variant."
    import torch.nn.functional as F
    from clip import model as clip_model
    import trainers.mvlpt as mvlpt
    cfg = mvlpt_cfg(root, variant)
    model = mvlpt.CustomCLIP(cfg, GOLDEN_CLASSNAMES, build_official(clip_model)).eval()
    learner = model.prompt_learner
    for name, p in model.named_parameters(): p.requires_grad_("prompt_learner" in name)     # as MVLPT.build_model
    params = dict(learner.named_parameters())
    values = learned_values(variant)
    assert set(values) == set(params), (sorted(set(values) ^ set(params)))
    with torch.no_grad():
        for k, v in values.items(): params[k].copy_(v)
    coop_emb, vpt_emb, vpt_emb_deep = learner.forward_mvlpt_proj(model.dtype)
    logits = model(images)
    loss = F.cross_entropy(logits, LABELS)
    loss.backward()
    out = dict(logits=logits, loss=loss)
    if variant == "upt": out.update(ctx_used=coop_emb, visual_used=torch.cat([vpt_emb, vpt_emb_deep]))   # after the coupling
    for k in ("ctx", "vpt_embeddings", "vpt_embeddings_deep"):
        if k in params: out[f"{k}_grad"] = params[k].grad
    if variant == "upt":
        for k in ("mvlpt_proj_ctx_coop_pre.weight", "mvlpt_proj_ctx_vpt_post.weight", "mvlpt_proj.resblocks.0.attn.in_proj_weight",
                  "mvlpt_proj.resblocks.0.mlp.c_fc.weight"):
            out[f"{k}_grad_sample"] = params[k].grad[GRAD_SAMPLE]
    meta = dict(variant=variant, n_ctx=max(cfg.TRAINER.MVLPT.COOP.N_CTX, cfg.TRAINER.MVLPT.VPT.N_CTX),
                coop_n_ctx=cfg.TRAINER.MVLPT.COOP.N_CTX, vpt_n_ctx=cfg.TRAINER.MVLPT.VPT.N_CTX, vpt_deep=cfg.TRAINER.MVLPT.VPT.DEEP,
                position=cfg.TRAINER.MVLPT.COOP.CLASS_TOKEN_POSITION, proj_dim=cfg.TRAINER.MVLPT.PROJECT_DIM,
                project_method=cfg.TRAINER.MVLPT.PROJECT_METHOD, cut_contextlen=cfg.TRAINER.CUT_CONTEXTLEN, recipe=dassl_recipe(cfg),
                classnames=GOLDEN_CLASSNAMES, labels=LABELS.tolist(), learned=f"tools/golden/mvlpt.py:learned_values('{variant}')",
                images="golden_images()", images_sum=round(float(images.double().sum()), 6))
    return out, meta

if __name__ == "__main__":
    torch.set_num_threads(1)
    mirror, dassl = sys.argv[1], sys.argv[2]
    torch.manual_seed(0)
    images = golden_images()
    stub_optional_imports()
    results = {}
    with official_checkout(mirror, dassl) as roots:
        for name in ("trainers.vision_benchmark.evaluation", "trainers.vision_benchmark.datasets"): sys.modules[name] = StubModule(name)
        for variant in VARIANTS: results[variant] = official_run(roots[0], variant, images)
    for variant, (out, meta) in results.items():
        print(f"{variant}: loss {float(out['loss']):.4f}")
        save_golden(f"mvlpt_{variant}", out, mirror, ["trainers/mvlpt.py", "train.py", "configs/trainers/MVLPT/vit_b16.yaml",
                                                     "scripts/mvlpt/main_mt_coopdata_cut.sh", "clip/model.py"], __file__, meta=meta)
