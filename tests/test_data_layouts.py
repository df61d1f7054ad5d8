"Real dataset layouts the loaders must read: nested class folders, EXIF orientation, 16-bit PNGs, JPEG suffixes, symlinks, torchvision's file indices, ImageNet's class names and variants, cheap and full checks."
import json
import os
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision
from PIL import Image, ImageFile

from clipexplore.data import (IMAGE_SUFFIXES, Record, RecordSet, check_images, domainbed_records, image_folder_records,
                              imagenet_classnames, index_classes, load_image, torchvision_records)

torch.set_num_threads(1)


def write_image(path, seed=0, size=(16, 12), **save_kw):
    "A random RGB image of `size` (width, height) at `path`, folders made."
    path = Path(path); path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.random.default_rng(seed).integers(0, 255, size[::-1] + (3,), dtype=np.uint8)).save(path, **save_kw)
    return path


def write_photo(path, size=(200, 150)):
    "A smooth JPEG big enough that cutting it in half leaves the header whole."
    w, h = size
    path = Path(path); path.parent.mkdir(parents=True, exist_ok=True)
    pixels = (np.linspace(0, 255, w)[None, :, None] * np.ones((h, 1, 3))).astype(np.uint8)
    Image.fromarray(pixels).save(path, quality=90)
    return path


NESTED = ["cat/0.jpg", "cat/1.jpg", "cat/2.jpg", "dog/0.jpg", "dog/1.jpg", "dog/2.jpg",
          "cat/2019/a.jpg", "cat/2019/b.png", "cat/2020/deep/c.jpg", "dog/extra/d.jpg", "dog/extra/z/e.png"]


def write_nested(root):
    for k, p in enumerate(NESTED): write_image(root / p, seed=k)
    return root


def pairs(rs): return [(str(r.image), r.label) for r in rs]


# --- 1. nested sub-folders --------------------------------------------------------------------------------------

def test_image_folder_finds_nested_images_as_torchvision_does(tmp_path):
    root = write_nested(tmp_path / "pets")
    rs = image_folder_records(root)
    assert len(rs) == 11 and rs.classes == ["cat", "dog"]
    assert sorted(pairs(rs)) == sorted(torchvision.datasets.ImageFolder(root).samples)
    paths = [r.image for r in rs]
    assert paths == sorted(paths, key=lambda p: Path(p).parts)                        # sorted by path, deterministic
    assert pairs(image_folder_records(root)) == pairs(rs)


def test_domainbed_finds_nested_images(tmp_path):
    for domain in ("photo", "sketch"): write_nested(tmp_path / "pacs" / domain)
    rs = domainbed_records(tmp_path / "pacs")
    assert len(rs) == 22 and rs.domains == ["photo", "sketch"]
    for domain in rs.domains:
        found = sorted((p, l) for p, l in pairs(rs) if Path(p).is_relative_to(tmp_path / "pacs" / domain))
        assert found == sorted(torchvision.datasets.ImageFolder(tmp_path / "pacs" / domain).samples)


def test_a_class_folder_with_images_only_in_subfolders_is_not_empty(tmp_path):
    for domain in ("a", "b"):
        write_image(tmp_path / domain / "cat" / "0.jpg"); write_image(tmp_path / domain / "dog" / "2020" / "0.jpg")
    assert domainbed_records(tmp_path).labels.tolist() == [0, 1, 0, 1]


def test_hidden_files_and_folders_are_skipped(tmp_path):
    root = write_nested(tmp_path / "pets")
    write_image(root / "cat" / "._0.jpg"); write_image(root / "cat" / ".thumbs" / "x.jpg")
    write_image(root / ".ipynb_checkpoints" / "x.jpg"); (root / "dog" / ".DS_Store").write_bytes(b"\0")
    rs = image_folder_records(root)
    assert len(rs) == 11 and rs.classes == ["cat", "dog"]
    assert not [r for r in rs if "/." in str(r.image)]


