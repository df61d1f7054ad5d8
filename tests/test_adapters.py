"Adapters on frozen features: CLIP-Adapter and Tip-Adapter-F move accuracy; their mechanisms act as the papers say."
import pytest
import torch

from clipexplore.engine import FeatureDataset, Trainer, coop_train_transform, evaluate, load_learned, make_optimizer
from clipexplore.methods.adapters import CLIPAdapter, TipAdapter, TipAdapterF
from clipexplore.methods.zeroshot import ZeroShotClassifier

from conftest import TRAIN_DOMAINS


def mean(table): return table.where(domain="mean")[0]["accuracy"]


@pytest.fixture(scope="module")
def views(clip, pool):
    "16 shots with 10 cached views (Tip-Adapter's augmentation: crop scale 0.5-1 and flip)."
    from clipexplore.data import few_shot
    return FeatureDataset.encode(clip, few_shot(pool, 16, seed=1).dataset(clip.preprocess), views=10,
                                 augment=coop_train_transform(clip.image_size[0], scale=(0.5, 1.0)))


@pytest.fixture(scope="module")
def valid(clip):
    from clipexplore.toyworld import ToyWorld
    return FeatureDataset.encode(clip, ToyWorld(300, seed=8, domains=TRAIN_DOMAINS, distractors=True))


def test_tip_adapter_f_trains_its_keys_beyond_the_training_free_cache(clip, views, valid, test, tmp_path):
    free = TipAdapter(clip, test.classes).closed_form_fit(views, valid)
    torch.manual_seed(1)
    tuned = TipAdapterF.from_recipe(clip, test.classes, recipe="toy")
    Trainer(tuned, views, valid, recipe="toy", progress=False, checkpoint_dir=tmp_path).fit()
    assert tuned.keys.requires_grad and (tuned.keys - free.keys).abs().max() > 1e-3
    assert mean(evaluate(tuned, test)) > mean(evaluate(free, test)) > mean(evaluate(ZeroShotClassifier(clip, test.classes), test))
    restored = load_learned(TipAdapterF(clip, test.classes), tmp_path)          # keys, values and the searched alpha, beta
    assert (restored.alpha, restored.beta) == (tuned.alpha, tuned.beta)
    assert mean(evaluate(restored, test)) == pytest.approx(mean(evaluate(tuned, test)))


def official_optimizer(recipe):
    return make_optimizer(recipe.optimizer, [torch.nn.Parameter(torch.zeros(1))], recipe.lr, recipe.momentum, recipe.weight_decay)


def test_tip_adapter_f_official_recipe_is_the_official_adamw_and_per_step_cosine():
    recipe = TipAdapterF.recipes["official"]
    opt = official_optimizer(recipe)
    assert type(opt) is torch.optim.AdamW and opt.defaults["eps"] == 1e-4
    assert opt.defaults["weight_decay"] == torch.optim.AdamW([torch.nn.Parameter(torch.zeros(1))]).defaults["weight_decay"] == 0.01
    assert (recipe.schedule, recipe.warmup_epochs, recipe.epochs, recipe.batch_size, recipe.lr) == ("cosine_steps", 0, 20, 256, 1e-3)
    assert recipe.source.startswith("gaopengcuhk/Tip-Adapter:") and recipe.method["alpha"] == 1.17


def test_tip_adapter_f_cache_can_be_initialised_again(clip, views):
    tuned = TipAdapterF(clip, views.classes).init_from_data(views)
    keys = tuned.keys
    tuned.init_from_data(views)                                                     # a second Trainer on the same method
    assert tuned.keys is keys and isinstance(keys, torch.nn.Parameter)


def test_clip_adapter_beats_zero_shot_and_keeps_naming_new_classes(clip, views, test):
    zero_shot = ZeroShotClassifier(clip, test.classes)
    batch = {"image_features": test.features[:32]}
    torch.testing.assert_close(CLIPAdapter(clip, test.classes, alpha=0).logits(batch), zero_shot.logits(batch), atol=1e-4, rtol=1e-4)
    torch.manual_seed(1)
    adapter = CLIPAdapter.from_recipe(clip, test.classes, recipe="toy")
    Trainer(adapter, views, recipe="toy", progress=False).fit()
    assert mean(evaluate(adapter, test)) > mean(evaluate(zero_shot, test)) + 2
    adapter.set_classes(test.classes[::-1])                                       # text-side classifier: any names
    assert adapter.logits(batch).shape == (32, len(test.classes))
    with pytest.raises(ValueError, match="residual ratio"): CLIPAdapter(clip, test.classes, alpha=-0.1)


def test_calip_is_zero_shot_at_beta_zero_and_its_attention_reads_patches(clip, test):
    from clipexplore.methods.calip import CALIP, calip_attention, global_and_patch_features
    from clipexplore.text import TOY_TEMPLATES
    from clipexplore.toyworld import ToyWorld
    world = ToyWorld(16, seed=5, distractors=True)
    images = torch.stack([world[i]["image"] for i in range(16)])
    plain = CALIP(clip, test.classes, beta2=0, beta3=0)
    torch.testing.assert_close(plain.logits({"image": images}), ZeroShotClassifier(clip, test.classes, TOY_TEMPLATES).logits({"image": images}), atol=1e-4, rtol=1e-4)
    pooled, spatial = global_and_patch_features(clip, images)
    aware_text, _ = calip_attention(spatial, plain.class_features)
    one_patch = spatial.clone(); one_patch[:, 0] = -spatial[:, 0]                  # the visual-aware text depends on the patches
    assert not torch.allclose(calip_attention(one_patch, plain.class_features)[0], aware_text)
    searched = CALIP(clip, test.classes).search(ToyWorld(120, seed=8, distractors=True))
    assert 0.001 <= searched.beta2 <= 2 and 0.001 <= searched.beta3 <= 0.1


def test_calip_fs_checkpoint_keeps_the_searched_betas(clip, pool, tmp_path):
    "CALIP-FS searches beta2 and beta3 after training: they are learned state, so `load_learned` gives the same logits, bit for bit."
    from clipexplore.data import few_shot
    from clipexplore.engine import read_checkpoint
    from clipexplore.methods.calip import CALIP
    from clipexplore.toyworld import ToyWorld
    valid = ToyWorld(60, seed=8, distractors=True)
    torch.manual_seed(0)
    calip = CALIP(clip, pool.classes, few_shot=True)
    Trainer(calip, few_shot(pool, 2, seed=1).dataset(clip.preprocess), valid, epochs=1, batch_size=8, lr=1e-3, optimizer="adamw",
            checkpoint_dir=tmp_path, progress=False).fit()
    assert (calip.beta2, calip.beta3) != (1.0, 0.05)                              # the search moved them from the defaults
    assert torch.equal(read_checkpoint(tmp_path)[0]["method.betas"], torch.tensor([calip.beta2, calip.beta3], dtype=torch.float64))
    restored = load_learned(CALIP(clip, pool.classes, few_shot=True), tmp_path)
    assert (restored.beta2, restored.beta3) == (calip.beta2, calip.beta3)
    images = {"image": torch.stack([valid[i]["image"] for i in range(16)])}
    with torch.no_grad(): assert torch.equal(restored.eval().logits(images), calip.eval().logits(images))
    zero_shot = CALIP(clip, pool.classes).search(valid)                               # zero-shot CALIP's searched betas round-trip too
    again = CALIP(clip, pool.classes); again.load_trainable_state(zero_shot.trainable_state())
    assert (again.beta2, again.beta3) == (zero_shot.beta2, zero_shot.beta3)
