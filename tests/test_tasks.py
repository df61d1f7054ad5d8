"The toy world's tasks, the union label space, multi-label targets, hidden labels and mAP."
import numpy as np
import pytest
import torch

from clipexplore.tasks import (TASK_CLASSES, ToyMultiLabel, ToyTask, check_multilabel_targets, hide_labels,
                               mean_average_precision, union_label_space)
from clipexplore.toyworld import ToyWorld


def test_tasks_share_images_and_union_slices_the_logits():
    world = ToyWorld(50, seed=2)
    tasks = {t: ToyTask(world, t) for t in TASK_CLASSES}
    assert all(torch.equal(tasks["object"][3]["image"], d[3]["image"]) for d in tasks.values())     # same images, other answers
    names, slices = union_label_space({t: d.classes for t, d in tasks.items()})
    logits = torch.arange(len(names)).float()
    assert [names[i] for i in range(len(names))[slices["texture"]]] == TASK_CLASSES["texture"]
    assert logits[slices["domain"]].tolist() == list(range(len(names) - 4, len(names)))
    with pytest.raises(ValueError, match="share class names"): union_label_space({"a": ["red", "blue"], "b": ["blue"]})


def test_multilabel_targets_hidden_labels_and_map():
    scenes = ToyMultiLabel(ToyWorld(60, seed=4, n_objects=(1, 2, 3)))
    counts = scenes.targets.sum(1)
    assert counts.min() >= 1 and counts.max() <= 3 and scenes[0]["target"].shape == (10,)
    assert mean_average_precision(scenes.targets.float(), scenes.targets) == pytest.approx(100.0)    # a perfect ranking
    scores = torch.tensor([[0.9, 0.1], [0.8, 0.7], [0.2, 0.6]])
    targets = torch.tensor([[1, 0], [0, 1], [1, 1]])
    from sklearn.metrics import average_precision_score
    expected = 100 * np.mean([average_precision_score(targets[:, c], scores[:, c]) for c in range(2)])
    assert mean_average_precision(scores, targets) == pytest.approx(expected)
    partial = hide_labels(scenes.targets, 0.7, seed=1)
    assert ((partial == 1).sum(1) >= 1).all() and ((partial == -1) <= (scenes.targets >= 0)).all()
    assert torch.equal(partial[partial >= 0], scenes.targets[partial >= 0])          # known entries are the truth
    with pytest.raises(ValueError, match="no positive label"): check_multilabel_targets([[0, 0, 0], [1, 0, 0]])
    with pytest.raises(ValueError, match="hold 1"): check_multilabel_targets([[2, 0]])
    with pytest.raises(ValueError, match="undefined"): mean_average_precision(torch.rand(2, 2), torch.zeros(2, 2))
