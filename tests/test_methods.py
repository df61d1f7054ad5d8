"CoOp, CoCoOp and the linear probe on the toy world: real effects, and the engine's guarantees on a real method."
import pytest
import torch

from clipexplore.data import few_shot, toy_recordset
from clipexplore.engine import Callback, FeatureDataset, Trainer, evaluate
from clipexplore.metrics import Table
from clipexplore.methods.cocoop import CoCoOp
from clipexplore.methods.coop import CoOp
from clipexplore.methods.linear_probe import LinearProbe
from clipexplore.methods.zeroshot import ZeroShotClassifier
from clipexplore.protocols import base_to_new, harmonic_mean, leave_one_domain_out
from clipexplore.toyworld import ToyWorld
from conftest import TRAIN_DOMAINS


def seen_mean(table):
    return sum(r["accuracy"] for r in table if r["domain"] in TRAIN_DOMAINS) / len(TRAIN_DOMAINS)


def test_coop_16_shot_beats_zero_shot_on_training_domains(clip, pool, train, test):
    zero_shot = seen_mean(evaluate(ZeroShotClassifier(clip, pool.classes), test))
    torch.manual_seed(0)
    coop = Trainer(CoOp(clip, pool.classes, n_ctx=16), train, epochs=50, progress=False).fit()
    assert seen_mean(coop.evaluate(test)) > zero_shot + 4


def test_coop_resume_equals_uninterrupted(clip, pool, train, tmp_path):
    class InterruptAt(Callback):
        def after_batch(self, t):
            if (t.epoch, t.step_in_epoch) == (2, 3): raise KeyboardInterrupt
    make = lambda: CoOp(clip, pool.classes, n_ctx=4)
    torch.manual_seed(0); full = Trainer(make(), train, epochs=4, progress=False).fit()
    torch.manual_seed(0); Trainer(make(), train, epochs=4, progress=False, checkpoint_dir=tmp_path, callbacks=[InterruptAt()]).fit()
    torch.manual_seed(1); resumed = Trainer(make(), train, epochs=4, progress=False).resume(tmp_path).fit()
    assert torch.allclose(resumed.method.ctx, full.method.ctx, atol=1e-6)
    assert (tmp_path / "state.safetensors").stat().st_size < 64 * 1024        # the context, not the backbone


def test_cocoop_context_depends_on_the_image(clip, pool, train):
    cocoop = CoCoOp(clip, pool.classes)
    torch.nn.init.normal_(cocoop.meta_net[2].weight, std=1.0)
    feats = train.features[:2]
    per_image = cocoop.conditional_class_features(feats)
    assert per_image.shape == (2, 10, clip.embed_dim) and (per_image[0] - per_image[1]).abs().max() > 1e-3
    cocoop.logits(dict(image_features=feats)).sum().backward()
    assert cocoop.meta_net[0].weight.grad.abs().sum() > 0 and cocoop.ctx.grad.abs().sum() > 0


def test_base_to_new_rows_and_harmonic_mean(clip, pool):
    test = toy_recordset(ToyWorld(200, seed=7, domains=TRAIN_DOMAINS, distractors=True))
    rows = base_to_new(lambda names: CoOp(clip, names, n_ctx=4, ctx_init="a photo of a"), pool, test,
                       shots=4, seeds=(1, 2), transform=clip.preprocess, epochs=2)
    assert [r["seed"] for r in rows] == [1, 2]
    for r in rows: assert r["hm"] == pytest.approx(harmonic_mean(r["base"], r["new"])) and 0 < r["new"] <= 100


def test_linear_probe_learns_and_cannot_name_new_classes(clip, pool, train, test):
    valid = FeatureDataset.encode(clip, ToyWorld(300, seed=12, domains=TRAIN_DOMAINS, distractors=True))
    probe = LinearProbe(clip, pool.classes).closed_form_fit(train, valid)
    assert seen_mean(evaluate(probe, test)) > 30 and probe.C in LinearProbe.C_GRID     # chance is 10
    with pytest.raises(ValueError, match="cannot classify new class names"): probe.set_classes(["a", "b"])


def test_leave_one_domain_out_covers_every_domain(clip):
    rs = toy_recordset(ToyWorld(400, seed=13))
    rows = leave_one_domain_out(lambda names: ZeroShotClassifier(clip, names), rs, shots=2, seeds=(1,), transform=clip.preprocess)
    assert sorted(r["target"] for r in rows) == sorted(rs.domains)


def test_upl_beats_zero_shot_without_any_label(clip, test):
    from clipexplore.methods.upl import pseudo_label, upl
    from clipexplore.toyworld import ToyWorld
    from conftest import TRAIN_DOMAINS
    unlabeled = FeatureDataset.encode(clip, ToyWorld(3000, seed=11, domains=TRAIN_DOMAINS, distractors=True))
    pseudo, chosen = pseudo_label(clip, unlabeled, unlabeled.classes, k=16)
    assert torch.bincount(pseudo.labels, minlength=10).max() <= 16 and len(set(chosen.tolist())) == len(chosen)
    assert (pseudo.labels == unlabeled.labels[chosen]).float().mean() > 0.7             # confident pseudo-labels are mostly right
    ensemble = upl(clip, unlabeled, unlabeled.classes, n_prompts=2)
    mean = lambda m: evaluate(m, test).where(domain="mean")[0]["accuracy"]
    assert mean(ensemble) > mean(ZeroShotClassifier(clip, test.classes)) + 4
