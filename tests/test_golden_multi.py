"""Golden references of the unsupervised, multi-label and multi-task learners: UPL, DualCoOp, TaI-DPT, SoftCPT, MVLPT.

Each reference was written by `tools/golden/<method>.py` from the official repository's own code on the golden
backbone; here clipexplore computes the same quantities with the same weights and inputs."""
import functools
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tools.golden.common import GOLDEN_CLASSNAMES, assert_golden, golden_clip, golden_images
from tools.golden.common import load_golden as _load_golden

load_golden = functools.cache(_load_golden)          # each load re-checks the backbone's fingerprint: once per reference


def reference_images(info):
    "The seeded golden images a reference was computed on (not stored), checked against its recorded sum."
    images = golden_images()
    assert round(float(images.double().sum()), 6) == info["meta"]["images_sum"], "golden_images() changed: regenerate"
    return images


@pytest.fixture(scope="module")
def gclip():
    torch.manual_seed(0)
    return golden_clip()


# DualCoOp (sunxm2357/DualCoOp)

def test_dualcoop_asymmetric_loss_and_its_gradient():
    "Official AsymmetricLoss: focal weights without gradient (the old gradient-through-weight version differs by 0.33)."
    from clipexplore.methods.dualcoop import asymmetric_loss
    ref, info = load_golden("dualcoop")
    x = ref["loss_logits"].clone().requires_grad_(True)                    # [B, 2, K]: (negative, positive) logits
    loss = asymmetric_loss(x.softmax(1)[:, 1], ref["loss_targets"], info["meta"]["gamma_pos"], info["meta"]["gamma_neg"])
    loss.backward()
    assert_golden(loss, ref["loss"], "DualCoOp", "asymmetric loss")
    assert_golden(x.grad, ref["loss_grad"], "DualCoOp", "asymmetric loss gradient")


def test_dualcoop_forward_from_regions(gclip):
    "Official DualCoop forward (prompts, text encoder, region aggregation, loss, context gradients) on the same regions."
    from clipexplore.methods.dualcoop import DualCoOp
    ref, info = load_golden("dualcoop")
    model = DualCoOp(gclip, GOLDEN_CLASSNAMES, n_ctx=info["meta"]["n_ctx_pos"], loss_weight=info["meta"]["loss_weight"])
    with torch.no_grad(): model.ctx_pos.copy_(ref["ctx_pos"]); model.ctx_neg.copy_(ref["ctx_neg"])
    batch = dict(region_features=ref["regions"], target=ref["targets"])
    pos, neg = model.pos_neg_logits(batch)
    assert_golden(torch.stack([neg, pos], 1), ref["logits"], "DualCoOp", "logits from regions [B, 2, K]")
    loss = model.loss(batch)["loss"]
    loss.backward()
    assert_golden(loss, ref["forward_loss"], "DualCoOp", "weighted loss")
    assert_golden(model.ctx_pos.grad, ref["ctx_pos_grad"], "DualCoOp", "positive context gradient")
    assert_golden(model.ctx_neg.grad, ref["ctx_neg_grad"], "DualCoOp", "negative context gradient")


# UPL (tonyhuang2022/UPL)

def test_upl_pseudo_label_selection():
    "Official select_top_k_similarity_per_class: the K most confident images of each predicted class, with that class."
    from clipexplore.methods.upl import top_k_per_class
    ref, info = load_golden("upl")
    pool = ref["pool"]
    chosen = top_k_per_class(pool, k=info["meta"]["k"])
    selected = torch.zeros(pool.shape, dtype=torch.long)
    selected[chosen, pool[chosen].argmax(-1)] = 1
    assert torch.equal(selected, ref["selected"]), "UPL selects other images or labels than the official code"
    assert_golden(selected.float(), ref["selected"].float(), "UPL", "pseudo-label selection")


