"Multi-knowledge cache (CoMo/CaFo): a second, self-supervised encoder's cache adds to CLIP's; fusion weighs caches by agreement."
import pytest
import torch

from clipexplore.engine import FeatureDataset, Trainer, coop_train_transform, evaluate, load_learned, make_optimizer
from clipexplore.methods.multicache import MultiCacheAdapter, StackedEncoder, fuse_by_agreement
from clipexplore.methods.zeroshot import ZeroShotClassifier
from clipexplore.toyencoder import load_toy_encoder
from clipexplore.toyworld import ToyWorld

from conftest import TRAIN_DOMAINS


def mean(table): return table.where(domain="mean")[0]["accuracy"]


@pytest.fixture(scope="module")
def cnn():
    return load_toy_encoder(device="cpu")


def encoded(clip, pool, encoders):
    "16 shots x 10 views, validation and test, encoded by CLIP and `encoders` stacked."
    from clipexplore.data import few_shot
    stack = StackedEncoder({"clip": clip, **encoders})
    shots = few_shot(pool, 16, seed=1).dataset(clip.preprocess)
    return (FeatureDataset.encode(stack, shots, views=10, augment=coop_train_transform(clip.image_size[0], scale=(0.5, 1.0))),
            FeatureDataset.encode(stack, ToyWorld(300, seed=8, domains=TRAIN_DOMAINS, distractors=True)),
            FeatureDataset.encode(stack, ToyWorld(800, seed=7, distractors=True)))


def trained(clip, classes, encoders, data, tmp_path=None):
    torch.manual_seed(1)
    method = MultiCacheAdapter.from_recipe(clip, classes, encoders, recipe="toy")
    Trainer(method, data[0], data[1], recipe="toy", progress=False, checkpoint_dir=tmp_path).fit()
    return method


def test_second_encoder_cache_beats_clip_cache_alone(clip, pool, cnn, tmp_path):
    both, clip_only = encoded(clip, pool, {"cnn": cnn}), encoded(clip, pool, {})
    zero_shot = mean(evaluate(ZeroShotClassifier(clip, pool.classes), clip_only[2]))
    alone = mean(evaluate(trained(clip, pool.classes, {}, clip_only), clip_only[2]))
    method = trained(clip, pool.classes, {"cnn": cnn}, both, tmp_path)
    together = mean(evaluate(method, both[2]))
    assert together > alone > zero_shot
    assert method.keys.shape == (160, clip.embed_dim + 256) and method.keys.requires_grad
    weights = method.cache_weights({"image_features": both[2].features[:64]})
    assert weights.shape == (64, 2) and 0.05 < weights[:, 1].mean() < 0.95      # both caches are used
    restored = load_learned(MultiCacheAdapter(clip, pool.classes, {"cnn": cnn}), tmp_path)
    assert (restored.alpha, restored.beta) == (method.alpha, method.beta)
    assert mean(evaluate(restored, both[2])) == pytest.approx(together)


def test_official_recipe_is_cafos_adamw_and_per_step_cosine():
    recipe = MultiCacheAdapter.recipes["official"]
    opt = make_optimizer(recipe.optimizer, [torch.nn.Parameter(torch.zeros(1))], recipe.lr, recipe.momentum, recipe.weight_decay)
    assert type(opt) is torch.optim.AdamW and opt.defaults["eps"] == 1e-4 and opt.defaults["weight_decay"] == 0.01   # AdamW's default
    assert (recipe.schedule, recipe.warmup_epochs, recipe.epochs, recipe.batch_size) == ("cosine_steps", 0, 20, 256)
    assert recipe.source.startswith("OpenGVLab/CaFo:")


def test_fusion_follows_the_cache_that_agrees_with_zero_shot():
    zero = torch.tensor([[3.0, 1.0, 0.0]])
    fused, w = fuse_by_agreement(zero, [torch.tensor([[2.0, 0.5, 0.0]]), torch.tensor([[0.0, 0.5, 2.0]])])
    assert w[0, 0] > 0.9 and fused.argmax() == 0


def test_stacked_features_are_each_encoders_normalised_features(clip, cnn):
    stack = StackedEncoder({"clip": clip, "cnn": cnn})
    x = torch.stack([ToyWorld(4, seed=3)[i]["image"] for i in range(4)])
    clip_part, cnn_part = stack.split(stack.encode_image(x))
    torch.testing.assert_close(clip_part, torch.nn.functional.normalize(clip.encode_image(x).float(), dim=-1), atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(cnn_part, torch.nn.functional.normalize(cnn.encode_image(x), dim=-1), atol=1e-4, rtol=1e-4)
    with pytest.raises(ValueError, match="at least one"): StackedEncoder({})
