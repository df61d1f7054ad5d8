"DualCoOp: partial labels (half hidden) still lift multi-label mAP far above zero-shot; unknown labels carry no loss."
import pytest
import torch

from clipexplore.engine import Trainer
from clipexplore.methods.zeroshot import ZeroShotClassifier
from clipexplore.methods.dualcoop import DualCoOp, RegionDataset, asymmetric_loss, multilabel_scores
from clipexplore.tasks import ToyMultiLabel, hide_labels, mean_average_precision
from clipexplore.toyworld import ToyWorld


def test_dualcoop_learns_from_partial_labels(clip):
    train_scenes = ToyMultiLabel(ToyWorld(1000, seed=31, n_objects=(1, 2, 3), domains=("photo", "cartoon", "painting")))
    test = RegionDataset(clip, ToyMultiLabel(ToyWorld(800, seed=32, n_objects=(1, 2, 3))))
    zero_shot = mean_average_precision(test.features[:, 0] @ ZeroShotClassifier(clip, test.classes).class_features.T, test.targets)
    targets = hide_labels(train_scenes.targets, 0.5, seed=1)
    assert (targets == -1).float().mean() > 0.4
    torch.manual_seed(1)
    model = DualCoOp(clip, train_scenes.classes)
    Trainer(model, RegionDataset(clip, train_scenes, targets), epochs=10, lr=0.002, batch_size=32, progress=False).fit()
    learned = mean_average_precision(multilabel_scores(model, test), test.targets)
    assert learned > zero_shot + 15                                  # toy run (20 epochs): 67.3 vs 38.0
    model.set_classes(test.classes[::-1])                            # class-agnostic contexts name any classes
    assert multilabel_scores(model, test).shape == (800, 10)


def test_contexts_learnt_on_seen_classes_recognise_unseen_ones(clip):
    train = RegionDataset(clip, ToyMultiLabel(ToyWorld(1000, seed=31, n_objects=(1, 2, 3), domains=("photo", "cartoon", "painting"))))
    test = RegionDataset(clip, ToyMultiLabel(ToyWorld(800, seed=32, n_objects=(1, 2, 3))))
    seen, unseen = list(range(5)), list(range(5, 10))
    seen_only = train.with_classes(seen)
    assert seen_only.classes == train.classes[:5] and len(seen_only) < len(train) and (seen_only.targets == 1).any(1).all()
    torch.manual_seed(1)
    model = DualCoOp(clip, seen_only.classes)
    Trainer(model, seen_only, epochs=20, lr=0.002, batch_size=32, progress=False).fit()
    names = [test.classes[c] for c in unseen]
    model.set_classes(names)
    zero_shot = mean_average_precision(test.features[:, 0] @ ZeroShotClassifier(clip, names).class_features.T, test.targets[:, unseen])
    assert mean_average_precision(multilabel_scores(model, test), test.targets[:, unseen]) > zero_shot + 10   # toy: 55.9 vs 39.8


def test_asymmetric_loss_ignores_unknown_labels_and_easy_negatives():
    p = torch.tensor([[0.7, 0.02, 0.4]])
    assert asymmetric_loss(p, torch.tensor([[-1, -1, -1]])) == 0
    assert asymmetric_loss(p, torch.tensor([[-1, 0, -1]])) == 0      # below the 0.05 margin: no loss
    assert asymmetric_loss(p, torch.tensor([[-1, -1, 0]])) > 0
    with pytest.raises(ValueError, match="no positive"):
        RegionDataset(None, ToyMultiLabel(ToyWorld(4, seed=1)), torch.zeros(4, 10, dtype=torch.long))


def test_asymmetric_loss_focal_weights_carry_no_gradient():
    "Official AsymmetricLoss computes the focal weights under no_grad: d/dp of -(1-p)^g log p is -(1-p)^g / p."
    p = torch.tensor([0.6, 0.3], requires_grad=True)
    asymmetric_loss(p, torch.tensor([1, 0])).backward()
    positive = -(1 - 0.6) / 0.6                                        # focal weight (1 - p), held constant
    negative = (0.3 - 0.05) ** 2 / (1 - (0.3 - 0.05))                  # weight (p - clip)^2, held constant
    assert torch.allclose(p.grad, torch.tensor([positive, negative]), atol=1e-6)
