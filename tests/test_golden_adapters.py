"Adapters, caches and WiSE-FT against their official code on identical weights (references from tools/golden/)."
import contextlib
import math
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tools.golden.common import GOLDEN_CLASSNAMES, assert_golden, golden_clip, golden_images, load_golden

import clipexplore.engine as engine
from clipexplore.engine import FeatureDataset, Trainer


@pytest.fixture(scope="module")
def clip():
    torch.set_num_threads(1)
    return golden_clip()


@contextlib.contextmanager
def logit_scale_100(clip):
    "The official Tip-Adapter, CALIP and CaFo scale zero-shot logits by a hard-coded 100; ours by the model's scale: set it to 100."
    saved = clip.model.logit_scale.detach().clone()
    with torch.no_grad(): clip.model.logit_scale.fill_(math.log(100.0))
    try: yield clip
    finally:
        with torch.no_grad(): clip.model.logit_scale.copy_(saved)


def encoded(encoder, images, labels):
    "A FeatureDataset of the normalised features of `images` by `encoder` (CLIP or a stack of encoders)."
    with torch.no_grad(): features = F.normalize(encoder.encode_image(images).float(), dim=-1)
    return FeatureDataset(features, labels.long(), torch.zeros(len(labels), dtype=torch.long), list(GOLDEN_CLASSNAMES), ["golden"])


def train_two_epochs(method, data, orders, keys_init, meta, monkeypatch):
    "The official recipe for the reference's 2 epochs of 2 batches, in its sample order, from its seeded keys, at its alpha and lr."
    monkeypatch.setattr(engine, "_epoch_order", lambda n, seed, epoch: orders[epoch].tolist())
    trainer = Trainer(method, data, recipe="official", epochs=2, batch_size=4, lr=meta["train_lr"], progress=False)
    method._set_keys(keys_init)
    method.alpha = meta["train_alpha"]        # gradients below AdamW's eps, keys moving far beyond float32's resolution
    return trainer.fit()


def test_tip_adapter_and_tip_adapter_f_equal_the_official_cache(clip, monkeypatch):
    from clipexplore.methods.adapters import TipAdapter, TipAdapterF
    ref, info = load_golden("tip_adapter")
    meta = info["meta"]
    with logit_scale_100(clip):
        train = encoded(clip, golden_images(8, seed=1), ref["train_labels"])
        tip = TipAdapter(clip, GOLDEN_CLASSNAMES, meta["alpha"], meta["beta"], meta["template"]).init_from_data(train)
        assert_golden(tip.class_features, ref["clip_weights"], "Tip-Adapter", "class text features")
        assert_golden(tip.keys, ref["cache_keys"], "Tip-Adapter", "cache keys")
        torch.testing.assert_close(tip.values, ref["cache_values"], rtol=0, atol=0)
        with torch.no_grad(): logits = tip.logits({"image": golden_images(4, seed=2)})
        assert_golden(logits, ref["tip_logits"], "Tip-Adapter", "logits (alpha, beta)")

        tip_f = TipAdapterF.from_recipe(clip, GOLDEN_CLASSNAMES, recipe="official", alpha=meta["alpha"], beta=meta["beta"],
                                        template=meta["template"]).init_from_data(train)
        tip_f._set_keys(ref["keys_init"])
        first = ref["orders"][0, :4]
        batch = {"image_features": train.features[first], "label": train.labels[first]}
        assert_golden(tip_f.logits(batch), ref["f_logits_step0"], "Tip-Adapter-F", "logits (learnable keys)")
        tip_f.loss(batch)["loss"].backward()
        assert_golden(tip_f.keys.grad, ref["f_grad_step0"], "Tip-Adapter-F", "gradient of the keys")

        trainer = train_two_epochs(tip_f, train, ref["orders"], ref["keys_init"], meta, monkeypatch)
        lrs = [trainer.lr_at(e, s) for e in range(2) for s in range(2)]
        torch.testing.assert_close(torch.tensor(lrs), ref["f_lrs"], rtol=1e-6, atol=0)   # stored in float32
        assert_golden(tip_f.keys.detach() - ref["keys_init"], ref["f_keys_final"] - ref["keys_init"], "Tip-Adapter-F",
                      "key update over 2 epochs (official recipe: AdamW eps 1e-4, weight decay 0.01, cosine per step)")


def test_clip_adapter_equals_the_official_custom_clip(clip):
    from clipexplore.methods.adapters import CLIPAdapter
    ref, info = load_golden("clip_adapter")
    adapter = CLIPAdapter(clip, GOLDEN_CLASSNAMES, alpha=info["meta"]["ratio"], reduction=info["meta"]["reduction"], template=info["meta"]["template"])
    with torch.no_grad(): adapter.adapter[0].weight.copy_(ref["down_weight"]); adapter.adapter[2].weight.copy_(ref["up_weight"])
    batch = {"image": golden_images(4, seed=4), "label": ref["labels"]}
    assert_golden(adapter.logits(batch), ref["logits"], "CLIP-Adapter", "logits (residual ratio 0.2)")
    loss = adapter.loss(batch)["loss"]
    assert_golden(loss, ref["loss"], "CLIP-Adapter", "loss")
    loss.backward()
    assert_golden(adapter.adapter[0].weight.grad, ref["down_grad"], "CLIP-Adapter", "gradient of the first adapter layer")
    assert_golden(adapter.adapter[2].weight.grad, ref["up_grad"], "CLIP-Adapter", "gradient of the second adapter layer")


