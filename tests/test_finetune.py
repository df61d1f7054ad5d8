"Fine-tuning hurts the unseen domain and new classes; WiSE-FT, CAR-FT and anchor-based fine-tuning keep them near zero-shot."
from types import SimpleNamespace

import pytest
import torch

from clipexplore.engine import Trainer, evaluate, load_learned
from clipexplore.methods.finetune import AnchorFT, CARFT, FineTuner, merge_states, retrieve_anchors, toy_captioner, wise_ft
from clipexplore.protocols import new_class_accuracy

RECIPE = dict(recipe="toy", progress=False)        # AdamW lr 5e-4, weight decay 0.1, batch 32, 30 epochs (FineTuner.recipes)


TINY_RN = dict(embed_dim=32, vision_cfg=dict(layers=(1, 1, 1, 1), width=16, image_size=32, head_width=16),   # RN50's shape, small
               text_cfg=dict(context_length=77, vocab_size=49408, width=32, heads=2, layers=1))


def tiny_resnet_clip(seed=0):
    "A randomly initialised open_clip CLIP with a small ModifiedResNet image tower (BatchNorm everywhere), as `CLIP`."
    import open_clip
    from clipexplore.backbone import CLIP
    torch.manual_seed(seed)
    model = open_clip.model.CLIP(**TINY_RN)                     # what open_clip.create_model builds from a config like RN50.json
    return CLIP(model.eval(), open_clip.tokenizer.SimpleTokenizer(context_length=77), open_clip.image_transform(32, is_train=False), name="tiny-rn")


def random_images(n=16, classes=3, seed=0):
    "`n` random 32-pixel images (mean 1, std 2: far from BatchNorm's initial statistics) labelled round-robin."
    g = torch.Generator().manual_seed(seed)
    return [dict(image=torch.randn(3, 32, 32, generator=g) * 2 + 1, label=i % classes, domain=0, index=i) for i in range(n)]


def fit_and_restore(make, data, checkpoint_dir, optimizer="adamw", **trainer_kw):
    "Train `make()` briefly with checkpoints, then `load_learned` the checkpoint into a fresh `make()`: (trained, restored), both in eval mode."
    torch.manual_seed(0)
    trained = make()
    Trainer(trained, data, epochs=2, batch_size=8, lr=1e-3, optimizer=optimizer, checkpoint_dir=checkpoint_dir, progress=False, **trainer_kw).fit()
    torch.manual_seed(1)                                         # the fresh instance starts elsewhere (its own random parts)
    return trained.eval(), load_learned(make(), checkpoint_dir).eval()


def assert_same_logits(a, b, batch):
    "Bit-identical logits of two methods on `batch`."
    with torch.no_grad(): x, y = a.logits(batch), b.logits(batch)
    assert torch.equal(x, y), f"restored logits differ by up to {float((x - y).abs().max()):.3g}"


