"MetaPrompt: trains on the toy world, its meta step acts on the right prompts, and restoring never aliases."
import torch

from clipexplore.data import few_shot
from clipexplore.engine import Trainer
from clipexplore.methods.metaprompt import MetaPrompt
from clipexplore.toyworld import ToyWorld
from conftest import TRAIN_DOMAINS, base_class_accuracies


def batch_of(n=16, seed=5):
    items = [ToyWorld(n, seed=seed, domains=TRAIN_DOMAINS, distractors=True)[i] for i in range(n)]
    return {k: torch.stack([torch.as_tensor(it[k]) for it in items]) for k in ("image", "label", "domain")}


def test_metaprompt_beats_zero_shot_on_base_classes(clip, pool):
    trained, zero_shot = base_class_accuracies(clip, pool, lambda n: MetaPrompt(clip, n), epochs=8, batch_size=16, lr=0.0015)
    assert trained > zero_shot + 3


def test_meta_gradients_touch_text_for_classes_and_vision_for_domains(clip, pool):
    batch = batch_of()
    text = MetaPrompt(clip, pool.classes, split="classes")
    params, grads = text.meta_gradients(batch, lr=0.01)
    assert params[0] is text.ctx and params[1] is text.deep_text and all(g.abs().sum() > 0 for g in grads)
    vision = MetaPrompt(clip, pool.classes, split="domains")
    params, grads = vision.meta_gradients(batch, lr=0.01)
    assert params == [vision.visual] and grads[0].abs().sum() > 0


def test_restore_copies_values_back(clip, pool):
    method = MetaPrompt(clip, pool.classes)
    before = [p.detach().clone() for p in (method.ctx, method.deep_text)]
    storage = method.ctx.data_ptr()
    method.meta_gradients(batch_of(), lr=1.0)
    assert torch.equal(method.ctx, before[0]) and torch.equal(method.deep_text, before[1])
    assert method.ctx.data_ptr() == storage                 # the parameter kept its own storage: nothing aliased


def test_meta_step_changes_the_learned_prompts(clip, pool):
    data = few_shot(pool, 2, seed=1).dataset(clip.preprocess)
    runs = []
    for step in (0.0, 0.2):
        torch.manual_seed(0)
        runs.append(Trainer(MetaPrompt(clip, pool.classes, meta_step=step), data, epochs=2, batch_size=16, lr=0.05, progress=False).fit().method.ctx)
    assert (runs[0] - runs[1]).abs().max() > 1e-5


def held_out_gradient(method, batch, groups):
    "Sum over groups of the held-out gradient with no inner step, skipping groups of fewer than 2 classes (official)."
    params, total = [method.ctx, method.deep_text], [0, 0]
    for k, held in enumerate(groups):
        others = torch.cat([g for j, g in enumerate(groups) if j != k])
        outer, inner = torch.isin(batch["label"], held), torch.isin(batch["label"], others)
        if len(held) < 2 or not outer.any() or not inner.any(): continue
        grads = torch.autograd.grad(method._split_loss(batch, outer, held), params)
        total = [t + g for t, g in zip(total, grads)]
    return total


def test_class_split_halves_all_classes_not_only_the_batchs(clip, pool):
    method = MetaPrompt(clip, pool.classes)
    batch = batch_of()
    few = torch.isin(batch["label"], torch.tensor([0, 1, 2]))
    groups = method._groups({k: v[few] for k, v in batch.items()})           # a batch with 3 of the 10 classes
    assert sorted(torch.cat(groups).tolist()) == list(range(len(pool.classes))) and [len(g) for g in groups] == [5, 5]


def test_held_out_loss_runs_over_every_class_of_its_group(clip, pool):
    method = MetaPrompt(clip, pool.classes)
    batch = batch_of()
    groups = [torch.tensor([0, 1, 2, 3, 4]), torch.tensor([5, 6, 7, 8, 9])]
    assert not torch.isin(torch.arange(10), batch["label"]).all()           # some classes of a group are not in the batch
    method._groups = lambda batch: groups
    _, grads = method.meta_gradients(batch, lr=0.0)                           # lr 0: the inner step changes nothing
    for ours, expected in zip(grads, held_out_gradient(method, batch, groups)):
        assert torch.allclose(ours, expected, atol=1e-7)


def test_a_held_out_group_of_one_class_is_skipped(clip, pool):
    method = MetaPrompt(clip, pool.classes[:3])
    batch = batch_of(32)
    keep = batch["label"] < 3
    batch = {k: v[keep] for k, v in batch.items()}
    groups = [torch.tensor([0, 1]), torch.tensor([2])]
    split = method._groups
    method._groups = lambda batch: groups
    _, grads = method.meta_gradients(batch, lr=0.0)
    for ours, expected in zip(grads, held_out_gradient(method, batch, groups)):
        assert torch.allclose(ours, expected, atol=1e-7)
    assert [len(g) for g in split(batch)] == [2, 1]                           # 3 classes: halves of 2 and 1


def test_meta_update_is_the_official_plain_step(clip, pool):
    method = MetaPrompt(clip, pool.classes)
    batch = batch_of()
    groups = [torch.tensor([3, 0, 9, 5, 1]), torch.tensor([2, 8, 4, 6, 7])]
    method._groups = lambda batch: groups
    before = [p.detach().clone() for p in (method.ctx, method.deep_text)]
    _, meta = method.meta_gradients(batch, lr=0.01)
    terms = method.loss(batch)
    method.compute_gradients(terms, batch, lr=0.01)                          # gradients for the optimiser, then the meta update
    for p, b, g in zip((method.ctx, method.deep_text), before, meta):
        assert torch.allclose(p.detach(), b - 0.01 * 0.2 * g, atol=1e-7) and p.grad is not None


def test_recipes_cite_the_official_configs(clip, pool):
    b2n, dg = MetaPrompt.recipes["official"], MetaPrompt.recipes["official_dg"]
    assert (b2n.epochs, b2n.batch_size, b2n.lr, b2n.method["n_ctx"]) == (8, 16, 0.0015, 2) and "Meta_B2N/vit_b16.yaml" in b2n.source
    assert (dg.epochs, dg.batch_size, dg.method["n_ctx"], dg.method["split"]) == (6, 32, 4, "domains") and "Meta_DG/vit_b16.yaml" in dg.source
    method = MetaPrompt.from_recipe(clip, pool.classes, recipe="toy_dg")
    assert method.split == "domains" and method.ctx.shape[0] == 4 and method.visual.shape[1] == 4