def test_a_symlink_loop_is_walked_once(tmp_path):
    root = write_nested(tmp_path / "pets")
    (root / "cat" / "2019" / "loop").symlink_to(root / "cat", target_is_directory=True)
    assert len(image_folder_records(root)) == 11


# --- 2. EXIF orientation -----------------------------------------------------------------------------------------

def two_colour_jpeg(path, orientation):
    "A 40x30 JPEG, left half red and right half blue, tagged with an EXIF `orientation`."
    pixels = np.zeros((30, 40, 3), np.uint8); pixels[:, :20, 0] = 255; pixels[:, 20:, 2] = 255
    exif = Image.Exif(); exif[0x0112] = orientation
    Image.fromarray(pixels).save(path, exif=exif, quality=95)
    return path


@pytest.mark.parametrize("orientation,red", [(6, "top"), (8, "bottom")])
def test_exif_orientation_is_applied(tmp_path, orientation, red):
    path = two_colour_jpeg(tmp_path / "x.jpg", orientation)
    assert Image.open(path).size == (40, 30)
    im = np.asarray(load_image(path)).astype(int)
    assert im.shape == (40, 30, 3)                                                      # transposed: 30 wide, 40 high
    top, bottom = im[:15].mean((0, 1)), im[25:].mean((0, 1))
    reddest = "top" if top[0] > bottom[0] else "bottom"
    assert reddest == red and max(top[0], bottom[0]) > 200


def test_exif_orientation_reaches_the_dataset(tmp_path):
    path = two_colour_jpeg(tmp_path / "x.jpg", 6)
    assert RecordSet([Record(str(path), 0)], ["x"]).dataset()[0]["image"].shape == (40, 30, 3)


def test_images_without_exif_are_unchanged(tmp_path):
    path = write_image(tmp_path / "x.png", size=(20, 10))
    assert np.array_equal(np.asarray(load_image(path)), np.asarray(Image.open(path)))


# --- 3. 16-bit grayscale -----------------------------------------------------------------------------------------

def gradient16(): return np.tile(np.linspace(0, 65535, 64).astype(np.uint16), (4, 1))


@pytest.mark.parametrize("suffix", [".png", ".tif"])
def test_16_bit_grayscale_loads_as_a_gradient(tmp_path, suffix):
    path = tmp_path / f"x{suffix}"; Image.fromarray(gradient16()).save(path)
    assert Image.open(path).mode.startswith("I;16")
    im = np.asarray(load_image(path))
    assert im.shape == (4, 64, 3) and (im[..., 0] == im[..., 2]).all()
    row = im[0, :, 0].astype(int)
    assert row[0] == 0 and row[-1] == 255 and (np.diff(row) >= 0).all() and len(set(row)) > 50
    assert np.array_equal(row, gradient16()[0] >> 8)


def test_32_bit_integer_mode_is_read_as_16_bit(tmp_path):
    path = tmp_path / "x.tif"; Image.fromarray(gradient16().astype(np.int32)).save(path)
    assert Image.open(path).mode == "I"
    row = np.asarray(load_image(path))[0, :, 0].astype(int)
    assert row[0] == 0 and row[-1] == 255 and len(set(row)) > 50


def test_8_bit_images_are_unchanged(tmp_path):
    gray = np.tile(np.arange(0, 256, 4, dtype=np.uint8), (3, 1))
    Image.fromarray(gray).save(tmp_path / "g.png")
    assert np.array_equal(np.asarray(load_image(tmp_path / "g.png"))[..., 1], gray)


# --- 4. suffixes and symlinks ------------------------------------------------------------------------------------

