"EnPrompt: starts from the hand-crafted text features, its OT term is differentiable and acts, it learns base classes."
import torch

from clipexplore.methods.enprompt import EnPrompt, ot_discrepancy
from clipexplore.toyworld import ToyWorld
from conftest import base_class_accuracies


def test_external_layer_starts_at_the_handcrafted_features(clip, pool):
    method = EnPrompt(clip, pool.classes)
    assert torch.allclose(method.text_features(), method.handcrafted, atol=1e-6)


def test_ot_discrepancy_is_lower_for_aligned_sets_and_differentiable():
    g = torch.Generator().manual_seed(0)
    text = torch.randn(1, 2, 16, generator=g)
    aligned = text.repeat(1, 8, 1) + 0.05 * torch.randn(1, 16, 16, generator=g)
    unrelated = torch.randn(1, 16, 16, generator=g).requires_grad_()
    assert ot_discrepancy(aligned, text) < ot_discrepancy(unrelated, text)
    ot_discrepancy(unrelated, text).sum().backward()
    assert unrelated.grad.abs().sum() > 0


def test_ot_term_acts_and_base_classes_improve(clip, pool):
    batch_items = [ToyWorld(8, seed=3)[i] for i in range(8)]
    batch = dict(image=torch.stack([it["image"] for it in batch_items]), label=torch.tensor([it["label"] for it in batch_items]))
    grads = []
    for weight in (0.0, 1.0):
        torch.manual_seed(0)
        method = EnPrompt(clip, pool.classes, ot_weight=weight)
        terms = method.loss(batch)
        assert terms["ot"] > 0 and torch.isclose(terms["loss"], terms["ce"] + weight * terms["ot"])
        terms["loss"].backward(); grads.append(method.visual.grad.clone())
    assert (grads[0] - grads[1]).abs().max() > 0
    trained, zero_shot = base_class_accuracies(clip, pool, lambda n: EnPrompt(clip, n), epochs=20)
    assert trained > zero_shot + 3
