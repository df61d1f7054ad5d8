"With no prompts, every path of the CLIP wrapper equals open_clip's own forward."
import pytest
import torch

from clipexplore.backbone import CLIP, load_clip
from clipexplore.toyworld import ToyWorld

TEXTS = ["a photo of a star.", "a sketch of a large red striped heart", "x", "an oil painting of a hexagon, painting"]


@pytest.fixture(scope="module", params=["toy", "ViT-B-32", "RN50"])
def clip(request):
    torch.manual_seed(0)
    return load_clip(request.param, pretrained=None, device="cpu")


def images_for(clip, n=2):
    if clip.name == "toy": return torch.stack([ToyWorld(n, seed=3)[i]["image"] for i in range(n)])
    return torch.randn(n, 3, *clip.image_size, generator=torch.Generator().manual_seed(0))


def max_diff(a, b): return (a - b).abs().max().item()


@torch.no_grad()
def test_encode_text_equals_open_clip(clip):
    assert max_diff(clip.encode_text(TEXTS), clip.model.encode_text(clip.tokenizer(TEXTS))) < 1e-5


@torch.no_grad()
def test_truncation_at_longest_eot_is_exact(clip):
    emb, eot = clip.embed_tokens(TEXTS)
    assert int(eot.max()) + 1 < emb.shape[1] == 77
    assert max_diff(clip.encode_embeddings(emb, eot), clip.encode_embeddings(emb, eot, truncate=False)) < 1e-5


@torch.no_grad()
def test_encode_image_equals_open_clip(clip):
    x = images_for(clip)
    assert max_diff(clip.encode_image(x), clip.model.encode_image(x)) < 1e-5


@torch.no_grad()
def test_patch_tokens_equal_open_clip_tokens():
    clip = load_clip("toy", device="cpu")
    x = images_for(clip)
    pooled, tokens = clip.encode_image(x, return_tokens=True)
    clip.model.visual.output_tokens = True
    try: ref_pooled, ref_tokens = clip.model.visual(x)
    finally: clip.model.visual.output_tokens = False
    assert tokens.shape == (2, 16, 128)                     # 4x4 patches of 16 px
    assert max_diff(pooled, ref_pooled) < 1e-5 and max_diff(tokens, ref_tokens @ clip.model.visual.proj) < 1e-5


@torch.no_grad()
def test_visual_prompts_are_used_and_dropped_before_pooling():
    clip = load_clip("toy", device="cpu")
    x = images_for(clip)
    plain = clip.encode_image(x)
    prompts = torch.randn(3, clip.vision_width)
    shallow = clip.encode_image(x, prompts=prompts)
    deep = clip.encode_image(x, prompts=prompts, deep_prompts=[None, torch.randn(3, clip.vision_width)])
    assert shallow.shape == plain.shape and max_diff(shallow, plain) > 1e-3 and max_diff(deep, shallow) > 1e-3
    # a deep prompt equal to None at every layer is the shallow path
    assert max_diff(clip.encode_image(x, prompts=prompts, deep_prompts=[None] * 6), shallow) == 0


@torch.no_grad()
def test_deep_text_prompts_replace_the_tokens_after_sos():
    clip = load_clip("toy", device="cpu")
    emb, eot = clip.embed_tokens(["a photo of a star."])
    plain = clip.encode_embeddings(emb, eot)
    assert max_diff(clip.encode_embeddings(emb, eot, deep_prompts=[None] * 4), plain) == 0
    changed = clip.encode_embeddings(emb, eot, deep_prompts=[None, torch.randn(2, clip.text_width)])
    assert max_diff(changed, plain) > 1e-4


def test_frozen_and_stays_in_eval_mode():
    clip = load_clip("toy", device="cpu")
    assert not any(p.requires_grad for p in clip.parameters())
    wrapper = torch.nn.ModuleDict(dict(clip=clip)).train()
    assert not clip.model.training and not wrapper["clip"].training


def test_gradients_reach_learned_context_through_the_frozen_tower():
    clip = load_clip("toy", device="cpu")
    emb, eot = clip.embed_tokens(["X X X X star."])
    ctx = torch.nn.Parameter(emb[0, 1:5].clone())
    feats = clip.encode_embeddings(torch.cat([emb[:, :1], ctx[None], emb[:, 5:]], 1), eot)
    feats.pow(2).sum().backward()
    assert ctx.grad is not None and ctx.grad.abs().sum() > 0