def test_jpeg_suffix_spellings_are_images(tmp_path):
    assert {".jfif", ".jpe", ".pjpeg"} <= set(IMAGE_SUFFIXES)
    for k, name in enumerate(["a.jpg", "b.jfif", "c.JPE", "d.pjpeg", "e.JPEG"]):
        write_image(tmp_path / "v" / "cat" / name, seed=k, format="JPEG")
    rs = image_folder_records(tmp_path / "v")
    assert sorted(Path(r.image).name for r in rs) == ["a.jpg", "b.jfif", "c.JPE", "d.pjpeg", "e.JPEG"]
    assert all(rs.dataset()[i]["image"].shape == (12, 16, 3) for i in range(len(rs)))


def test_broken_symlinks_are_counted_and_good_ones_kept(tmp_path):
    root = write_nested(tmp_path / "pets")
    (root / "cat" / "gone.jpg").symlink_to(tmp_path / "missing.jpg")
    (root / "dog" / "extra" / "gone2.png").symlink_to(tmp_path / "missing.png")
    (root / "dog" / "linked.jpg").symlink_to(root / "cat" / "0.jpg")
    (tmp_path / "elsewhere").mkdir(); write_image(tmp_path / "elsewhere" / "far.jpg", seed=99)
    (root / "dog" / "far").symlink_to(tmp_path / "elsewhere", target_is_directory=True)
    with pytest.warns(UserWarning, match=r"skipped 2 broken symlinks.*gone\.jpg.*gone2\.png"):
        rs = image_folder_records(root)
    names = [Path(r.image).name for r in rs]
    assert len(rs) == 13 and "linked.jpg" in names and "far.jpg" in names and "gone.jpg" not in names
    for i in range(len(rs)): rs.dataset()[i]


def test_broken_symlinks_in_domainbed_give_one_warning(tmp_path):
    for domain in ("a", "b"):
        write_nested(tmp_path / domain); (tmp_path / domain / "cat" / "gone.jpg").symlink_to(tmp_path / "missing.jpg")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        rs = domainbed_records(tmp_path)
    assert len(rs) == 22 and [str(w.message)[:25] for w in caught] == ["skipped 2 broken symlinks"]


# --- 5, 6. torchvision datasets ----------------------------------------------------------------------------------

def agrees(ds, rs):
    "Each record is the dataset's own item: same label, same pixels."
    assert len(rs) == len(ds) > 0
    for i in range(len(ds)):
        image, label = ds[i]
        assert rs[i].label == label and Path(rs[i].image).is_file()
        assert np.array_equal(np.asarray(image.convert("RGB")), np.asarray(load_image(rs[i].image)))


def test_oxford_pets(tmp_path):
    base = tmp_path / "oxford-iiit-pet"; (base / "annotations").mkdir(parents=True)
    ids = [("Abyssinian_1", 1, 1), ("american_bulldog_3", 2, 2), ("Abyssinian_2", 1, 1), ("yorkshire_terrier_9", 3, 2)]
    for k, (i, _, _) in enumerate(ids): write_image(base / "images" / f"{i}.jpg", seed=k)
    (base / "annotations" / "trainval.txt").write_text("".join(f"{i} {c} {b} 1\n" for i, c, b in ids))
    ds = torchvision.datasets.OxfordIIITPet(tmp_path)
    rs = torchvision_records(ds)
    assert rs.classes == ["Abyssinian", "American Bulldog", "Yorkshire Terrier"] and rs.domains == ["OxfordIIITPet"]
    agrees(ds, rs)


def test_imagenet_gives_the_first_synonym(tmp_path):
    synonyms = {"n01440764": ("tench", "Tinca tinca"), "n01443537": ("goldfish", "Carassius auratus"),
                "n02085620": ("Chihuahua",), "n04037443": ("racer", "race car", "racing car")}
    torch.save((synonyms, []), tmp_path / "meta.bin")
    for k, wnid in enumerate(synonyms):
        for j in range(2): write_image(tmp_path / "train" / wnid / f"{wnid}_{j}.JPEG", seed=10 * k + j)
    ds = torchvision.datasets.ImageNet(tmp_path, split="train")
    assert isinstance(ds.classes[0], tuple)
    rs = torchvision_records(ds)
    assert rs.classes == ["tench", "goldfish", "Chihuahua", "racer"]
    agrees(ds, rs)


