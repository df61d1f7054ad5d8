"Concept extraction, scored against the toy world's truth; CCLI and Tip-Adapter against zero-shot."
import numpy as np
import pytest
import torch

from clipexplore.concepts import ConceptBank, concept_scores, decode_prompt, score_against_truth, toy_concept_truth
from clipexplore.methods.densecoop import DenseCoOp, DenseFeatureDataset
from clipexplore.methods.splice import mean_image_feature, sparse_decompose
from clipexplore.patchmaps import localisation_accuracy, patch_text_maps
from clipexplore.engine import Trainer, evaluate
from clipexplore.metrics import encode_dataset
from clipexplore.toyworld import OBJECTS, ToyWorld


@pytest.fixture(scope="module")
def world(): return ToyWorld(400, seed=31, n_objects=(1, 2, 3))


@pytest.fixture(scope="module")
def bank(clip): return ConceptBank.from_toyworld(clip)


@pytest.fixture(scope="module")
def features(clip, world): return encode_dataset(clip, world)[0]


def mean_accuracy(table): return table.where(domain="mean")[0]["accuracy"]


def test_bank_rejects_bad_concepts(clip):
    for concepts, message in [([], "empty"), ({"colours": []}, "empty"), (["red", " red"], "duplicate"),
                              (["red", "   "], "non-empty"), (["word " * 80], "shorten")]:
        with pytest.raises(ValueError, match=message): ConceptBank(clip, concepts)


def test_bank_from_file(clip, tmp_path):
    path = tmp_path / "concepts.txt"
    path.write_text("# colours\nred\nblue\n\n# shapes\nstar\n")
    bank = ConceptBank.from_file(clip, path)
    assert bank.texts == ["red", "blue", "star"] and bank.families == ["colours", "colours", "shapes"]
    (tmp_path / "empty.txt").write_text("\n# nothing\n")
    with pytest.raises(ValueError, match="no concepts"): ConceptBank.from_file(clip, tmp_path / "empty.txt")


def test_extractors_beat_shuffled_labels(clip, world, bank, features):
    truth = toy_concept_truth(world, bank)
    table = score_against_truth({"cosine": concept_scores(features, bank),
                                 "splice": sparse_decompose(features, bank, mean_image_feature(features)).weights}, truth, bank)
    shuffled = table.where(extractor="shuffled labels")[0]
    assert abs(shuffled["mean"] - 0.5) < 0.05
    for name in ("cosine", "splice"):
        row = table.where(extractor=name)[0]
        assert row["mean"] > shuffled["mean"] + 0.2, table
        assert row["colours"] > 0.95 and row["domains"] > 0.95 and row["objects"] > 0.75, table


def test_sparse_decomposition_trades_sparsity_for_fidelity(bank, features):
    image_mean = mean_image_feature(features)
    loose, tight = sparse_decompose(features, bank, image_mean, l1=0.05), sparse_decompose(features, bank, image_mean, l1=0.5)
    assert (loose.weights >= 0).all() and (tight.weights >= 0).all()
    assert tight.l0.mean() < loose.l0.mean() and tight.cosine.mean() < loose.cosine.mean()
    assert loose.cosine.mean() > 0.8


def test_splice_needs_a_dataset_mean_and_explains_a_single_image(clip, world, bank, features):
    "Centred on its own mean, one image decomposed to nothing with cosine 1.000; official SpLiCE subtracts a dataset's mean."
    with pytest.raises(ValueError, match="needs image_mean"): sparse_decompose(features[:1], bank)
    with pytest.raises(ValueError, match="3 reference images"): mean_image_feature(features[:3])
    with pytest.raises(ValueError, match="mean of these 2 images"):
        sparse_decompose(features[:2], bank, torch.nn.functional.normalize(features[:2], dim=-1).mean(0))
    with pytest.raises(ValueError, match="expected \\[128\\]"): sparse_decompose(features[:1], bank, torch.zeros(3))
    reference = encode_dataset(clip, ToyWorld(64, seed=35, n_objects=(1, 2, 3)))[0]          # other images of the same world
    one = sparse_decompose(features[:1], bank, mean_image_feature(reference))
    assert one.l0[0] >= 1 and 0.3 < one.cosine[0] < 0.999, one
    batch = sparse_decompose(features, bank, mean_image_feature(reference))
    torch.testing.assert_close(one.weights[0], batch.weights[0], atol=1e-5, rtol=0)     # an image's decomposition ignores its batch


def test_patch_maps_point_at_the_right_object(clip):
    scenes = ToyWorld(300, seed=32, n_objects=(2, 3))
    images = torch.stack([scenes[i]["image"] for i in range(len(scenes))])
    shapes = ConceptBank(clip, list(OBJECTS), ("a photo of a {}.",))
    accuracy, chance = localisation_accuracy(patch_text_maps(clip, images, shapes), scenes)
    assert accuracy > 0.5 and accuracy > 2 * chance, (accuracy, chance)
    with pytest.raises(ValueError, match="expects images"): patch_text_maps(clip, images[:, :, :32, :32], shapes)


def test_dense_coop_pixel_loss_is_active(clip):
    data = DenseFeatureDataset.from_toyworld(clip, ToyWorld(160, seed=33, n_objects=(2, 3)))
    losses = []
    for weight in (0.0, 1.0):
        torch.manual_seed(0)
        learner = DenseCoOp(clip, list(OBJECTS), aux_weight=weight, ctx_init="a photo of a", class_specific=True)
        losses.append(Trainer(learner, data, epochs=30, progress=False).fit().history[-1]["pixel_text"])
    assert losses[1] < losses[0] - 0.03, losses


def test_decode_prompt_reads_back_initial_words(clip):
    from clipexplore.methods.coop import CoOp
    table = decode_prompt(clip, CoOp(clip, list(OBJECTS), ctx_init="a photo of a"), k=1)
    assert [r["tokens"].split(" (")[0] for r in table] == ["a", "photo", "of", "a"]
    assert all(r["tokens"].endswith("(0.00)") for r in table)


def test_tip_adapter_beats_zero_shot_without_training(clip, train, test):
    from clipexplore.methods.adapters import TipAdapter
    from clipexplore.methods.zeroshot import ZeroShotClassifier
    tip = TipAdapter(clip, test.classes).closed_form_fit(train)
    assert not any(p.requires_grad for p in tip.parameters())
    assert mean_accuracy(evaluate(tip, test)) > mean_accuracy(evaluate(ZeroShotClassifier(clip, test.classes), test)) + 0.5


def test_ccli_beats_zero_shot_and_learns_from_its_concepts(clip, train, test, bank, tmp_path):
    from clipexplore.engine import load_learned
    from clipexplore.methods.ccli import CCLI
    from clipexplore.methods.zeroshot import ZeroShotClassifier
    torch.manual_seed(0)
    ccli = CCLI(clip, test.classes, bank)
    trainer = Trainer(ccli, train, epochs=50, lr=0.01, progress=False, checkpoint_dir=tmp_path)
    initial = ccli.visual_concepts.detach().clone()
    assert not torch.allclose(initial, bank.features), "init_from_data should have replaced the text concepts"
    trainer.fit()
    zero_shot = mean_accuracy(evaluate(ZeroShotClassifier(clip, test.classes), test))
    assert mean_accuracy(evaluate(ccli, test)) > zero_shot + 2
    assert ccli.inference.weight.abs().sum() > 0 and not torch.allclose(ccli.visual_concepts, initial)
    restored = load_learned(CCLI(clip, test.classes, bank), tmp_path)
    assert mean_accuracy(evaluate(restored, test)) == pytest.approx(mean_accuracy(evaluate(ccli, test)))
