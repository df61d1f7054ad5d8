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
    tecoa = TeCoA(clip, pool.classes)
    Trainer(tecoa, train, epochs=10, lr=1e-4, optimizer="adamw", weight_decay=0.0, progress=False).fit()
    torch.manual_seed(0)
    prompted = TeCoAPrompt(clip, pool.classes, kind="token")
    Trainer(prompted, train, epochs=20, lr=40, progress=False).fit()
    assert robust(tecoa) > zero_shot + 8 and robust(prompted) > zero_shot + 3
    assert not tecoa.head.requires_grad and not any(p.requires_grad for p in clip.parameters())
