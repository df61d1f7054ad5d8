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
    method = CLIPReID(clip, len(train.identities), prompts)
    Trainer(method, IdentityGroups(train, k=4, seed=seed), epochs=20, lr=5e-4, batch_size=16, weight_decay=1e-4,
            optimizer=torch.optim.Adam, warmup_epochs=1, progress=False, seed=seed).fit()
    return method


def test_stage1_descriptions_name_their_identities_and_stage2_retrieves_unseen_ones(clip, identities):
    train, test = identities
    torch.manual_seed(0)
    prompts = IdentityPrompts(clip, len(train.identities))
    features = FeatureDataset.encode(clip, train)
    mean = lambda method: evaluate(method, features).where(domain="mean")[0]["accuracy"]
    before = mean(prompts)
    Trainer(prompts, features, epochs=60, lr=3.5e-4, batch_size=64, weight_decay=1e-4, optimizer=torch.optim.Adam,
            warmup_epochs=5, progress=False).fit()
    assert before < 5 and mean(prompts) > 25                          # chance is 1/120

    frozen = retrieval_scores(clip.encode_image, test)["mAP"]
    baseline = retrieval_scores(stage2(clip, train, None).embed, test)["mAP"]
    reid = stage2(clip, train, prompts)
    assert reid.weights["i2t"] == 1.0 and torch.equal(reid.identity_text, prompts.text_features().detach())
    clip_reid = retrieval_scores(reid.embed, test)["mAP"]
    assert frozen < 5 < baseline < clip_reid                           # toy run: 1.2 / 16.2 / 19.8
    assert not any(p.requires_grad for p in clip.parameters())          # the frozen CLIP stayed frozen


def test_bad_identity_input_is_refused(clip):
    with pytest.raises(ValueError, match="shape, colour, texture"): ToyIdentities([("circle", "red", "wavy")])
    with pytest.raises(ValueError, match="at least two"): IdentityPrompts(clip, 1)
