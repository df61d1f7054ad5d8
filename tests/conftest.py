import os

import pytest
import torch

torch.set_num_threads(min(2, os.cpu_count() or 1))


def pytest_sessionfinish(session, exitstatus):
    "An empty test selection is not a failure of the README's test command (pytest would exit 5)."
    if exitstatus == pytest.ExitCode.NO_TESTS_COLLECTED: session.exitstatus = pytest.ExitCode.OK


TRAIN_DOMAINS = ("photo", "cartoon", "painting")


@pytest.fixture(scope="session")
def clip():
    "The bundled toy CLIP on the CPU."
    from clipexplore.backbone import load_clip
    return load_clip(device="cpu")


@pytest.fixture(scope="session")
def pool():
    "A toy world of main objects among distractors, three training domains, as records."
    from clipexplore.data import toy_recordset
    from clipexplore.toyworld import ToyWorld
    return toy_recordset(ToyWorld(3000, seed=11, domains=TRAIN_DOMAINS, distractors=True))


@pytest.fixture(scope="session")
def train(clip, pool):
    "16 shots per class of `pool`, encoded once."
    from clipexplore.data import few_shot
    from clipexplore.engine import FeatureDataset
    return FeatureDataset.encode(clip, few_shot(pool, 16, seed=1).dataset(clip.preprocess))


@pytest.fixture(scope="session")
def test(clip):
    "A held-out world (seed 7) of main objects among distractors, all four domains, encoded once."
    from clipexplore.engine import FeatureDataset
    from clipexplore.toyworld import ToyWorld
    return FeatureDataset.encode(clip, ToyWorld(800, seed=7, distractors=True))


def base_class_accuracies(clip, pool, make, **trainer_kw):
    "Mean accuracy on held-out base-class images of `make(classnames)` trained on 16 shots of the 5 base classes, and of zero-shot CLIP."
    from clipexplore.data import few_shot, subset_classes, toy_recordset
    from clipexplore.engine import Trainer, evaluate
    from clipexplore.methods.zeroshot import ZeroShotClassifier
    from clipexplore.toyworld import ToyWorld
    base = list(range(5))
    train = subset_classes(few_shot(pool, 16, seed=1), base)
    test = subset_classes(toy_recordset(ToyWorld(600, seed=7, domains=TRAIN_DOMAINS, distractors=True)), base).dataset(clip.preprocess)
    torch.manual_seed(0)
    trainer = Trainer(make(train.classes), train.dataset(clip.preprocess), progress=False, **trainer_kw).fit()
    mean = lambda table: table.where(domain="mean")[0]["accuracy"]
    return mean(trainer.evaluate(test)), mean(evaluate(ZeroShotClassifier(clip, train.classes), test))
