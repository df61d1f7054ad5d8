"CPL: the counterfactual mask is minimal and flips the prediction; the extra terms are part of the loss and act."
import torch

from clipexplore.methods.cpl import CPL, minimal_mask
from clipexplore.toyworld import ToyWorld


def scores(x, t): return (x * t).sum(-1)


def test_minimal_mask_flips_and_is_minimal():
    g = torch.Generator().manual_seed(0)
    x, x_neg, t_true, t_neg = (torch.randn(64, 32, generator=g) for _ in range(4))
    keep = scores(x, t_true) > scores(x, t_neg)                      # samples that start on the true class
    mask = minimal_mask(x, x_neg, t_true, t_neg)[keep]
    x, x_neg, t_true, t_neg = x[keep], x_neg[keep], t_true[keep], t_neg[keep]
    edited = (1 - mask) * x + mask * x_neg
    assert (scores(edited, t_neg) > scores(edited, t_true)).all()
    gain = (x_neg - x) * (t_neg - t_true)
    weakest = torch.where(mask.bool(), gain, torch.full_like(gain, float("inf"))).argmin(-1)   # the last dimension taken
    fewer = mask.clone(); fewer[torch.arange(len(mask)), weakest] = 0
    edited = (1 - fewer) * x + fewer * x_neg
    assert (scores(edited, t_neg) <= scores(edited, t_true)).all()   # one dimension fewer does not flip


def test_counterfactual_terms_are_in_the_loss_and_act(clip, pool):
    items = [ToyWorld(32, seed=5, distractors=True)[i] for i in range(32)]
    batch = dict(image=torch.stack([it["image"] for it in items]), label=torch.tensor([it["label"] for it in items]))
    grads = {}
    for weight in (0.0, 1.0):
        torch.manual_seed(0)
        method = CPL(clip, pool.classes, cf_weight=weight)
        terms = method.loss(batch)
        assert torch.isclose(terms["loss"], terms["ce"] + weight * terms["counterfactual"] + 0.07 * terms["mask_norm"])
        terms["loss"].backward()
        grads[weight] = method.ctx.grad.clone()
        assert method.mask.grad is not None and method.mask.grad.abs().sum() > 0
    assert (grads[0.0] - grads[1.0]).abs().max() > 0