def test_imagenette_tuples(tmp_path):
    for k, wnid in enumerate(["n01440764", "n02102040"]): write_image(tmp_path / "imagenette2-160" / "train" / wnid / "a.JPEG", seed=k)
    ds = torchvision.datasets.Imagenette(tmp_path, size="160px")
    rs = torchvision_records(ds)
    assert rs.classes == ["tench", "English springer"]
    agrees(ds, rs)


def test_food101(tmp_path):
    base = tmp_path / "food-101"; (base / "meta").mkdir(parents=True)
    meta = {"apple_pie": ["apple_pie/1", "apple_pie/2"], "baby_back_ribs": ["baby_back_ribs/7"]}
    for k, p in enumerate(sum(meta.values(), [])): write_image(base / "images" / f"{p}.jpg", seed=k)
    (base / "meta" / "train.json").write_text(json.dumps(meta))
    ds = torchvision.datasets.Food101(tmp_path)
    rs = torchvision_records(ds)
    assert rs.classes == ["apple pie", "baby back ribs"]
    agrees(ds, rs)


def test_fgvc_aircraft(tmp_path):
    data = tmp_path / "fgvc-aircraft-2013b" / "data"; data.mkdir(parents=True)
    (data / "variants.txt").write_text("707-320\nA300B4\nBoeing 717\n")
    lines = ["0001 A300B4", "0002 Boeing 717", "0003 707-320"]
    for k, line in enumerate(lines): write_image(data / "images" / f"{line.split()[0]}.jpg", seed=k)
    (data / "images_variant_trainval.txt").write_text("\n".join(lines) + "\n")
    ds = torchvision.datasets.FGVCAircraft(tmp_path)
    rs = torchvision_records(ds)
    assert rs.classes == ["707-320", "A300B4", "Boeing 717"] and rs.labels.tolist() == [1, 2, 0]
    agrees(ds, rs)


def test_sun397(tmp_path):
    base = tmp_path / "SUN397"; base.mkdir()
    (base / "ClassName.txt").write_text("/a/abbey\n/a/apartment_building/outdoor\n")
    for k, p in enumerate(["a/abbey/sun_a.jpg", "a/apartment_building/outdoor/sun_b.jpg", "a/abbey/sun_c.jpg"]):
        write_image(base / p, seed=k)
    ds = torchvision.datasets.SUN397(tmp_path)
    rs = torchvision_records(ds)
    assert rs.classes == ["abbey", "apartment building/outdoor"]
    agrees(ds, rs)


def test_stanford_cars(tmp_path):
    from scipy.io import savemat
    base = tmp_path / "stanford_cars"; (base / "devkit").mkdir(parents=True)
    annos = np.array([("00001.jpg", 2), ("00002.jpg", 1), ("00003.jpg", 2)], dtype=[("fname", object), ("class", object)])
    savemat(base / "devkit" / "cars_train_annos.mat", {"annotations": annos})
    savemat(base / "devkit" / "cars_meta.mat", {"class_names": np.array(["AM General Hummer SUV 2000", "Acura RL Sedan 2012"], dtype=object)})
    for k, (name, _) in enumerate(annos): write_image(base / "cars_train" / name, seed=k)
    ds = torchvision.datasets.StanfordCars(tmp_path)
    rs = torchvision_records(ds)
    assert rs.classes == ["AM General Hummer SUV 2000", "Acura RL Sedan 2012"] and rs.labels.tolist() == [1, 0, 1]
    agrees(ds, rs)


class LocalFlowers102(torchvision.datasets.Flowers102):
    "Flowers102 on generated .mat files (the real ones are checked by md5)."
    def _check_integrity(self): return self._images_folder.is_dir()


