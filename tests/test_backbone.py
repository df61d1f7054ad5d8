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
