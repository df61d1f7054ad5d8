"MVLPT and SoftCPT: one prompt (or one meta-network) for several toy tasks beats zero-shot per task; sharing mechanisms are active."
import pytest
import torch

from clipexplore.engine import FeatureDataset, Trainer, evaluate, predict
from clipexplore.methods.mvlpt import MVLPT
from clipexplore.methods.softcpt import SoftCPT
from clipexplore.methods.zeroshot import ZeroShotClassifier
from clipexplore.tasks import TASK_CLASSES, MultiTaskData, TaskSlice, ToyTask, evaluate_tasks, per_task_cross_entropy, sample_shots
from clipexplore.toyworld import ToyWorld

TASKS = ("object", "colour", "domain")
PROMPTS = dict(object="a photo of a {}.", colour="a photo of a {} object.", domain="a {} of an object.")


@pytest.fixture(scope="module")
def toy_tasks(clip):
    "16 shots per class of three tasks on one toy world (encoded), and each task's test set."
    train_world, test_world = ToyWorld(3000, seed=21, distractors=True), ToyWorld(800, seed=22, distractors=True)
    train = MultiTaskData({t: sample_shots(ToyTask(train_world, t), 16, seed=k) for k, t in enumerate(TASKS)})
    tests = {t: FeatureDataset.encode(clip, ToyTask(test_world, t)) for t in TASKS}
    zero_shot = {t: evaluate(ZeroShotClassifier(clip, TASK_CLASSES[t], (PROMPTS[t],)), tests[t]).where(domain="mean")[0]["accuracy"] for t in TASKS}
    return train, FeatureDataset.encode(clip, train), tests, zero_shot


def _task_accuracy(method, tests):
    return {r["task"]: r["accuracy"] for r in evaluate_tasks(method, tests).where(domain="mean")}


def _union_features(tests, slices):
    "Each task's encoded test set end to end, labels moved into the union label space."
    parts = [tests[t] for t in slices]
    return FeatureDataset(torch.cat([d.features for d in parts]), torch.cat([d.labels + slices[t].start for t, d in zip(slices, parts)]),
                          torch.cat([d.domains for d in parts]), domain_names=parts[0].domain_names)


def test_mvlpt_shared_prompt_beats_zero_shot_and_transfers(clip, toy_tasks):
    train, features, tests, zero_shot = toy_tasks
    torch.manual_seed(0)
    mvlpt = MVLPT(clip, train.classes, "coop", slices=train.slices)
    Trainer(mvlpt, features, epochs=50, progress=False).fit()
    learnt = _task_accuracy(mvlpt, tests)
    assert learnt["object"] > zero_shot["object"] + 3 and learnt["colour"] > zero_shot["colour"] + 8 and learnt["domain"] > 95   # 53.2/65.9/100 vs 46.2/51.1/100
    preds, labels, _ = predict(mvlpt, _union_features(tests, train.slices))          # evaluated as one dataset: each image among its task's classes
    for task, s in train.slices.items():
        own = (labels >= s.start) & (labels < s.stop)
        assert torch.equal(preds[own], predict(TaskSlice(mvlpt, task), tests[task])[0] + s.start)
    target = mvlpt.transfer_to(TASK_CLASSES["colour"])
    assert torch.equal(target.ctx, mvlpt.ctx)
    assert evaluate(target, tests["colour"]).where(domain="mean")[0]["accuracy"] == pytest.approx(learnt["colour"], abs=0.01)   # slicing = own task


def test_mvlpt_loss_sees_only_each_samples_task_and_upt_couples_prompts(clip, toy_tasks):
    train = toy_tasks[0]
    upt = MVLPT(clip, train.classes, "upt", slices=train.slices)
    assert upt.n_ctx == 4 and upt.visual.shape[0] == len(clip.model.visual.transformer.resblocks)
    batch = torch.utils.data.default_collate([train[i] for i in (0, 200, 300)])       # one sample per task
    logits = upt.logits(batch)
    assert torch.allclose(upt.loss(batch)["loss"], per_task_cross_entropy(logits, batch["label"], upt.slices))
    other_task = torch.ones_like(logits, dtype=torch.bool)
    for i, label in enumerate(batch["label"]):
        s = next(s for s in upt.slices.values() if s.start <= label < s.stop); other_task[i, s] = False
    shifted = logits + 100 * other_task                                                # other tasks' logits do not matter
    assert torch.allclose(per_task_cross_entropy(shifted, batch["label"], upt.slices), per_task_cross_entropy(logits, batch["label"], upt.slices))
    ctx, _ = upt.prompts()
    assert torch.autograd.grad(ctx.sum(), upt.visual)[0].abs().sum() > 0               # text context depends on visual prompts
    with pytest.raises(ValueError, match="choose one of"): MVLPT(clip, ["a", "b"], "deep")


