"CPL: the counterfactual mask flips the prediction; the mixed mask is the official one; the extra terms act and change training."
import math

import torch
import torch.nn.functional as F

from clipexplore.data import few_shot
from clipexplore.engine import FeatureDataset, Trainer
from clipexplore.methods.cocoop import CoCoOp
from clipexplore.methods.cpl import CPL, counterfactual_mask
from clipexplore.toyworld import ToyWorld


def scores(x, t): return (F.normalize(x, dim=-1) * t).sum(-1)


def toy_batch(n=32, seed=5):
    items = [ToyWorld(n, seed=seed, distractors=True)[i] for i in range(n)]
    return dict(image=torch.stack([it["image"] for it in items]), label=torch.tensor([it["label"] for it in items]))


def test_mask_flips_the_prediction_and_stops_there():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(64, 32, generator=g)
    x_neg = x + torch.randn(64, 32, generator=g)                      # a similar class's image, as the neighbour class's is
    t_true, t_neg = F.normalize(x + 0.3 * torch.randn(64, 32, generator=g), dim=-1), F.normalize(x_neg, dim=-1)
    keep = scores(x, t_true) > scores(x, t_neg)                       # samples that start on the true class
    u_star = counterfactual_mask(x, x_neg, t_true, t_neg)[keep]
    assert set(u_star.unique().tolist()) <= {-1.0, 1.0}
    edited = torch.where(u_star > 0, x_neg[keep], x[keep])
    assert (scores(edited, t_neg[keep]) > scores(edited, t_true[keep])).all()
    assert ((u_star > 0).sum(-1) < 32).all()                           # never all dimensions on these inputs


def test_mixed_mask_is_exactly_zero_outside_the_copied_dimensions(clip, pool):
    method = CPL(clip, pool.classes)
    f = F.normalize(torch.randn(4, clip.embed_dim, generator=torch.Generator().manual_seed(1)), dim=-1)
    f_neg, y = f.roll(1, 0), torch.tensor([0, 1, 2, 3])
    texts = method.conditional_class_features(f)
    nothing = -torch.ones_like(f)                                       # u* = -1 everywhere: the counterfactual is the factual
    contrast, norm = method.counterfactual_terms(f, texts, y, f_neg, nothing)
    assert torch.allclose(contrast, torch.full_like(contrast, math.log(2)), atol=1e-7) and torch.equal(norm, torch.zeros(4))
    some = nothing.clone(); some[:, :3] = 1                             # 3 dimensions copied, u_learn = 1: u = 1 there, 0 elsewhere
    _, norm = method.counterfactual_terms(f, texts, y, f_neg, some)
    u = (0.999 * torch.ones(()) + 0.001 * torch.ones(())).clamp(0, 1)
    assert torch.allclose(norm, torch.full((4,), float(u) * math.sqrt(3)), atol=1e-6)   # the norm of the mixed mask, not of u_learn


def test_learned_mask_gets_gradient_only_through_the_copied_dimensions(clip, pool):
    method = CPL(clip, pool.classes)
    with torch.no_grad(): method.mask.mul_(0.5)                         # below 1: the clamp passes the gradient
    f = F.normalize(torch.randn(2, clip.embed_dim, generator=torch.Generator().manual_seed(2)), dim=-1)
    y, u_star = torch.tensor([0, 1]), -torch.ones_like(f)
    u_star[0, :5], u_star[1, 10:12] = 1, 1
    contrast, norm = method.counterfactual_terms(f, method.conditional_class_features(f), y, f.flip(0), u_star)
    (contrast.sum() + norm.sum()).backward()
    touched = method.mask.grad != 0
    assert touched[:5, 0].all() and touched[10:12, 1].all() and touched.sum() == 7


def test_counterfactual_terms_are_in_the_loss_and_act(clip, pool):
    batch = toy_batch()
    grads = {}
    for weight in (0.0, 1.0):
        torch.manual_seed(0)
        method = CPL(clip, pool.classes, cf_weight=weight)
        terms = method.loss(batch)
        assert torch.isclose(terms["loss"], terms["ce"] + weight * terms["counterfactual"] + 0.07 * terms["mask_norm"])
        terms["loss"].backward()
        grads[weight] = method.ctx.grad.clone()
        # u_learn = 1 at init puts 0.999 + 0.001 u_learn exactly on the clamp's bound, where the official clamp passes
        # no gradient: u_learn only starts to learn once weight decay has pulled it below 1 (as in the official code)
        assert method.mask.grad is not None and method.mask.grad.abs().sum() == 0
    assert (grads[0.0] - grads[1.0]).abs().max() > 0


def test_stored_negatives_make_batch_size_one_work(clip, pool):
    train = FeatureDataset.encode(clip, few_shot(pool, 2, seed=1).dataset(clip.preprocess))
    method = CPL(clip, pool.classes).init_from_data(train)
    labels = torch.as_tensor(train.labels)
    first = [int((labels == c).nonzero()[0, 0]) for c in range(len(pool.classes))]
    assert torch.allclose(method.negatives, F.normalize(train.features[first].float(), dim=-1))
    one = dict(image_features=train.features[:1], label=labels[:1])       # a batch of one image: no in-batch negative
    f_neg, neg_class = method.partners(F.normalize(one["image_features"].float(), dim=-1), one["label"])
    assert int(neg_class) == int(method.neighbour[labels[0]]) and not torch.allclose(f_neg, one["image_features"].float())
    terms = method.loss(one)
    terms["counterfactual"].backward()
    assert method.ctx.grad.abs().sum() > 0


def test_cpl_trains_differently_from_cocoop(clip, pool):
    "The counterfactual term changes the learned context, by more than round-off, against CoCoOp on the same data and seed."
    data = FeatureDataset.encode(clip, few_shot(pool, 2, seed=1).dataset(clip.preprocess))
    learned, moved = {}, {}
    for name, make in (("CoCoOp", lambda: CoCoOp(clip, pool.classes)), ("CPL", lambda: CPL(clip, pool.classes))):
        torch.manual_seed(0)
        start = make().ctx.detach().clone()
        torch.manual_seed(0)
        learned[name] = Trainer(make(), data, epochs=1, warmup_epochs=0, batch_size=4, progress=False).fit().method.ctx.detach()
        moved[name] = (learned[name] - start).abs().max()
    apart = (learned["CoCoOp"] - learned["CPL"]).abs().max()
    assert apart > 0.02 * moved["CoCoOp"], f"CPL's context is within {float(apart):.1e} of CoCoOp's (training moved it {float(moved['CoCoOp']):.1e})"


def test_recipes_cite_the_official_config(clip, pool):
    official = CPL.recipes["official"]
    assert (official.epochs, official.batch_size, official.lr) == (10, 1, 0.002) and "vit_b16_c4_ep10_batch1_ctxv1.yaml" in official.source
    method = CPL.from_recipe(clip, pool.classes, recipe="toy")
    assert (method.cf_weight, method.mask_weight, method.ctx.shape[0]) == (1.0, 0.07, 4) and "batch_size" in CPL.recipes["toy"].notes