def test_flowers102(tmp_path):
    from scipy.io import savemat
    base = tmp_path / "flowers-102"; (base / "jpg").mkdir(parents=True)
    savemat(base / "imagelabels.mat", {"labels": np.array([1, 2, 1, 3])})
    savemat(base / "setid.mat", {"trnid": np.array([1, 2, 4]), "valid": np.array([3]), "tstid": np.array([3])})
    for i in range(1, 5): write_image(base / "jpg" / f"image_{i:05d}.jpg", seed=i)
    ds = LocalFlowers102(tmp_path)
    rs = torchvision_records(ds)
    assert rs.classes[:3] == ["pink primrose", "hard-leaved pocket orchid", "canterbury bells"] and len(rs.classes) == 102
    assert rs.labels.tolist() == [0, 1, 2]
    agrees(ds, rs)


def test_caltech101_and_256(tmp_path):
    cats = tmp_path / "caltech101" / "101_ObjectCategories"
    (cats / "BACKGROUND_Google").mkdir(parents=True)
    for k, (c, n) in enumerate([("Faces_easy", 2), ("accordion", 1)]):
        for i in range(1, n + 1): write_image(cats / c / f"image_{i:04d}.jpg", seed=10 * k + i)
    ds = torchvision.datasets.Caltech101(tmp_path)
    rs = torchvision_records(ds)
    assert rs.classes == ["Faces easy", "accordion"] and rs.labels.tolist() == [0, 0, 1]
    agrees(ds, rs)
    cats = tmp_path / "caltech256" / "256_ObjectCategories"
    for k, (c, n) in enumerate([("001.ak47", 1), ("002.american-flag", 2)]):
        for i in range(1, n + 1): write_image(cats / c / f"{k + 1:03d}_{i:04d}.jpg", seed=10 * k + i)
    ds = torchvision.datasets.Caltech256(tmp_path)
    rs = torchvision_records(ds)
    assert rs.labels.tolist() == [0, 1, 1] and len(rs.classes) == 2
    agrees(ds, rs)


def test_country211_is_an_image_folder(tmp_path):
    for k, c in enumerate(["AD", "AE"]): write_image(tmp_path / "country211" / "train" / c / "x.jpg", seed=k)
    ds = torchvision.datasets.Country211(tmp_path)
    agrees(ds, torchvision_records(ds))


class FakePlaces:
    "Places365's index: `imgs` (path, label) and `classes` (its __init__ reads md5-checked lists)."
    def __init__(self, imgs, classes): self.imgs, self.classes = imgs, classes


def test_places365_style_imgs(tmp_path):
    paths = [str(write_image(tmp_path / f"{k}.jpg", seed=k)) for k in range(3)]
    rs = torchvision_records(FakePlaces(list(zip(paths, [1, 0, 1])), ["/a/airfield", "/b/bakery/shop"]))
    assert pairs(rs) == list(zip(paths, [1, 0, 1]))


def test_a_dataset_without_a_file_index(tmp_path):
    with pytest.raises(TypeError, match="no file index found"): torchvision_records(object())


# --- 6. ImageNet class names and variants ------------------------------------------------------------------------

WNIDS = ["n01440764", "n01443537", "n01484850", "n01491361"]
NAMES = ["tench", "goldfish", "great white shark", "tiger shark"]


def classnames_file(tmp_path):
    path = tmp_path / "classnames.txt"
    path.write_text("\n".join(f"{w} {n}" for w, n in zip(WNIDS, NAMES)) + "\n\n")
    return path


def test_coop_classnames_file(tmp_path):
    assert imagenet_classnames(classnames_file(tmp_path)) == dict(zip(WNIDS, NAMES))
    (tmp_path / "bad.txt").write_text("n01440764 tench\nn01443537\n")
    with pytest.raises(ValueError, match="line 2.*no class name"): imagenet_classnames(tmp_path / "bad.txt")
    (tmp_path / "twice.txt").write_text("n01440764 tench\nn01440764 goldfish\n")
    with pytest.raises(ValueError, match="wnid n01440764 appears twice"): imagenet_classnames(tmp_path / "twice.txt")