def test_upl_zero_shot_and_prompt_logits(gclip):
    "Official zero_shot_forward (whose softmax UPL ranks) and the CoOp prompt's forward on the golden images."
    import torch.nn.functional as F
    from clipexplore.methods.upl import UPLPrompt
    from clipexplore.methods.zeroshot import ZeroShotClassifier
    ref, info = load_golden("upl")
    with torch.no_grad():
        batch = {"image_features": F.normalize(gclip.encode_image(reference_images(info)).float(), dim=-1)}
        zero_shot = ZeroShotClassifier(gclip, GOLDEN_CLASSNAMES, (info["meta"]["template"],)).logits(batch)
        member = UPLPrompt.from_recipe(gclip, GOLDEN_CLASSNAMES, recipe="official")
        member.ctx.copy_(ref["ctx"])
        logits = member.logits(batch)
    assert member.n_ctx == info["meta"]["n_ctx"] and member.position == info["meta"]["position"]
    assert_golden(zero_shot, ref["zero_shot_logits"], "UPL", "zero-shot logits")
    assert_golden(logits, ref["logits"], "UPL", "prompt logits")


# TaI-DPT (guozix/TaI-DPT)

def test_taidpt_caption_logits_ranking_loss_and_gradients(gclip):
    "Official DenseCLIP(None, captions): global and local logits, double ranking loss, gradients of both contexts."
    from clipexplore.methods.taidpt import TaIDPT
    ref, info = load_golden("taidpt")
    meta = info["meta"]
    assert torch.equal(gclip.tokenize(meta["captions"]), ref["tokens"])
    model = TaIDPT(gclip, GOLDEN_CLASSNAMES, n_ctx=meta["n_ctx"], scale=meta["scale"], text_temperature=meta["text_temperature"],
                   image_temperature=meta["image_temperature"], local_weight=1 - meta["merge_rate"])
    with torch.no_grad(): model.ctx_global.copy_(ref["ctx"]); model.ctx_local.copy_(ref["ctx_double"])
    pooled, tokens, valid = model.caption_features(ref["tokens"])
    g, l = model.double_logits(pooled, tokens, model.text_temperature, valid)
    assert_golden(g, ref["caption_global"], "TaI-DPT", "caption global logits")
    assert_golden(l, ref["caption_local"], "TaI-DPT", "caption local logits")
    terms = model.loss(dict(caption_tokens=ref["tokens"], target=ref["targets"]))
    terms["loss"].backward()
    assert_golden(terms["loss"], ref["loss"], "TaI-DPT", "double ranking loss")
    assert_golden(model.ctx_global.grad, ref["ctx_grad"], "TaI-DPT", "global context gradient")
    assert_golden(model.ctx_local.grad, ref["ctx_double_grad"], "TaI-DPT", "local context gradient")


def test_taidpt_image_logits_from_regions(gclip):
    "Official DenseCLIP(image, if_test=True) from the same regions: global, local and the evaluator's merged scores."
    from clipexplore.methods.taidpt import TaIDPT
    ref, info = load_golden("taidpt")
    meta = info["meta"]
    model = TaIDPT(gclip, GOLDEN_CLASSNAMES, n_ctx=meta["n_ctx"], scale=meta["scale"], image_temperature=meta["image_temperature"],
                   local_weight=1 - meta["merge_rate"])
    with torch.no_grad():
        model.ctx_global.copy_(ref["ctx"]); model.ctx_local.copy_(ref["ctx_double"])
        regions = ref["regions"]
        g, l = model.double_logits(regions[:, 0], regions[:, 1:], model.image_temperature)
        merged = model.logits(dict(region_features=regions))
    assert_golden(g, ref["image_global"], "TaI-DPT", "image global logits (from regions)")
    assert_golden(l, ref["image_local"], "TaI-DPT", "image local logits (from regions)")
    assert_golden(merged, ref["image_merged"], "TaI-DPT", "image merged logits (from regions)")


# SoftCPT (kding1225/softcpt)

