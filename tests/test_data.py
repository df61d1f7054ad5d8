"Loaders on generated trees in each real layout; few-shot sampling; bad input gives clear errors or counted skips."
import json
import warnings
from pathlib import Path

import numpy as np
import pytest
import torchvision
from PIL import Image

from clipexplore.data import (Record, RecordSet, base_new_split, coop_split_records, domainbed_records, few_shot,
                              image_folder_records, subset_classes, torchvision_records)

CLASSES = ["cat", "dog", "horse"]


def write_image(path, seed):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.random.default_rng(seed).integers(0, 255, (16, 16, 3), dtype=np.uint8)).save(path)
    return path


@pytest.fixture
def domainbed(tmp_path):
    for d, domain in enumerate(["art_painting", "photo", "sketch"]):
        for c, name in enumerate(CLASSES):
            for k in range(4): write_image(tmp_path / domain / name / f"{k}.jpg", 100 * d + 10 * c + k)
    return tmp_path


def test_domainbed_layout(domainbed):
    rs = domainbed_records(domainbed)
    assert rs.classes == CLASSES and rs.domains == ["art_painting", "photo", "sketch"] and len(rs) == 36
    item = rs.dataset()[5]
    assert item["image"].shape == (16, 16, 3) and rs.classes[item["label"]] == Path(rs[5].image).parent.name


def test_corrupted_and_truncated_files_are_counted_and_skipped(domainbed):
    (domainbed / "photo" / "dog" / "0.jpg").write_bytes(b"not an image")
    path = domainbed / "sketch" / "cat" / "1.jpg"; path.write_bytes(path.read_bytes()[:60])
    with pytest.warns(UserWarning, match="skipped 2 unreadable"): rs = domainbed_records(domainbed)
    assert len(rs) == 34
    for i in range(len(rs)): rs.dataset()[i]           # every remaining file decodes: no crash mid-epoch


def test_mismatched_classes_between_domains(domainbed):
    write_image(domainbed / "sketch" / "zebra" / "0.jpg", 1)
    with pytest.raises(ValueError, match="'sketch' has classes that differ"): domainbed_records(domainbed)


def test_class_with_no_images(domainbed):
    for p in (domainbed / "photo" / "horse").iterdir(): p.unlink()
    with pytest.raises(ValueError, match="no images in 1 class folders.*'photo', 'horse'"): domainbed_records(domainbed)


def test_unknown_domain(domainbed):
    with pytest.raises(ValueError, match="domains \\['cartoon'\\] not found"): domainbed_records(domainbed, ["photo", "cartoon"])
    with pytest.raises(ValueError, match="unknown domains"): domainbed_records(domainbed).filter_domains("cartoon")


def test_imagenet_variant_folder_keeps_the_full_label_space(tmp_path):
    wnids = {"n01": "goldfish", "n02": "tench", "n03": "shark"}
    for k, wnid in enumerate(["n01", "n03"]): write_image(tmp_path / "imagenet-r" / wnid / "a.png", k)
    rs = image_folder_records(tmp_path / "imagenet-r", classes=wnids)
    assert rs.classes == ["goldfish", "tench", "shark"] and sorted(rs.labels.tolist()) == [0, 2]


def coop_split(tmp_path, rename=None):
    items = {s: [[f"{c}/{s}{k}.jpg", i, c] for i, c in enumerate(CLASSES) for k in range(n)]
             for s, n in [("train", 5), ("val", 2), ("test", 3)]}
    for s in items:
        for k, (p, _, _) in enumerate(items[s]): write_image(tmp_path / "images" / p, 1000 * len(s) + k)
    if rename: items["test"][0][2] = rename
    (tmp_path / "split_zhou_Toy.json").write_text(json.dumps(items))
    return tmp_path / "images", tmp_path / "split_zhou_Toy.json"


