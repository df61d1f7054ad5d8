"Fine-tuning hurts the unseen domain and new classes; WiSE-FT, CAR-FT and anchor-based fine-tuning keep them near zero-shot."
from types import SimpleNamespace

import pytest
import torch

from clipexplore.engine import Trainer, evaluate, load_learned
from clipexplore.methods.finetune import AnchorFT, CARFT, FineTuner, retrieve_anchors, toy_captioner, wise_ft
from clipexplore.protocols import new_class_accuracy

RECIPE = dict(epochs=30, lr=5e-4, optimizer="adamw", weight_decay=0.1, progress=False)


@pytest.fixture(scope="module")
def split(clip, pool):
    "16 shots of the 5 base classes (records and images), held-out base-class and new-class images."
    from clipexplore.data import base_new_split, few_shot, subset_classes, toy_recordset
    from clipexplore.toyworld import ToyWorld
    held_out = toy_recordset(ToyWorld(1600, seed=7, distractors=True))
    base, new = base_new_split(len(pool.classes))
    records = subset_classes(few_shot(pool, 16, seed=1), base)
    return SimpleNamespace(records=records, train=records.dataset(clip.preprocess), base_test=subset_classes(held_out, base).dataset(clip.preprocess),
                           new_test=subset_classes(held_out, new).dataset(clip.preprocess))


def accuracies(method, split):
    "Mean accuracy on the training domains, on sketch, and on the new classes (through their zero-shot heads)."
    rows = {r["domain"]: r["accuracy"] for r in evaluate(method, split.base_test)}
    return (rows["photo"] + rows["cartoon"] + rows["painting"]) / 3, rows["sketch"], new_class_accuracy(method, split.new_test)


@pytest.fixture(scope="module")
def plain(clip, split):
    torch.manual_seed(0)
    tuned = FineTuner(clip, split.train.classes)
    Trainer(tuned, split.train, **RECIPE).fit()
    return tuned


def test_wise_ft_restores_what_fine_tuning_loses(clip, split, tmp_path):
    torch.manual_seed(0)
    tuned = FineTuner(clip, split.train.classes)
    Trainer(tuned, split.train, checkpoint_dir=tmp_path, **RECIPE).fit()
    zero_shot, fine, mixed = accuracies(wise_ft(tuned, 0.0), split), accuracies(tuned, split), accuracies(wise_ft(tuned, 0.3), split)
    assert fine[0] > zero_shot[0] and fine[1] < zero_shot[1] - 5 and fine[2] < zero_shot[2] - 5
    assert mixed[1] > fine[1] + 10 and mixed[2] > fine[2] + 5 and mixed[0] >= fine[0]
    assert all(not p.requires_grad for p in clip.parameters())
    restored = load_learned(FineTuner(clip, split.train.classes), tmp_path)      # the checkpoint holds encoder and head
    assert accuracies(restored, split) == pytest.approx(fine)


def test_car_ft_keeps_unseen_domain_and_new_classes_near_zero_shot(clip, split, plain):
    torch.manual_seed(0)
    car = CARFT(clip, split.train.classes, beta=10.0)
    Trainer(car, split.train, **RECIPE).fit()
    fine, robust = accuracies(plain, split), accuracies(car, split)
    assert robust[0] >= fine[0] - 1 and robust[1] > fine[1] + 10 and robust[2] > fine[2] + 4
    images = torch.stack([split.train[i]["image"] for i in range(64)])
    with torch.no_grad():
        frozen = car.context_log_probs(torch.nn.functional.normalize(clip.encode_image(images).float(), dim=-1))
        drift = {name: torch.nn.functional.kl_div(car.context_log_probs(m.image_features({"image": images})), frozen, log_target=True,
                                                  reduction="batchmean").item() for name, m in (("plain", plain), ("car", car))}
    assert 0 < drift["car"] < drift["plain"] / 2                                   # the context term kept what plain fine-tuning moved


def test_anchor_ft_keeps_unseen_domain_and_new_classes_closer_to_zero_shot(clip, split, plain):
    from clipexplore.toyclip import PRETRAIN_OBJECTS
    from clipexplore.toyworld import ToyWorld
    from conftest import TRAIN_DOMAINS
    captioner = toy_captioner(ToyWorld(3000, seed=11, domains=TRAIN_DOMAINS, distractors=True))   # the `pool` fixture's world
    captions = [captioner(r.image) for r in split.records.records]
    assert all(c.split(" of ")[0] in ("a painting", "a photo", "a cartoon") for c in captions)
    corpus = ToyWorld(4000, seed=1000, n_objects=PRETRAIN_OBJECTS, captions=True)
    images, anchor_captions = retrieve_anchors(clip, corpus, split.train.classes, k=320)
    about_task = lambda captions: sum(any(c in t for c in split.train.classes) for t in captions) / len(captions)
    assert images.shape[0] == 320 and about_task(anchor_captions) > about_task([corpus[i]["caption"] for i in range(320)]) + 0.1
    torch.manual_seed(0)
    anchored = AnchorFT(clip, split.train.classes, captions, images, anchor_captions)
    trainer = Trainer(anchored, split.train, **RECIPE).fit()
    fine, robust = accuracies(plain, split), accuracies(anchored, split)
    assert robust[0] >= fine[0] - 1 and robust[1] > fine[1] + 10 and robust[2] > fine[2] + 3
    assert trainer.history[-1]["captioned"] > 0 and trainer.history[-1]["retrieved"] > 0
