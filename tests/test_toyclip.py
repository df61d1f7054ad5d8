"The bundled toy CLIP is a usable CLIP: the quality bar, measured on a world seed training never saw."
import json

import pytest
import torch

from clipexplore.backbone import CLIP, build_toy_clip, load_clip, toy_weights_path
from clipexplore.metrics import encode_dataset
from clipexplore.methods.zeroshot import attribute_table, zero_shot_table
from clipexplore.toyclip import history_path
from clipexplore.toyworld import ToyWorld

HELD_OUT_SEED = 7   # pretraining draws from seed 1000 (tests/test_toyworld.py checks they share no image)


@pytest.fixture(scope="module")
def world(): return ToyWorld(800, seed=HELD_OUT_SEED)


@pytest.fixture(scope="module")
def objects(clip, world): return zero_shot_table(clip, world, templates=["a photo of a {}"])


def test_weights_ship_small_and_in_safetensors():
    path = toy_weights_path()
    assert path.suffix == ".safetensors" and path.stat().st_size <= 20 * 2**20
    record = json.loads(history_path(path).read_text())
    assert record["history"][-1]["loss"] < record["history"][0]["loss"] / 2


def test_object_zero_shot_accuracy_bar(objects):
    per_domain = [r["accuracy"] for r in objects if r["domain"] != "mean"]
    assert len(per_domain) == 4
    assert sum(per_domain) / 4 >= 70, objects
    assert min(per_domain) < 95, objects       # room left for prompt learning


def test_colour_zero_shot_accuracy_bar(clip, world):
    colours = attribute_table(clip, world, "colour")
    assert colours.where(domain="mean")[0]["accuracy"] >= 85, colours


def test_random_model_is_near_chance(world, objects):
    torch.manual_seed(0)
    clip = load_clip(device="cpu")
    random = CLIP(build_toy_clip().eval(), clip.tokenizer, clip.preprocess, name="random toy")
    table = zero_shot_table(random, world, templates=["a photo of a {}"])
    chance_like = table.where(domain="mean")[0]["accuracy"]
    assert chance_like < 25, table
    assert objects.where(domain="mean")[0]["accuracy"] - chance_like > 40