def test_coop_split_file_and_no_test_leak_in_few_shot(tmp_path):
    splits = coop_split_records(*coop_split(tmp_path))
    assert [len(splits[s]) for s in ("train", "val", "test")] == [15, 6, 9] and splits["test"].classes == CLASSES
    test_images = {r.image for r in splits["test"]}
    for seed in (1, 2, 3):
        shots = few_shot(splits["train"], 4, seed=seed)
        assert len(shots) == 12 and not {r.image for r in shots} & test_images
        assert {r.image for r in shots} <= {r.image for r in splits["train"]}


def test_mismatched_class_names_between_splits(tmp_path):
    with pytest.raises(ValueError, match="class names must match between splits"):
        coop_split_records(*coop_split(tmp_path, rename="kitten"))


def test_shots_larger_than_a_class_has(tmp_path):
    splits = coop_split_records(*coop_split(tmp_path))
    with pytest.raises(ValueError, match="shots=6 but class 'cat' has 5 images"): few_shot(splits["train"], 6)


def test_torchvision_datasets_become_records(tmp_path):
    root = tmp_path / "dtd" / "dtd"
    lines = []
    for c, name in enumerate(["banded", "bubbly"]):
        for k in range(3):
            write_image(root / "images" / name / f"{name}_{k}.jpg", 10 * c + k); lines.append(f"{name}/{name}_{k}.jpg")
    (root / "labels").mkdir()
    (root / "labels" / "train1.txt").write_text("\n".join(lines))
    rs = torchvision_records(torchvision.datasets.DTD(tmp_path, split="train"))
    assert rs.classes == ["banded", "bubbly"] and len(rs) == 6 and rs.domains == ["DTD"]
    for c, name in enumerate(["AnnualCrop", "Forest"]): write_image(tmp_path / "eurosat" / "2750" / name / "x.jpg", c)
    eurosat = torchvision_records(torchvision.datasets.EuroSAT(tmp_path))
    assert eurosat.classes == ["AnnualCrop", "Forest"] and eurosat.labels.tolist() == [0, 1]


def test_base_to_new_split_follows_cocoop():
    assert base_new_split(5) == ([0, 1, 2], [3, 4]) and base_new_split(4) == ([0, 1], [2, 3])
    rs = RecordSet([Record(np.zeros((2, 2, 3), np.uint8), l) for l in [0, 1, 2, 3, 4, 4]], list("abcde"))
    new = subset_classes(rs, [3, 4])
    assert new.classes == ["d", "e"] and new.labels.tolist() == [0, 1, 1]


def test_class_names_from_folders_and_split_files_are_words(tmp_path):
    "Underscores become spaces, as the official CoOp-family trainers tokenise class names (`name.replace('_', ' ')`)."
    for d in ("art", "real_world"):
        for c, name in enumerate(["Alarm_Clock", "sea_turtle"]): write_image(tmp_path / "officehome" / d / name / "0.jpg", c)
    rs = domainbed_records(tmp_path / "officehome")
    assert rs.classes == ["Alarm Clock", "sea turtle"] and rs.domains == ["art", "real_world"]       # domains stay names
    assert Path(rs[0].image).parent.name == "Alarm_Clock"                                           # files still found
    for name in ("golden_retriever", "red_fox"): write_image(tmp_path / "variant" / name / "0.jpg", 0)
    assert image_folder_records(tmp_path / "variant").classes == ["golden retriever", "red fox"]
    assert image_folder_records(tmp_path / "variant", classes={"golden_retriever": "golden_retriever", "red_fox": "fox"}).classes \
        == ["golden_retriever", "fox"]                                                            # a given map is kept
    items = {s: [[f"american_bulldog/{s}.jpg", 0, "american_bulldog"], [f"great_pyrenees/{s}.jpg", 1, "great_pyrenees"]]
             for s in ("train", "val", "test")}
    for s in items:
        for p, _, _ in items[s]: write_image(tmp_path / "pets" / p, 1)
    (tmp_path / "split_zhou_OxfordPets.json").write_text(json.dumps(items))
    splits = coop_split_records(tmp_path / "pets", tmp_path / "split_zhou_OxfordPets.json")
    assert splits["train"].classes == ["american bulldog", "great pyrenees"] == splits["test"].classes
