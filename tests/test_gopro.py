"GOPro: views come from their own images, every loss term acts, and it beats zero-shot on base classes."
import torch

from clipexplore.methods.gopro import GOPro, augment_views
from clipexplore.toyworld import ToyWorld
from conftest import base_class_accuracies


def images(n=8, seed=3): return torch.stack([ToyWorld(n, seed=seed)[i]["image"] for i in range(n)])


def test_each_augmented_view_comes_from_its_own_image():
    x = images()
    torch.manual_seed(0)
    _, augmix = augment_views(x)
    distance = torch.cdist(augmix.flatten(1), x.flatten(1))          # [view, original]
    assert torch.equal(distance.argmin(1), torch.arange(len(x)))


def test_every_term_is_in_the_loss_and_moves_the_gradient(clip, pool):
    batch = dict(image=images(), label=torch.arange(8) % 10)
    grads = {}
    for name, kw in [("all", {}), ("no consistency", dict(consistency_weight=0.0)), ("no simclr", dict(simclr_weight=0.0))]:
        torch.manual_seed(0)
        method = GOPro(clip, pool.classes, **kw)
        torch.manual_seed(1)
        terms = method.loss(batch)
        assert terms["consistency"] > 0 and terms["simclr"] > 0
        terms["loss"].backward()
        grads[name] = torch.cat([method.ctx.grad.flatten(), method.projector[0].weight.grad.flatten()])
    assert (grads["all"] - grads["no consistency"]).abs().max() > 0 and (grads["all"] - grads["no simclr"]).abs().max() > 0


def test_gopro_beats_zero_shot_on_base_classes(clip, pool):
    trained, zero_shot = base_class_accuracies(clip, pool, lambda n: GOPro(clip, n), epochs=10)
    assert trained > zero_shot + 3


def test_style_statistics_are_the_official_population_std(clip, pool):
    method = GOPro(clip, pool.classes)
    x = images(4)
    with torch.no_grad():
        _, layers = clip.encode_image(x, return_layers=True)
        per_layer = []
        for z, style, content in zip(layers, method.style, method.content):
            mu = z.mean(1)
            sigma = ((z - mu[:, None]).pow(2).sum(1).add(2.3e-8) / z.shape[1]).sqrt()   # AdaIN_trans: / N, not / (N - 1)
            per_layer.append((style((mu + sigma) / 2) + content(mu)) / 2)
        expected = method.rho(torch.stack(per_layer, dim=-1)).squeeze(-1)
        _, shift = method.encode(x)
    assert torch.allclose(shift, expected, atol=1e-6)


def test_recipes_cite_the_official_config(clip, pool):
    official, toy = GOPro.recipes["official"], GOPro.recipes["toy"]
    assert (official.epochs, official.batch_size, official.lr) == (50, 4, 0.002) and "configs/trainers/GOPro/vit_b16.yaml" in official.source
    assert set(toy.notes) >= {"epochs", "batch_size"}
    method = GOPro.from_recipe(clip, pool.classes, recipe="toy")
    assert method.ctx.shape[0] == 4 and method.simclr_weight == 0.1
