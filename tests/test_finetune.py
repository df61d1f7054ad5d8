"Fine-tuning hurts the unseen domain and new classes; WiSE-FT's weight mixtures win them back without losing in-domain accuracy."
import pytest
import torch

from clipexplore.engine import Trainer, evaluate, load_learned
from clipexplore.methods.finetune import FineTuner, wise_ft


def test_wise_ft_restores_what_fine_tuning_loses(clip, pool, tmp_path):
    from clipexplore.data import base_new_split, few_shot, subset_classes, toy_recordset
    from clipexplore.toyworld import ToyWorld
    held_out = toy_recordset(ToyWorld(800, seed=7, distractors=True))
    base, new = base_new_split(len(pool.classes))
    train = subset_classes(few_shot(pool, 16, seed=1), base).dataset(clip.preprocess)
    base_test, new_test = (subset_classes(held_out, labels) for labels in (base, new))
    base_test, new_classes, new_test = base_test.dataset(clip.preprocess), new_test.classes, new_test.dataset(clip.preprocess)

    def accuracies(method):
        rows = {r["domain"]: r["accuracy"] for r in evaluate(method, base_test)}
        method.set_classes(new_classes)
        new_acc = evaluate(method, new_test).where(domain="mean")[0]["accuracy"]
        method.set_classes(train.classes)
        return (rows["photo"] + rows["cartoon"] + rows["painting"]) / 3, rows["sketch"], new_acc

    torch.manual_seed(0)
    tuned = FineTuner(clip, train.classes)
    Trainer(tuned, train, epochs=30, lr=5e-4, optimizer="adamw", weight_decay=0.1, progress=False, checkpoint_dir=tmp_path).fit()
    zero_shot, fine, mixed = accuracies(wise_ft(tuned, 0.0)), accuracies(tuned), accuracies(wise_ft(tuned, 0.3))
    assert fine[0] > zero_shot[0] and fine[1] < zero_shot[1] - 5 and fine[2] < zero_shot[2] - 5
    assert mixed[1] > fine[1] + 10 and mixed[2] > fine[2] + 5 and mixed[0] >= fine[0]
    assert all(not p.requires_grad for p in clip.parameters())
    restored = load_learned(FineTuner(clip, train.classes), tmp_path)            # the checkpoint holds encoder and head
    assert accuracies(restored) == pytest.approx(fine)


def test_car_ft_keeps_unseen_domain_and_new_classes_near_zero_shot(clip, pool):
    from clipexplore.data import base_new_split, few_shot, subset_classes, toy_recordset
    from clipexplore.methods.finetune import CARFT
    from clipexplore.toyworld import ToyWorld
    held_out = toy_recordset(ToyWorld(1600, seed=7, distractors=True))
    base, new = base_new_split(len(pool.classes))
    train = subset_classes(few_shot(pool, 16, seed=1), base).dataset(clip.preprocess)
    base_test, new_records = subset_classes(held_out, base).dataset(clip.preprocess), subset_classes(held_out, new)
    new_test = new_records.dataset(clip.preprocess)

    def accuracies(method):
        rows = {r["domain"]: r["accuracy"] for r in evaluate(method, base_test)}
        method.set_classes(new_records.classes)
        new_acc = evaluate(method, new_test).where(domain="mean")[0]["accuracy"]
        method.set_classes(train.classes)
        return (rows["photo"] + rows["cartoon"] + rows["painting"]) / 3, rows["sketch"], new_acc

    recipe = dict(epochs=30, lr=5e-4, optimizer="adamw", weight_decay=0.1, progress=False)
    torch.manual_seed(0); plain = FineTuner(clip, train.classes); Trainer(plain, train, **recipe).fit()
    torch.manual_seed(0); car = CARFT(clip, train.classes, beta=10.0); Trainer(car, train, **recipe).fit()
    fine, robust = accuracies(plain), accuracies(car)
    assert robust[0] >= fine[0] - 1 and robust[1] > fine[1] + 10 and robust[2] > fine[2] + 4
    images = torch.stack([train[i]["image"] for i in range(64)])
    with torch.no_grad():
        frozen = car.context_log_probs(torch.nn.functional.normalize(clip.encode_image(images).float(), dim=-1))
        drift = {name: torch.nn.functional.kl_div(car.context_log_probs(m.image_features({"image": images})), frozen, log_target=True,
                                                  reduction="batchmean").item() for name, m in (("plain", plain), ("car", car))}
    assert 0 < drift["car"] < drift["plain"] / 2                                   # the context term kept what plain fine-tuning moved


def test_anchor_ft_keeps_unseen_domain_and_new_classes_closer_to_zero_shot(clip, pool):
    from clipexplore.data import base_new_split, few_shot, subset_classes, toy_recordset
    from clipexplore.methods.finetune import AnchorFT, retrieve_anchors, toy_captioner
    from clipexplore.toyclip import PRETRAIN_OBJECTS
    from clipexplore.toyworld import ToyWorld
    from conftest import TRAIN_DOMAINS
    world = ToyWorld(3000, seed=11, domains=TRAIN_DOMAINS, distractors=True)          # the `pool` fixture's world
    held_out = toy_recordset(ToyWorld(1600, seed=7, distractors=True))
    base, new = base_new_split(len(pool.classes))
    records = subset_classes(few_shot(pool, 16, seed=1), base)
    train, base_test = records.dataset(clip.preprocess), subset_classes(held_out, base).dataset(clip.preprocess)
    new_records = subset_classes(held_out, new)

    def accuracies(method):
        rows = {r["domain"]: r["accuracy"] for r in evaluate(method, base_test)}
        method.set_classes(new_records.classes)
        new_acc = evaluate(method, new_records.dataset(clip.preprocess)).where(domain="mean")[0]["accuracy"]
        method.set_classes(train.classes)
        return (rows["photo"] + rows["cartoon"] + rows["painting"]) / 3, rows["sketch"], new_acc

    captioner = toy_captioner(world)
    captions = [captioner(r.image) for r in records.records]
    assert all(c.split(" of ")[0] in ("a painting", "a photo", "a cartoon") for c in captions)
    corpus = ToyWorld(4000, seed=1000, n_objects=PRETRAIN_OBJECTS, captions=True)
    images, anchor_captions = retrieve_anchors(clip, corpus, train.classes, k=320)
    about_task = lambda captions: sum(any(c in t for c in train.classes) for t in captions) / len(captions)
    assert images.shape[0] == 320 and about_task(anchor_captions) > about_task([corpus[i]["caption"] for i in range(320)]) + 0.1
    recipe = dict(epochs=30, lr=5e-4, optimizer="adamw", weight_decay=0.1, progress=False)
    torch.manual_seed(0); plain = FineTuner(clip, train.classes); Trainer(plain, train, **recipe).fit()
    torch.manual_seed(0); anchored = AnchorFT(clip, train.classes, captions, images, anchor_captions)
    trainer = Trainer(anchored, train, **recipe).fit()
    fine, robust = accuracies(plain), accuracies(anchored)
    assert robust[0] >= fine[0] - 1 and robust[1] > fine[1] + 10 and robust[2] > fine[2] + 3
    assert trainer.history[-1]["captioned"] > 0 and trainer.history[-1]["retrieved"] > 0
