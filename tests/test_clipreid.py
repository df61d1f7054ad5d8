"CLIP-ReID on toy identities: stage 1 learns descriptions that name the training identities; stage 2 with them retrieves unseen identities better than without."
import pytest
import torch

from clipexplore.engine import FeatureDataset, Trainer, evaluate
from clipexplore.methods.clipreid import (CLIPReID, IdentityGroups, IdentityPrompts, ToyIdentities, retrieval_scores,
                                          split_identities)


@pytest.fixture(scope="module")
def identities():
    train_ids, test_ids = split_identities(seed=0)
    return ToyIdentities(train_ids, per_id=8, seed=1), ToyIdentities(test_ids, per_id=8, seed=2)


def stage2(clip, train, prompts, seed=0):
    torch.manual_seed(seed)
    method = CLIPReID.from_recipe(clip, len(train.identities), prompts=prompts, recipe="toy")
    Trainer(method, IdentityGroups(train, k=4, seed=seed), recipe="toy", progress=False, seed=seed).fit()
    return method


def test_stage1_descriptions_name_their_identities_and_stage2_retrieves_unseen_ones(clip, identities):
    train, test = identities
    torch.manual_seed(0)
    prompts = IdentityPrompts.from_recipe(clip, len(train.identities), recipe="toy")
    features = FeatureDataset.encode(clip, train)
    mean = lambda method: evaluate(method, features).where(domain="mean")[0]["accuracy"]
    before = mean(prompts)
    Trainer(prompts, features, recipe="toy", progress=False).fit()
    assert before < 5 and mean(prompts) > 25                          # chance is 1/120

    frozen = retrieval_scores(clip.encode_image, test)["mAP"]
    baseline = retrieval_scores(stage2(clip, train, None).embed, test)["mAP"]
    reid = stage2(clip, train, prompts)
    assert reid.weights["i2t"] == 1.0 and torch.equal(reid.identity_text, prompts.text_features().detach())
    clip_reid = retrieval_scores(reid.embed, test)["mAP"]
    assert frozen < 5 < baseline < clip_reid                           # 45_clipreid saved run (mAP): 1.2 / 16.2 / 19.9
    assert not any(p.requires_grad for p in clip.parameters())          # the frozen CLIP stayed frozen


def test_bad_identity_input_is_refused(clip):
    with pytest.raises(ValueError, match="shape, colour, texture"): ToyIdentities([("circle", "red", "wavy")])
    with pytest.raises(ValueError, match="at least two"): IdentityPrompts(clip, 1)


def test_each_stage_has_its_official_and_toy_recipe(clip):
    "Stage 1 and stage 2 are two methods with their own recipes, read from configs/person/vit_clipreid.yml."
    stage1, stage2 = IdentityPrompts.recipe("official"), CLIPReID.recipe("official")
    assert (stage1.epochs, stage1.batch_size, stage1.lr, stage1.weight_decay, stage1.optimizer) == (120, 64, 3.5e-4, 1e-4, "adam")
    assert (stage2.epochs, stage2.batch_size, stage2.lr, stage2.weight_decay) == (60, 16, 5e-6, 1e-4)
    assert stage2.method == dict(id_weight=0.25, triplet_weight=1.0, i2t_weight=1.0, margin=0.3, smoothing=0.1)
    assert "vit_clipreid.yml" in stage1.source and "vit_clipreid.yml" in stage2.source
    official = IdentityPrompts.from_recipe(clip, 3)
    assert official.tokens.shape[1] == 4 and official.prefix.shape[1] == 5           # SOS a photo of a | X X X X | person.
    for cls in (IdentityPrompts, CLIPReID): assert cls.recipe("toy").notes and cls.recipe("toy").source


@pytest.mark.parametrize("backbone", ["toy ViT", "RN50-shaped"])
def test_a_checkpoint_restores_the_bn_neck_and_the_towers_statistics(backbone, clip, tmp_path):
    "The BN neck's running statistics (and a ResNet tower's) are learned state: `load_learned` gives the same ID predictions."
    from clipexplore.engine import load_learned, predict, read_checkpoint
    from test_finetune import assert_same_logits, tiny_resnet_clip
    model, size = (clip, 64) if backbone == "toy ViT" else (tiny_resnet_clip(), 32)
    ids = split_identities(seed=0)[0][:16]
    train = ToyIdentities(ids, per_id=4, seed=1, size=size)
    make = lambda: CLIPReID(model, len(ids))
    torch.manual_seed(0)
    reid = make()
    Trainer(reid, IdentityGroups(train, k=4), epochs=3, batch_size=4, lr=5e-4, optimizer="adam", checkpoint_dir=tmp_path, progress=False).fit()
    held = {k[len("method."):] for k in read_checkpoint(tmp_path)[0] if k.startswith("method.")}
    assert {"neck.running_mean", "neck.running_var", "neck.weight", "classifier.weight"} <= held and "identity_text" not in held
    assert (reid.neck.running_var - 1).abs().max() > 1e-3                          # training moved the neck's statistics
    torch.manual_seed(1)
    restored = load_learned(make(), tmp_path)
    reid.eval(); restored.eval()
    assert_same_logits(reid, restored, {"image": torch.stack([train[i]["image"] for i in range(16)])})
    assert torch.equal(predict(reid, train)[0], predict(restored, train)[0])