def test_softcpt_contexts_logits_loss_and_gradients(gclip):
    "Official CustomCLIP (NATA: shared task context, linear meta-net) and MTCoOp.mutitask_loss on the golden images."
    import torch.nn.functional as F
    from clipexplore.methods.softcpt import SoftCPT
    from tools.golden.softcpt import LABELS, PROJ_SAMPLE, learned_values
    ref, info = load_golden("softcpt")
    meta, tasks = info["meta"], info["meta"]["tasks"]
    model = SoftCPT(gclip, tasks, n_ctx=meta["n_ctx"], task_n_ctx=meta["task_n_ctx"], task_specific=meta["task_csc"])
    task_ctx, proj = learned_values()
    with torch.no_grad(): model.task_ctx.copy_(task_ctx); model.meta_net.weight.copy_(proj.T)      # Linear stores W^T
    labels = torch.tensor([model.slices[task].start + k for task, k in LABELS])
    assert torch.equal((ref["union_label"] == 1).float().argmax(1), labels)
    with torch.no_grad(): features = F.normalize(gclip.encode_image(reference_images(info)).float(), dim=-1)
    batch = dict(image_features=features, label=labels)
    assert_golden(model.task_features(), ref["task_features"], "SoftCPT", "task features")
    assert_golden(model.contexts(), ref["contexts"], "SoftCPT", "generated contexts (meta-net)")
    assert_golden(model.logits(batch), ref["logits"], "SoftCPT", "logits over the union")
    loss = model.loss(batch)["loss"]
    loss.backward()
    assert_golden(loss, ref["loss"], "SoftCPT", "multi-task loss")
    assert_golden(model.task_ctx.grad, ref["task_ctx_grad"], "SoftCPT", "task context gradient")
    assert_golden(model.meta_net.weight.grad.T[PROJ_SAMPLE], ref["proj_grad_sample"], "SoftCPT", "meta-net gradient")


# MVLPT (sIncerass/MVLPT)

def mvlpt_with_official_values(gclip, variant):
    "clipexplore's MVLPT on one task of the golden classes, holding the reference's seeded learned values."
    from clipexplore.methods.mvlpt import MVLPT
    from tools.golden.mvlpt import learned_values
    ref, info = load_golden(f"mvlpt_{variant}")
    meta = info["meta"]
    model = MVLPT(gclip, GOLDEN_CLASSNAMES, variant, n_ctx=meta["n_ctx"], class_token_position=meta["position"], proj_dim=meta["proj_dim"])
    values = learned_values(variant)
    with torch.no_grad():
        if "ctx" in values: model.ctx.copy_(values["ctx"])
        if "vpt_embeddings" in values: model.visual.copy_(torch.cat([values["vpt_embeddings"], values["vpt_embeddings_deep"]]))
        if variant == "upt":
            ours = dict(model.shared.named_parameters())
            names = dict(text_in="mvlpt_proj_ctx_coop_pre", text_out="mvlpt_proj_ctx_coop_post", vision_in="mvlpt_proj_ctx_vpt_pre",
                         vision_out="mvlpt_proj_ctx_vpt_post", layer="mvlpt_proj")
            for name, p in ours.items():
                head, rest = name.split(".", 1)
                p.copy_(values[f"{names[head]}.{rest}"])
    batch = dict(image=reference_images(info), label=torch.tensor(meta["labels"]))
    return model, batch, ref, info


def test_mvlpt_coop_logits_loss_gradient(gclip):
    "Official MVLPT, CoOp prompt (16 tokens, class name in the middle): logits, cross entropy, context gradient."
    model, batch, ref, _ = mvlpt_with_official_values(gclip, "coop")
    assert_golden(model.logits(batch), ref["logits"], "MVLPT", "logits (coop)")
    loss = model.loss(batch)["loss"]                 # one task: the per-task cross entropy is the official plain one
    loss.backward()
    assert_golden(loss, ref["loss"], "MVLPT", "loss (coop)")
    assert_golden(model.ctx.grad, ref["ctx_grad"], "MVLPT", "context gradient (coop)")


def check_vpt(model, batch, ref, variant):
    assert_golden(model.logits(batch), ref["logits"], "MVLPT", f"logits ({variant})")
    loss = model.loss(batch)["loss"]
    loss.backward()
    assert_golden(loss, ref["loss"], "MVLPT", f"loss ({variant})")
    grad = torch.cat([ref["vpt_embeddings_grad"], ref["vpt_embeddings_deep_grad"]])
    assert_golden(model.visual.grad, grad, "MVLPT", f"visual prompt gradients ({variant})")
    return loss


def test_mvlpt_vpt_logits_loss_gradient(gclip):
    "Official MVLPT, deep VPT (16 tokens per layer, CLIP's frozen 'a photo of a {}.'), its layer-0 prompts after ln_pre."
    model, batch, ref, _ = mvlpt_with_official_values(gclip, "vpt")
    check_vpt(model, batch, ref, "vpt")


