"VPT and MaPLe train through the vision tower on the toy world and beat zero-shot where they trained; their prompts act."
import torch

from clipexplore.data import few_shot, toy_recordset
from clipexplore.engine import Trainer, evaluate
from clipexplore.methods.maple import MaPLe
from clipexplore.methods.vpt import VPT
from clipexplore.methods.zeroshot import ZeroShotClassifier
from clipexplore.toyworld import ToyWorld
from conftest import TRAIN_DOMAINS, base_class_accuracies


def seen_mean(table): return sum(r["accuracy"] for r in table if r["domain"] in TRAIN_DOMAINS) / len(TRAIN_DOMAINS)


def test_deep_vpt_beats_zero_shot_on_its_training_domains(clip, pool):
    train = few_shot(pool, 16, seed=1).dataset(clip.preprocess)
    test = toy_recordset(ToyWorld(600, seed=7, domains=TRAIN_DOMAINS, distractors=True)).dataset(clip.preprocess)
    torch.manual_seed(0)
    trainer = Trainer(VPT(clip, pool.classes), train, epochs=20, lr=0.0025, progress=False).fit()
    assert trainer.history[-1]["loss"] < trainer.history[0]["loss"]
    assert seen_mean(trainer.evaluate(test)) > seen_mean(evaluate(ZeroShotClassifier(clip, pool.classes), test)) + 4


def test_maple_beats_zero_shot_on_base_classes(clip, pool):
    trained, zero_shot = base_class_accuracies(clip, pool, lambda n: MaPLe(clip, n), epochs=20, lr=0.0035)
    assert trained > zero_shot + 3


def test_vpt_prompts_and_maple_couplers_receive_gradients(clip, pool):
    images = torch.stack([ToyWorld(4, seed=3)[i]["image"] for i in range(4)])
    batch = dict(image=images, label=torch.arange(4))
    for method, names in [(VPT(clip, pool.classes), ["prompts"]), (MaPLe(clip, pool.classes), ["ctx", "deep_text", "couplers.1.weight"])]:
        method.loss(batch)["loss"].backward()
        grads = dict(method.named_parameters())
        for n in names: assert grads[n].grad is not None and grads[n].grad.abs().sum() > 0, (type(method).__name__, n)


def test_maple_depth_is_capped_by_the_shallower_tower(clip, pool):
    assert MaPLe(clip, pool.classes, depth=9).depth == 4 and MaPLe(clip, pool.classes, depth=2).depth == 2


def test_recipes_name_their_config_and_build_the_methods(clip, pool):
    official = VPT.recipe("official")
    assert (official.epochs, official.batch_size, official.lr, official.method["n_tokens"], official.method["depth"]) == (5, 4, 0.0025, 8, 12)
    assert "VPT/vit_b16_c2_ep5_batch4_4.yaml" in official.source
    assert VPT.from_recipe(clip, pool.classes, recipe="toy").depth == 6 and VPT.from_recipe(clip, pool.classes, recipe="toy", depth=1).depth == 1
    maple = MaPLe.recipe("official")
    assert (maple.epochs, maple.batch_size, maple.lr, maple.method) == (5, 4, 0.0035, dict(n_ctx=2, ctx_init="a photo of a", depth=9))
    assert "MaPLe/vit_b16_c2_ep5_batch4_2ctx.yaml" in maple.source
    assert MaPLe.from_recipe(clip, pool.classes, recipe="toy").depth == 4