def test_calip_attention_logits_equal_the_official_script(clip):
    from clipexplore.methods.calip import CALIP, global_and_patch_features
    ref, info = load_golden("calip")
    meta = info["meta"]
    with logit_scale_100(clip):
        calip = CALIP(clip, GOLDEN_CLASSNAMES, beta2=meta["beta2"], beta3=meta["beta3"], templates=tuple(meta["templates"]))
        assert_golden(calip.class_features, ref["text_features"], "CALIP", "class text features (7 templates)")
        images = golden_images(4, seed=3)
        zero_shot, visual_aware, text_aware = calip.logit_terms(*global_and_patch_features(clip, images))
        assert_golden(zero_shot, ref["zero_shot_logits"], "CALIP", "zero-shot logits")
        assert_golden(visual_aware, ref["visual_aware_logits"], "CALIP", "visual-aware text logits (patch tokens)")
        assert_golden(text_aware, ref["text_aware_logits"], "CALIP", "text-aware visual logits (patch tokens)")
        with torch.no_grad(): blended = calip.logits({"image": images})
        assert_golden(blended, ref["blended_logits"], "CALIP", "logits at a grid point (beta2, beta3)")
    torch.testing.assert_close(CALIP.BETA2.float(), ref["beta2_grid"], rtol=1e-6, atol=0)         # the official grid (stored in float32)
    torch.testing.assert_close(CALIP.BETA3.float(), ref["beta3_grid"], rtol=1e-6, atol=0)


def test_cafo_fusion_equals_official_logits_fuse():
    from clipexplore.methods.multicache import fuse_by_agreement
    ref, _ = load_golden("cafo")
    fused, _ = fuse_by_agreement(ref["fuse_zero_shot"], [ref["fuse_cache_a"], ref["fuse_cache_b"]])
    assert_golden(fused, ref["fused"], "CaFo", "logits_fuse (normalize='mean')")


def test_multi_cache_adapter_equals_official_cafo_adapter(clip, monkeypatch):
    from clipexplore.methods.multicache import MultiCacheAdapter
    ref, info = load_golden("cafo")
    meta = info["meta"]
    with logit_scale_100(clip):
        method = MultiCacheAdapter.from_recipe(clip, GOLDEN_CLASSNAMES, {"dino": golden_clip(seed=1)}, recipe="official",
                                               alpha=meta["alpha"], beta=meta["beta"], template=meta["template"])
        train = encoded(method.feature_encoder, golden_images(8, seed=5), ref["train_labels"])
        method.init_from_data(train)
        clip_keys, dino_keys = method.keys.split(method.feature_encoder.dims, -1)
        assert_golden(clip_keys, ref["clip_cache_keys"], "CaFo", "CLIP cache keys")
        assert_golden(dino_keys, ref["dino_cache_keys"], "CaFo", "second encoder's cache keys")
        keys_init = torch.cat([ref["clip_keys_init"], ref["dino_keys_init"]], -1)
        method._set_keys(keys_init)
        first = ref["orders"][0, :4]
        batch = {"image_features": train.features[first], "label": train.labels[first]}
        assert_golden(method.logits(batch), ref["logits_step0"], "CaFo", "logits (fused caches, learnable keys)")
        method.loss(batch)["loss"].backward()
        clip_grad, dino_grad = method.keys.grad.split(method.feature_encoder.dims, -1)
        assert_golden(clip_grad, ref["clip_grad_step0"], "CaFo", "gradient of the CLIP keys")
        assert_golden(dino_grad, ref["dino_grad_step0"], "CaFo", "gradient of the second encoder's keys")

        train_two_epochs(method, train, ref["orders"], keys_init, meta, monkeypatch)
        final = torch.cat([ref["clip_keys_final"], ref["dino_keys_final"]], -1)
        assert_golden(method.keys.detach() - keys_init, final - keys_init, "CaFo",
                      "key update over 2 epochs (official recipe: AdamW eps 1e-4, weight decay 0.01, cosine per step)")


def test_wise_ft_merge_equals_official_merge():
    from clipexplore.methods.finetune import merge_states
    ref, info = load_golden("wise_ft")
    zero = {k[5:]: v for k, v in ref.items() if k.startswith("zero.")}
    tuned = {k[6:]: v for k, v in ref.items() if k.startswith("tuned.")}
    for alpha in info["meta"]["alphas"]:
        ours, official = merge_states(zero, tuned, alpha), {k: ref[f"merged_{alpha}.{k}"] for k in zero}
        floats = [k for k in zero if zero[k].is_floating_point()]
        assert_golden(torch.cat([ours[k].flatten() for k in floats]), torch.cat([official[k].flatten() for k in floats]),
                      "WiSE-FT", f"merged state (alpha={alpha}), BatchNorm statistics included")
        assert all(torch.equal(ours[k], official[k]) and ours[k].dtype == official[k].dtype for k in zero if k not in floats)
