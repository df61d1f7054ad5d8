"The toy world is deterministic by seed, holds its vocabulary, and its held-out seeds share nothing with pretraining."
import numpy as np

from clipexplore.toyclip import PRETRAIN_OBJECTS
from clipexplore.toyworld import COLOURS, DOMAINS, OBJECTS, SIZES, TEXTURES, ToyWorld, caption, render, sample_scene


def test_vocabulary_is_as_large_as_promised():
    assert len(OBJECTS) >= 10 and len(COLOURS) >= 6 and len(SIZES) >= 2 and len(TEXTURES) >= 3
    assert set(DOMAINS) == {"photo", "sketch", "cartoon", "painting"}


def test_deterministic_by_seed_and_random_access():
    a, b = ToyWorld(50, seed=11, n_objects=(1, 2, 3)), ToyWorld(50, seed=11, n_objects=(1, 2, 3))
    assert all(np.array_equal(a.image(i), b.image(j)) for i, j in [(3, 3), (40, 40)])
    assert a.scene(7) == b.scene(7)
    assert not np.array_equal(a.image(3), ToyWorld(50, seed=12, n_objects=(1, 2, 3)).image(3))


def test_held_out_worlds_share_no_image_with_pretraining():
    train = ToyWorld(10**9, seed=1000, n_objects=PRETRAIN_OBJECTS, transform=None)
    seen = {train.image(i).tobytes() for i in range(300)}
    assert not any(ToyWorld(300, seed=7).image(i).tobytes() in seen for i in range(300))


def test_every_image_carries_its_ground_truth():
    world = ToyWorld(40, seed=2, n_objects=(1, 2, 3), captions=True)
    for i in range(40):
        scene, item = world.scene(i), world[i]
        assert item["label"] == OBJECTS.index(scene["objects"][0]["shape"])
        assert world.domain_names[item["domain"]] == scene["domain"]
        assert 1 <= len(scene["objects"]) <= 3
        assert {"shape", "colour", "size", "texture", "position", "x", "y"} <= set(scene["objects"][0])
        assert any(o["shape"] in item["caption"] for o in scene["objects"]) or scene["domain"] in item["caption"]


def test_domains_look_different():
    rng = np.random.default_rng(0)
    scene = sample_scene(rng, 1)
    images = {d: render(dict(scene, domain=d), np.random.default_rng(1)).astype(float) for d in DOMAINS}
    # sketches are mostly white paper; cartoons have black outlines; paintings are smooth (blurred)
    assert images["sketch"].mean() > images["photo"].mean()
    assert (images["cartoon"].sum(-1) < 30).sum() > 20
    grad = lambda im: np.abs(np.diff(im, axis=1)).mean()
    assert grad(images["painting"]) < grad(images["photo"])


def test_captions_are_partial_and_mention_only_true_things():
    rng = np.random.default_rng(5)
    vocab = set(OBJECTS) | set(COLOURS) | set(SIZES) | set(TEXTURES)
    lengths = []
    for _ in range(200):
        scene = sample_scene(rng, (1, 2, 3))
        text = caption(scene, rng)
        truth = {v for o in scene["objects"] for v in (o["shape"], o["colour"], o["size"], o["texture"])}
        assert {w.strip(",.") for w in text.split()} & vocab <= truth
        lengths.append(len(text.split()))
    assert min(lengths) < 4 < max(lengths)