def test_wise_ft_mixes_batchnorm_statistics_and_alpha_one_is_the_fine_tuned_model(tmp_path):
    clip, names = tiny_resnet_clip(), ["cat", "dog", "bird"]
    g = torch.Generator().manual_seed(0)
    data = [dict(image=torch.randn(3, 32, 32, generator=g) * 2 + 1, label=i % 3, domain=0, index=i) for i in range(16)]
    torch.manual_seed(0)
    tuned = FineTuner(clip, names)
    Trainer(tuned, data, epochs=2, batch_size=8, lr=1e-3, optimizer="adamw", checkpoint_dir=tmp_path, progress=False).fit()
    zero = FineTuner(clip, names).visual.state_dict()
    assert (tuned.visual.state_dict()["bn1.running_mean"] - zero["bn1.running_mean"]).abs().max() > 1e-3   # training moved the statistics
    batch = {"image": torch.stack([d["image"] for d in data[:4]])}
    with torch.no_grad():
        torch.testing.assert_close(wise_ft(tuned, 1.0).logits(batch), tuned.logits(batch), rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(wise_ft(tuned, 0.0).logits(batch), FineTuner(clip, names).eval().logits(batch), rtol=1e-5, atol=1e-5)
    half, expected = wise_ft(tuned, 0.5).visual.state_dict(), merge_states(zero, tuned.visual.state_dict(), 0.5)
    assert all(torch.equal(half[k], expected[k]) for k in expected)                  # every entry, buffers included
    restored = load_learned(FineTuner(clip, names), tmp_path)                        # the checkpoint keeps the statistics too
    with torch.no_grad(): torch.testing.assert_close(restored.eval().logits(batch), tuned.logits(batch), rtol=1e-5, atol=1e-5)


def test_fine_tuners_recipes_name_their_sources():
    official = FineTuner.recipes["official"]
    assert (official.epochs, official.batch_size, official.lr, official.weight_decay) == (10, 512, 3e-5, 0.1)
    assert official.source.startswith("mlfoundations/wise-ft:")
    for cls in (CARFT, AnchorFT):                                                     # no official code: the paper is the source
        assert cls.recipes["official"].source.startswith("paper:") and "no official code" in cls.recipes["official"].source
        assert cls.recipes["toy"].trainer_settings() == FineTuner.recipes["toy"].trainer_settings()


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
    # in-domain within 2 points of plain fine-tuning (one standard error on ~600 held-out images; measured 60.7 vs 62.4)
    assert robust[0] >= fine[0] - 2 and robust[1] > fine[1] + 10 and robust[2] > fine[2] + 3
    assert trainer.history[-1]["captioned"] > 0 and trainer.history[-1]["retrieved"] > 0


TINY_MAKERS = {
    "FineTuner": lambda clip, names, data: FineTuner(clip, names),
    "CARFT": lambda clip, names, data: CARFT(clip, names, contexts=("a photo of a {}.", "a sketch of a {}.")),
    "AnchorFT": lambda clip, names, data: AnchorFT(clip, names, [f"a photo of a {names[d['label']]}" for d in data],
                                                   torch.stack([d["image"] for d in data[:4]]), ["a cat", "a dog", "a bird", "a cat"]),
}


@pytest.mark.parametrize("name", sorted(TINY_MAKERS))
def test_a_checkpoint_restores_a_batchnorm_tower_exactly_and_holds_only_what_changed(name, tmp_path):
    "On an RN50-shaped tower the running statistics are learned state: `load_learned` gives the same logits, bit for bit."
    from clipexplore.engine import read_checkpoint
    clip, names, data = tiny_resnet_clip(), ["cat", "dog", "bird"], random_images()
    trained, restored = fit_and_restore(lambda: TINY_MAKERS[name](clip, names, data), data, tmp_path)
    zero = FineTuner(clip, names).visual.state_dict()
    assert (trained.visual.state_dict()["bn1.running_var"] - zero["bn1.running_var"]).abs().max() > 1e-3    # the statistics moved
    assert_same_logits(trained, restored, {"image": torch.stack([d["image"] for d in data[:8]])})
    tensors, _ = read_checkpoint(tmp_path)
    held = {k[len("method."):] for k in tensors if k.startswith("method.")}
    assert held == {"head"} | {f"visual.{k}" for k in zero}       # the tower once, with its buffers; no frozen CLIP, text tower or reference
    moments = {k.split(".")[1] for k in tensors if k.startswith("optim.")}
    assert len(moments) == sum(p.requires_grad for p in trained.parameters())       # AdamW's moments, of the learned parameters only


def test_wise_ft_of_a_batchnorm_tower_round_trips_through_its_own_checkpoint(tmp_path):
    "The mixed FineTuner that `wise_ft` builds saves and restores its mixed statistics (integer counters truncated, as loading does)."
    clip, names, data = tiny_resnet_clip(), ["cat", "dog", "bird"], random_images()
    tuned, restored = fit_and_restore(lambda: FineTuner(clip, names), data, tmp_path / "tuned")
    batch = {"image": torch.stack([d["image"] for d in data[:8]])}
    assert_same_logits(wise_ft(tuned, 0.5), wise_ft(restored, 0.5), batch)        # mixing a restored model = mixing the original
    mixed = wise_ft(tuned, 0.5)
    assert mixed.visual.bn1.num_batches_tracked.dtype == torch.long and int(mixed.visual.bn1.num_batches_tracked) == 2   # 4 steps, halved
    Trainer(mixed, data, epochs=1, batch_size=8, progress=False).save(tmp_path / "mixed")          # the mixed model's own checkpoint
    assert_same_logits(mixed, load_learned(FineTuner(clip, names), tmp_path / "mixed").eval(), batch)