@torch.no_grad()
def test_layer0_visual_prompts_go_before_ln_pre_and_deep_prompts_after():
    "Official VPT/IVLP/MaPLe/PromptSRC order: conv1, class token, positional embedding, prompts, ln_pre; deeper prompts replace the last tokens between blocks."
    clip = load_clip("toy", device="cpu")
    visual, x = clip.model.visual, images_for(clip)
    prompts, deeper = torch.randn(3, clip.vision_width), torch.randn(3, clip.vision_width)
    tokens = visual.conv1(x).flatten(2).transpose(1, 2)
    tokens = torch.cat([visual.class_embedding.expand(x.shape[0], 1, -1), tokens], 1) + visual.positional_embedding
    h = visual.ln_pre(torch.cat([tokens, prompts.expand(x.shape[0], -1, -1)], 1))
    for j, block in enumerate(visual.transformer.resblocks):
        if j == 1: h = torch.cat([h[:, :-3], deeper.expand(x.shape[0], -1, -1)], 1)
        h = block(h)
    expected = visual.ln_post(h[:, 0]) @ visual.proj
    assert max_diff(clip.encode_image(x, prompts=prompts, deep_prompts=[None, deeper]), expected) < 1e-5


def small_vit_clip(**vision):
    "A tiny random open_clip CLIP with a ViT tower configured by `vision` (pooling variants open_clip supports)."
    import open_clip
    torch.manual_seed(0)
    vision_cfg = open_clip.model.CLIPVisionCfg(image_size=32, patch_size=8, width=64, layers=2, head_width=32, **vision)
    text_cfg = open_clip.model.CLIPTextCfg(context_length=77, vocab_size=49408, width=64, heads=2, layers=1)
    model = open_clip.model.CLIP(embed_dim=32, vision_cfg=vision_cfg, text_cfg=text_cfg)
    return CLIP(model, open_clip.tokenizer.SimpleTokenizer(), None, name="small")


@pytest.mark.parametrize("vision", [dict(pool_type="avg"), dict(final_ln_after_pool=True),
                                    dict(pool_type="avg", final_ln_after_pool=True)])
@torch.no_grad()
def test_pooling_variants_equal_open_clip(vision):
    clip = small_vit_clip(**vision)
    x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    pooled, tokens = clip.encode_image(x, return_tokens=True)
    clip.visual.output_tokens = True
    try: ref_pooled, ref_tokens = clip.visual(x)
    finally: clip.visual.output_tokens = False
    assert max_diff(pooled, ref_pooled) < 1e-5 and max_diff(tokens, ref_tokens @ clip.visual.proj) < 1e-5
    assert max_diff(clip.encode_image(x), clip.model.encode_image(x)) < 1e-5


def value_path_reference(visual, x):
    "MaskCLIP's value path written against open_clip's own forward: the last block's attention replaced by its values."
    import torch.nn.functional as F
    h = visual._embeds(x)
    for block in visual.transformer.resblocks[:-1]: h = block(h)
    block, width = visual.transformer.resblocks[-1], h.shape[-1]
    v = F.linear(block.ln_1(h), block.attn.in_proj_weight[2 * width:], block.attn.in_proj_bias[2 * width:])
    return visual.ln_post(block.ls_1(block.attn.out_proj(v))[:, 1:]) @ visual.proj


@pytest.mark.parametrize("layers", [1, 6])
@torch.no_grad()
def test_patch_tokens(layers):
    if layers == 1:
        import open_clip
        torch.manual_seed(0)
        model = open_clip.model.CLIP(embed_dim=32, vision_cfg=open_clip.model.CLIPVisionCfg(
            image_size=32, patch_size=8, width=64, layers=1, head_width=32), text_cfg=open_clip.model.CLIPTextCfg(width=64, heads=2, layers=1))
        clip = CLIP(model, open_clip.tokenizer.SimpleTokenizer(), None, name="one-layer")
        x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    else:
        clip = load_clip("toy", device="cpu")
        x = images_for(clip)
    assert torch.equal(clip.patch_tokens(x), clip.encode_image(x, return_tokens=True)[1])
    values = clip.patch_tokens(x, mode="values")
    assert values.shape == (2, 16, clip.embed_dim) and values.dtype == torch.float32
    assert max_diff(values, value_path_reference(clip.visual, x)) < 1e-5
    with pytest.raises(ValueError, match="choose from"): clip.patch_tokens(x, mode="keys")


def test_public_members():
    clip = load_clip("toy", device="cpu")
    assert clip.visual is clip.model.visual and clip.patch_size == 16
    assert clip.visual_layers is clip.model.visual.transformer.resblocks and clip.text_layers is clip.model.transformer.resblocks
    assert clip.token_table is clip.model.token_embedding.weight
    x = torch.rand(2, 3, 64, 64)
    assert max_diff(clip.denormalize(clip.normalize(x)), x) < 1e-6


def test_resnet_has_no_layers_or_patches():
    clip = load_clip("RN50", pretrained=None, device="cpu")
    for member in ("visual_layers", "patch_size"):
        with pytest.raises(ValueError, match="no ViT"): getattr(clip, member)
    with pytest.raises(ValueError, match="plain ViT"): clip.patch_tokens(torch.randn(1, 3, 224, 224))
