"KgCoOp and ProGrad train on the toy world, beat zero-shot on their training classes, and their extra terms act."
import pytest
import torch
import torch.nn.functional as F

from clipexplore.engine import Trainer, evaluate
from clipexplore.methods.kgcoop import KgCoOp
from clipexplore.methods.prograd import ProGrad, prograd_project
from clipexplore.methods.zeroshot import ZeroShotClassifier


def mean_acc(table): return table.where(domain="mean")[0]["accuracy"]


def fit(method, train, epochs=50):
    torch.manual_seed(0)
    return Trainer(method, train, epochs=epochs, progress=False).fit()


@pytest.mark.parametrize("make", [lambda c, n: KgCoOp(c, n), lambda c, n: ProGrad(c, n)], ids=["KgCoOp", "ProGrad"])
def test_beats_zero_shot_and_the_task_loss_falls(clip, pool, train, test, make):
    trainer = fit(make(clip, pool.classes), train)
    assert trainer.history[-1]["ce"] < trainer.history[1]["ce"]
    assert mean_acc(trainer.evaluate(test)) > mean_acc(evaluate(ZeroShotClassifier(clip, pool.classes), test)) + 2


def drift(method):
    "Mean cosine distance of the learned class features from the hand-crafted prompt's."
    with torch.no_grad(): return 1 - F.cosine_similarity(method.class_features(), method.handcrafted, dim=-1).mean().item()


def test_kgcoop_knowledge_term_holds_the_prompt_near_clip(clip, pool, train):
    held = fit(KgCoOp(clip, pool.classes), train).method
    free = fit(KgCoOp(clip, pool.classes, weight=0.0), train).method
    assert drift(held) < drift(free) * 0.8


def test_prograd_projection_removes_only_conflicts():
    g_kl = torch.tensor([0.0, 2.0, 0.0])
    conflicting = torch.tensor([1.0, -1.0, 3.0])
    projected = prograd_project(conflicting, g_kl)
    assert torch.dot(projected, g_kl).abs() < 1e-6 and torch.allclose(projected[[0, 2]], conflicting[[0, 2]])
    agreeing = torch.tensor([1.0, 1.0, 0.0])
    assert torch.equal(prograd_project(agreeing, g_kl), agreeing)


def test_prograd_lambda_changes_the_learned_prompt(clip, pool, train):
    aligned = fit(ProGrad(clip, pool.classes), train, epochs=5).method.ctx
    plain = fit(ProGrad(clip, pool.classes, lam=0.0), train, epochs=5).method.ctx
    assert (aligned - plain).abs().max() > 1e-4


def test_official_recipes_hold_the_papers_settings(clip, pool, train):
    "KgCoOp's and ProGrad's official recipes build the method and set the Trainer as their configs and scripts do."
    kgcoop = KgCoOp.from_recipe(clip, pool.classes, recipe="official")
    assert kgcoop.weight == 8.0 and kgcoop.n_ctx == 4 and kgcoop.template == "a photo of a {}."
    s = Trainer(kgcoop, train, recipe="official", progress=False).settings
    assert (s.epochs, s.batch_size, s.lr, s.warmup_epochs, s.schedule) == (100, 128, 0.002, 1, "dassl")
    prograd = ProGrad.from_recipe(clip, pool.classes, recipe="official")
    assert prograd.n_ctx == 16 and prograd.lam == 1.0 and prograd.temperature == 1.0
    s = Trainer(prograd, train, recipe="toy", epochs=3, progress=False).settings
    assert (s.epochs, s.batch_size) == (3, 32) and "rn50.yaml" in ProGrad.recipes["official"].source
