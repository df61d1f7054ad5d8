"TaI-DPT: prompts trained on captions alone lift multi-label mAP on images above zero-shot; bad corpora are refused."
import pytest
import torch

from clipexplore.engine import Trainer
from clipexplore.methods.dualcoop import RegionDataset, multilabel_scores
from clipexplore.methods.taidpt import CaptionDataset, TaIDPT, caption_labels, ranking_loss
from clipexplore.methods.zeroshot import ZeroShotClassifier
from clipexplore.tasks import ToyMultiLabel, mean_average_precision
from clipexplore.toyworld import ToyWorld


def test_prompts_learnt_from_captions_recognise_objects_in_images(clip):
    world = ToyWorld(4000, seed=41, n_objects=(1, 2, 3), captions=True, transform=None)
    texts = CaptionDataset(clip, [world[i]["caption"] for i in range(len(world))], world.classes)
    test = RegionDataset(clip, ToyMultiLabel(ToyWorld(800, seed=32, n_objects=(1, 2, 3))))
    zero_shot = mean_average_precision(test.features[:, 0] @ ZeroShotClassifier(clip, test.classes).class_features.T, test.targets)
    torch.manual_seed(1)
    model = TaIDPT(clip, texts.classes)
    Trainer(model, texts, epochs=20, lr=0.002, batch_size=64, progress=False).fit()
    tai = multilabel_scores(model, test)
    assert mean_average_precision(tai, test.targets) > zero_shot + 15               # toy run: 62.4 vs 38.0
    held_world = ToyWorld(500, seed=77, n_objects=(1, 2, 3), captions=True, transform=None)
    held = CaptionDataset(clip, [held_world[i]["caption"] for i in range(len(held_world))], held_world.classes)
    pooled, tokens, valid = model.caption_features(held.tokens)
    with torch.no_grad(): g, l = model.double_logits(pooled, tokens, model.text_temperature, valid)
    grains = [mean_average_precision(s, held.targets) for s in (g, l, g + l)]
    assert grains[2] > max(grains[:2]), grains                                       # double-grained beats either grain on captions: 98.8 vs 95.1 / 97.3

    from clipexplore.methods.dualcoop import DualCoOp
    from clipexplore.tasks import hide_labels
    scenes = ToyMultiLabel(ToyWorld(1000, seed=31, n_objects=(1, 2, 3), domains=("photo", "cartoon", "painting")))
    torch.manual_seed(1)
    dual = DualCoOp(clip, scenes.classes)
    Trainer(dual, RegionDataset(clip, scenes, hide_labels(scenes.targets, 0.5, seed=1)), epochs=20, lr=0.002, batch_size=32, progress=False).fit()
    image_trained = multilabel_scores(dual, test)
    z = lambda s: (s - s.mean(0)) / s.std(0)
    assert mean_average_precision(z(image_trained) + z(tai), test.targets) > mean_average_precision(image_trained, test.targets)   # 69.5 vs 67.3


def test_caption_corpora_without_class_names_are_refused(clip):
    with pytest.raises(ValueError, match="empty"): CaptionDataset(clip, [], ["star"])
    with pytest.raises(ValueError, match="no caption mentions"): CaptionDataset(clip, ["a red square"], ["star", "ring"])
    assert caption_labels(["two stars and a ring"], ["star", "ring", "heart"]).tolist() == [[1, 1, 0]]
    assert ranking_loss(torch.tensor([[2.0, 0.5]]), torch.tensor([[1, 0]])) == 0


def test_caption_tokens_mask_only_padding(clip):
    "Official TaI-DPT masks padding only (`captions == 0`): the start token and EOT are local regions too."
    model = TaIDPT(clip, ["star", "ring"])
    pooled, tokens, valid = model.caption_features(clip.tokenize(["a star", "two rings and a star"]))
    assert valid[:, 0].all() and valid.sum(1).tolist() == [4, 7]                     # SOS a star EOT / SOS two rings and a star EOT
