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