def test_imagenet_and_its_variants_share_one_label_space(tmp_path):
    classes = imagenet_classnames(classnames_file(tmp_path))
    for k, w in enumerate(WNIDS):
        for j in range(2): write_image(tmp_path / "imagenet" / "train" / w / f"{w}_{j}.JPEG", seed=10 * k + j)
        write_image(tmp_path / "imagenet-sketch" / "sketch" / w / f"sketch_{k}.JPEG", seed=k)
    for k, w in enumerate(WNIDS[1:3]): write_image(tmp_path / "imagenet-r" / w / f"art_{k}.jpg", seed=k)
    for k, w in enumerate(WNIDS[0::3]): write_image(tmp_path / "imagenet-a" / w / f"0.{k}.jpg", seed=k)
    for i in (0, 2, 3): write_image(tmp_path / "imagenetv2" / str(i) / "a.jpeg", seed=i)
    train = image_folder_records(tmp_path / "imagenet" / "train", classes=classes)
    sketch = image_folder_records(tmp_path / "imagenet-sketch" / "sketch", classes=classes)
    r = image_folder_records(tmp_path / "imagenet-r", classes=classes)
    a = image_folder_records(tmp_path / "imagenet-a", classes=classes)
    v2 = image_folder_records(tmp_path / "imagenetv2", classes=index_classes(classes.values()))
    assert train.classes == sketch.classes == r.classes == a.classes == v2.classes == NAMES
    assert train.labels.tolist() == [0, 0, 1, 1, 2, 2, 3, 3] and sketch.labels.tolist() == [0, 1, 2, 3]
    assert r.labels.tolist() == [1, 2] and a.labels.tolist() == [0, 3] and v2.labels.tolist() == [0, 2, 3]
    for rs, folder_label in [(train, lambda f: WNIDS.index(f)), (v2, int)]:
        assert all(r.label == folder_label(Path(r.image).parent.name) for r in rs)


def test_v2_folders_sort_as_text_but_label_as_numbers(tmp_path):
    names = [f"class {i}" for i in range(12)]
    for i in (1, 2, 10, 11): write_image(tmp_path / "v2" / str(i) / "x.jpeg", seed=i)
    v2 = image_folder_records(tmp_path / "v2", classes=index_classes(names))
    assert {Path(r.image).parent.name: r.label for r in v2} == {"1": 1, "2": 2, "10": 10, "11": 11}
    with pytest.raises(ValueError, match="not in the class map"): image_folder_records(tmp_path / "v2", classes=index_classes(names[:5]))


# --- 7. cheap and full checks ------------------------------------------------------------------------------------

