"TeCoA: PGD stays in its budget and hurts CLIP; adversarial training (encoder or token prompt) raises robust accuracy."
import torch
import torch.nn.functional as F

from clipexplore.engine import Trainer
from clipexplore.methods.finetune import FineTuner
from clipexplore.methods.tecoa import TeCoA, TeCoAPrompt, normalise, pgd_linf, robust_accuracy, to_pixels


def mean(table): return table.where(domain="mean")[0]["accuracy"]


def test_pgd_respects_its_budget_and_raises_the_loss(clip, pool):
    from clipexplore.toyworld import ToyWorld
    world = ToyWorld(32, seed=3, distractors=True)
    images, labels = torch.stack([world[i]["image"] for i in range(32)]), torch.tensor([world[i]["label"] for i in range(32)])
    clip_model = FineTuner(clip, pool.classes)
    logits_of = lambda p: clip_model.logits({"image": normalise(p)})
    pixels = to_pixels(images)
    torch.testing.assert_close(normalise(pixels), images, atol=1e-5, rtol=0)      # inside [0, 1] the round trip is exact
    adversarial = pgd_linf(logits_of, pixels, labels, eps=2 / 255, steps=5)
    assert (adversarial - pixels).abs().max() <= 2 / 255 + 1e-6 and 0 <= adversarial.min() and adversarial.max() <= 1
    with torch.no_grad(): assert F.cross_entropy(logits_of(adversarial), labels) > F.cross_entropy(logits_of(pixels), labels) + 0.5
    assert all(p.grad is None for p in clip_model.parameters())                  # the attack touches only the input


def test_tecoa_fine_tuning_and_token_prompt_raise_robust_accuracy(clip, pool):
    from clipexplore.data import few_shot
    from clipexplore.toyworld import ToyWorld
    train, test = few_shot(pool, 16, seed=1).dataset(clip.preprocess), ToyWorld(300, seed=7, distractors=True)
    robust = lambda model: mean(robust_accuracy(model, test, 1 / 255, steps=10))
    zero_shot = robust(FineTuner(clip, pool.classes))
    torch.manual_seed(0)
    tecoa = TeCoA.from_recipe(clip, pool.classes, recipe="toy")
    Trainer(tecoa, train, recipe="toy", progress=False).fit()
    torch.manual_seed(0)
    prompted = TeCoAPrompt.from_recipe(clip, pool.classes, recipe="toy")
    Trainer(prompted, train, recipe="toy", progress=False).fit()
    assert robust(tecoa) > zero_shot + 8 and robust(prompted) > zero_shot + 3
    assert not tecoa.head.requires_grad and not any(p.requires_grad for p in clip.parameters())


def test_recipes_train_without_weight_decay_and_official_prompts_are_frame_plus_tokens(clip, pool):
    "Official weight decay is 0 (finetuning.py, visual_prompt.py); CoOp's 5e-4 at the prompt's lr 40 would shrink the prompt 2% a step."
    from clipexplore.data import few_shot
    for cls in (TeCoA, TeCoAPrompt):
        for name in ("official", "toy"): assert cls.recipe(name).weight_decay == 0 and cls.recipe(name).source
    prompted = TeCoAPrompt.from_recipe(clip, pool.classes, recipe="toy")
    trainer = Trainer(prompted, few_shot(pool, 1, seed=0).dataset(clip.preprocess), recipe="toy", progress=False)
    assert trainer.lr == 40 and all(group["weight_decay"] == 0 for group in trainer.opt.param_groups)
    official = TeCoAPrompt.from_recipe(clip, pool.classes)                 # visual_prompt.py: padding frame + 100 tokens
    assert official.tokens.shape == (100, clip.vision_width) and official.prompter.pad == round(clip.image_size[0] * 30 / 224)


def test_prompts_act_on_normalised_images_and_tokens_go_through_the_backbone(clip, pool):
    "The frame is added after CLIP's normalisation (official), the tokens enter by `encode_image(prompts=)`."
    from clipexplore.toyworld import ToyWorld
    world = ToyWorld(4, seed=3)
    pixels = to_pixels(torch.stack([world[i]["image"] for i in range(4)]))
    framed = TeCoAPrompt(clip, pool.classes, kind="padding")
    with torch.no_grad():
        expected = framed.clip.logit_scale * F.normalize(clip.encode_image(framed.prompter(normalise(pixels))), dim=-1) @ framed.class_features.T
        torch.testing.assert_close(framed.pixel_logits(pixels), expected)
        tokens = TeCoAPrompt(clip, pool.classes, kind="token")
        expected = tokens.clip.logit_scale * F.normalize(clip.encode_image(normalise(pixels), prompts=tokens.tokens), dim=-1) @ tokens.class_features.T
        torch.testing.assert_close(tokens.pixel_logits(pixels), expected)
    try: TeCoAPrompt(clip, pool.classes, kind="frame")
    except ValueError as e: assert "padding+token" in str(e)
    else: raise AssertionError("an unknown prompt kind must be refused")


def test_tecoa_checkpoint_restores_a_batchnorm_tower_exactly(tmp_path):
    "TeCoA on an RN50-shaped tower: the running statistics (moved by clean and PGD passes) come back with the weights; the frozen head is not saved."
    from clipexplore.engine import read_checkpoint
    from test_finetune import assert_same_logits, fit_and_restore, random_images, tiny_resnet_clip
    clip, names, data = tiny_resnet_clip(), ["cat", "dog", "bird"], random_images()
    trained, restored = fit_and_restore(lambda: TeCoA(clip, names), data, tmp_path)
    assert_same_logits(trained, restored, {"image": torch.stack([d["image"] for d in data[:8]])})
    held = {k[len("method."):] for k in read_checkpoint(tmp_path)[0] if k.startswith("method.")}
    assert held == {f"visual.{k}" for k in trained.visual.state_dict()}            # the tower with its statistics; the class texts stay CLIP's
    assert robust_accuracy(restored, data, 4 / 255, steps=2) == robust_accuracy(trained, data, 4 / 255, steps=2)   # and under attack