def official_per_token_coupling(shared):
    "UPT's coupling as the official code runs it: CLIP's sequence-first Transformer fed [1, T, 128], so each token is its own sequence."
    def forward(text, visual):
        L, n = visual.shape[:2]
        tokens = torch.cat([shared.text_in(text), shared.vision_in(visual.reshape(L * n, -1))])
        mixed = shared.layer(tokens[:, None].float())[:, 0]                       # [T, 1, 128]: T sequences of one token
        return shared.text_out(mixed[:len(text)]), shared.vision_out(mixed[len(text):]).view(L, n, -1)
    return forward


def test_mvlpt_upt_with_the_official_coupling(gclip):
    "Official MVLPT, UPT (4 tokens): with the official per-token coupling reproduced, prompts, logits, loss and gradients agree."
    from tools.golden.mvlpt import GRAD_SAMPLE
    model, batch, ref, _ = mvlpt_with_official_values(gclip, "upt")
    mixing = model.prompts()                                                       # ours: the prompt tokens attend to each other
    model.shared.forward = official_per_token_coupling(model.shared)
    ctx, visual = model.prompts()
    assert_golden(ctx, ref["ctx_used"], "MVLPT", "text context after the shared layer (upt, per-token)")
    assert_golden(visual, ref["visual_used"], "MVLPT", "visual prompts after the shared layer (upt, per-token)")
    assert (mixing[0] - ref["ctx_used"]).abs().max() > 1e-3                        # the documented deviation is real
    check_vpt(model, batch, ref, "upt, per-token coupling")
    assert_golden(model.ctx.grad, ref["ctx_grad"], "MVLPT", "context gradient (upt)")
    grads = dict(model.shared.named_parameters())
    for ours, theirs in [("text_in.weight", "mvlpt_proj_ctx_coop_pre.weight"), ("vision_out.weight", "mvlpt_proj_ctx_vpt_post.weight"),
                         ("layer.resblocks.0.attn.in_proj_weight", "mvlpt_proj.resblocks.0.attn.in_proj_weight"),
                         ("layer.resblocks.0.mlp.c_fc.weight", "mvlpt_proj.resblocks.0.mlp.c_fc.weight")]:
        assert_golden(grads[ours].grad[GRAD_SAMPLE], ref[f"{theirs}_grad_sample"], "MVLPT", f"{ours} gradient (upt)")


# Official recipes: each method's recipes["official"] against the configuration the official code was run with

def official_recipes():
    from clipexplore.methods.dualcoop import DualCoOp
    from clipexplore.methods.mvlpt import MVLPT
    from clipexplore.methods.softcpt import SoftCPT
    from clipexplore.methods.taidpt import TaIDPT
    from clipexplore.methods.upl import UPLPrompt
    return [("dualcoop", DualCoOp, "official", dict(n_ctx="n_ctx_pos", loss_weight="loss_weight")),
            ("upl", UPLPrompt, "official", dict(n_ctx="n_ctx", class_token_position="position")),
            ("taidpt", TaIDPT, "official", dict(n_ctx="n_ctx", scale="scale", text_temperature="text_temperature",
                                                image_temperature="image_temperature")),
            ("softcpt", SoftCPT, "official", dict(n_ctx="n_ctx", task_n_ctx="task_n_ctx", task_specific="task_csc")),
            *[(f"mvlpt_{v}", MVLPT, f"official_{v}", dict(variant="variant", n_ctx="n_ctx", class_token_position="position",
                                                           proj_dim="proj_dim")) for v in ("coop", "vpt", "upt")]]


@pytest.mark.parametrize("name, method, recipe, settings", official_recipes(), ids=lambda x: x if isinstance(x, str) else "")
def test_official_recipe_matches_the_official_config(name, method, recipe, settings):
    "Trainer settings equal the official config's (Dassl OPTIM/DATALOADER as run); method settings equal the reference's."
    _, info = load_golden(name)
    official = method.recipe(recipe)
    assert official.source.startswith(info["repo"] + ":"), (official.source, info["repo"])
    assert official.trainer_settings() == info["meta"]["recipe"], (official.trainer_settings(), info["meta"]["recipe"])
    for ours, theirs in settings.items():
        assert official.method[ours] == info["meta"][theirs], (ours, official.method[ours], info["meta"][theirs])
    if "toy" in method.recipes: assert method.recipe("toy").notes, "a toy recipe says why it differs"