@pytest.fixture
def damaged(tmp_path):
    "A domain tree with a file cut after its header, a file that is not an image, and good files."
    for domain in ("a", "b"):
        for c in ("cat", "dog"):
            for k in range(2): write_photo(tmp_path / domain / c / f"{k}.jpg")
    cut = tmp_path / "a" / "cat" / "0.jpg"; cut.write_bytes(cut.read_bytes()[: cut.stat().st_size // 2])
    (tmp_path / "b" / "dog" / "1.jpg").write_bytes(b"<html>404</html>")
    return tmp_path


def test_the_default_check_reads_headers_only(damaged, monkeypatch):
    def no_decoding(self): raise AssertionError("decoded a file")
    monkeypatch.setattr(ImageFile.ImageFile, "load", no_decoding)
    with pytest.warns(UserWarning, match=r"skipped 1 unreadable.*b/dog/1\.jpg"): rs = domainbed_records(damaged)
    assert len(rs) == 7 and str(damaged / "a" / "cat" / "0.jpg") in {r.image for r in rs}


def test_a_full_decode_is_asked_for(damaged):
    with pytest.warns(UserWarning, match="skipped 2 unreadable"): rs = domainbed_records(damaged, check="decode")
    assert len(rs) == 6
    for i in range(len(rs)): rs.dataset()[i]
    assert len(domainbed_records(damaged, check=False)) == 8
    with pytest.warns(UserWarning, match="skipped 1 unreadable"): assert len(domainbed_records(damaged, check="header")) == 7
    with pytest.raises(ValueError, match="check='full'.*'decode'"): domainbed_records(damaged, check="full")
    with pytest.warns(UserWarning, match="skipped 1 unreadable"): assert len(image_folder_records(damaged / "a", check="decode")) == 3


def test_a_file_that_fails_to_decode_later_is_named(damaged):
    with pytest.warns(UserWarning): rs = domainbed_records(damaged)
    i = [r.image for r in rs].index(str(damaged / "a" / "cat" / "0.jpg"))
    with pytest.raises(OSError, match=r"item \d+: cannot decode '.*a/cat/0\.jpg'.*truncated.*check='decode'") as e:
        rs.dataset()[i]
    assert e.value.__cause__ is not None
    import torchvision.transforms as T
    with pytest.raises(OSError, match="a/cat/0.jpg"): rs.dataset(T.ToTensor())[i]


def test_header_check_is_much_cheaper_than_a_decode(tmp_path):
    records = [Record(str(write_photo(tmp_path / f"{k}.jpg", size=(500, 375))), 0) for k in range(30)]
    def seconds(decode):
        start = time.perf_counter(); assert len(check_images(records, decode=decode)[0]) == 30
        return time.perf_counter() - start
    seconds(False)
    assert min(seconds(False) for _ in range(3)) * 3 < min(seconds(True) for _ in range(3))


# --- 8. DomainBed class map --------------------------------------------------------------------------------------

def test_domainbed_class_map(tmp_path):
    for d in ("art", "photo"):
        for f in ("n02", "n01"): write_image(tmp_path / d / f / "0.jpg")
    rs = domainbed_records(tmp_path, classes={"n02": "goldfish", "n01": "tench", "n03": "shark"})
    assert rs.classes == ["goldfish", "tench", "shark"]
    assert [(Path(r.image).parent.name, rs.classes[r.label]) for r in rs] == [("n01", "tench"), ("n02", "goldfish")] * 2
    with pytest.raises(ValueError, match="folders \\['n02'\\] are not in the class map"): domainbed_records(tmp_path, classes={"n01": "tench"})
    assert domainbed_records(tmp_path).classes == ["n01", "n02"]


# --- 9. labels without decoding ----------------------------------------------------------------------------------

def test_record_dataset_labels_without_decoding(tmp_path, monkeypatch):
    for d in ("a", "b"):
        for c in ("x", "y"):
            for k in range(3): write_image(tmp_path / d / c / f"{k}.png", seed=k)
    rs = domainbed_records(tmp_path)
    ds = rs.dataset()
    import clipexplore.data as data
    monkeypatch.setattr(data, "load_image", lambda image: (_ for _ in ()).throw(AssertionError("decoded")))
    assert ds.labels.tolist() == [0, 0, 0, 1, 1, 1] * 2 and ds.domain_index.tolist() == [0] * 6 + [1] * 6
    assert isinstance(ds.labels, np.ndarray) and ds.labels.dtype == np.int64


def test_clipreid_identity_groups_take_a_record_dataset(tmp_path):
    from clipexplore.methods.clipreid import IdentityGroups
    import torchvision.transforms as T
    for c in ("id1", "id2", "id3"):
        for k in range(3): write_image(tmp_path / "market" / c / f"{k}.jpg", seed=k)
    groups = IdentityGroups(image_folder_records(tmp_path / "market").dataset(T.ToTensor()), k=2)
    item = groups[1]
    assert len(groups) == 3 and item["image"].shape == (2, 3, 12, 16) and item["label"].tolist() == [1, 1]