def test_softcpt_generates_task_contexts_and_beats_zero_shot(clip, toy_tasks):
    train, features, tests, zero_shot = toy_tasks
    names = dict(object="circle, square or star", colour="red, green or blue", domain="a photo, a sketch or a painting")
    torch.manual_seed(1)
    softcpt = SoftCPT(clip, {t: TASK_CLASSES[t] for t in TASKS}, names)
    Trainer(softcpt, features, epochs=20, progress=False).fit()
    learnt = _task_accuracy(softcpt, tests)
    mean = lambda acc: sum(acc.values()) / len(acc)
    assert mean(learnt) > mean(zero_shot) + 4, (learnt, zero_shot)
    ctx = torch.nn.functional.normalize(softcpt.contexts().detach().flatten(1), dim=-1)
    assert (ctx @ ctx.T - torch.eye(3)).abs().max() < 0.9                               # each task its own context
    softcpt.loss(torch.utils.data.default_collate([features[i] for i in range(8)]))["loss"].backward()
    assert softcpt.meta_net.weight.grad.abs().sum() > 0 and softcpt.task_ctx.grad.abs().sum() > 0


def test_tasks_sharing_a_class_name_are_refused(clip):
    with pytest.raises(ValueError, match="share class names"): SoftCPT(clip, {"colour": ["red", "blue"], "team": ["red", "green"]})
    with pytest.raises(ValueError, match="share class names"): MultiTaskData({"a": ToyTask(ToyWorld(5), "colour"), "b": ToyTask(ToyWorld(5, seed=1), "colour")})


def test_softcpt_base_to_new_rebuilds_the_class_prompts_under_the_same_task_context(clip, pool):
    "Base-to-new with the protocol: the new names get prompts with the context generated from the task's name (which did not change)."
    from clipexplore.data import base_new_split, subset_classes, toy_recordset
    from clipexplore.protocols import base_to_new
    from conftest import TRAIN_DOMAINS
    test = toy_recordset(ToyWorld(300, seed=7, domains=TRAIN_DOMAINS, distractors=True))
    row = base_to_new(lambda names: SoftCPT(clip, {"object": names}, {"object": "a shape"}), pool, test, shots=4, seeds=(1,),
                      transform=clip.preprocess, epochs=10)[0]
    new = subset_classes(test, base_new_split(len(pool.classes))[1]).dataset(clip.preprocess)
    zero_shot = evaluate(ZeroShotClassifier(clip, new.classes), new).where(domain="mean")[0]["accuracy"]
    assert row["new"] > zero_shot - 5 and row["new"] > 40, (row, zero_shot)       # chance is 20; measured 75.2 vs zero-shot 74.0


def test_softcpt_set_classes_swaps_names_keeps_contexts_and_round_trips(clip, toy_tasks):
    features = toy_tasks[1]
    names = dict(object="circle, square or star", colour="red, green or blue", domain="a photo, a sketch or a painting")
    torch.manual_seed(0)
    softcpt = SoftCPT(clip, {t: TASK_CLASSES[t] for t in TASKS}, names)
    batch = {"image_features": features.features[:8]}
    with torch.no_grad(): before, contexts = softcpt.logits(batch), softcpt.contexts()
    own, slices = list(softcpt.classnames), dict(softcpt.slices)
    colours = slices["colour"]
    swapped = own[:colours.start] + own[colours][::-1] + own[colours.stop:]          # the colour task's names in reverse
    softcpt.set_classes(swapped, slices)
    with torch.no_grad(): after = softcpt.logits(batch)
    assert softcpt.classnames == swapped and torch.equal(softcpt.contexts(), contexts)    # the generated contexts do not depend on class names
    torch.testing.assert_close(after[:, colours], before[:, colours].flip(-1), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(after[:, slices["object"]], before[:, slices["object"]], atol=1e-5, rtol=1e-5)
    fewer = TASK_CLASSES["object"][:3] + ["pink", "teal"] + TASK_CLASSES["domain"]    # other names, other counts per task
    softcpt.set_classes(fewer, dict(object=slice(0, 3), colour=slice(3, 5), domain=slice(5, 5 + len(TASK_CLASSES["domain"]))))
    assert softcpt.logits(batch).shape == (8, len(fewer)) and softcpt.slices["colour"] == slice(3, 5)
    with pytest.raises(ValueError, match="slices="): softcpt.set_classes(own[::-1])               # several tasks: whose names?
    with pytest.raises(ValueError, match="trained on"): softcpt.set_classes(own, {"object": slice(0, len(own))})
    softcpt.set_classes(own, slices)
    with torch.no_grad(): torch.testing.assert_close(softcpt.logits(batch), before, atol=1e-5, rtol=1e-5)
    one = SoftCPT(clip, {"object": TASK_CLASSES["object"][:5]})
    one.set_classes(TASK_CLASSES["object"][5:])                                           # one task takes any names
    assert one.classnames == TASK_CLASSES["object"][5:] and one.slices == {"object": slice(0, 5)}
