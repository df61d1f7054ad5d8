"PromptSRC: its regularisers keep new-class accuracy that unregularised deep prompts lose; GPA averages epochs."
import torch

from clipexplore.data import toy_recordset
from clipexplore.engine import Trainer
from clipexplore.methods.promptsrc import GaussianPromptAggregation, PromptSRC, gaussian_epoch_weights
from clipexplore.protocols import base_to_new
from clipexplore.toyworld import ToyWorld
from conftest import TRAIN_DOMAINS


def test_regularisers_keep_new_class_accuracy(clip, pool):
    test = toy_recordset(ToyWorld(600, seed=7, domains=TRAIN_DOMAINS, distractors=True))
    run = lambda **kw: base_to_new(lambda n: PromptSRC(clip, n, **kw), pool, test, shots=16, seeds=(1,), transform=clip.preprocess,
                                   epochs=20, lr=0.0025)[0]
    regulated, free = run(), run(text_weight=0, image_weight=0, kl_weight=0)
    assert regulated["new"] > free["new"] + 3 and regulated["hm"] > free["hm"]


def test_each_regulariser_is_active(clip, pool):
    images = torch.stack([ToyWorld(4, seed=3)[i]["image"] for i in range(4)])
    method = PromptSRC(clip, pool.classes)
    with torch.no_grad(): method.deep_text.normal_(0, 0.5); method.visual.normal_(0, 0.5)
    terms = method.loss(dict(image=images, label=torch.arange(4)))
    assert all(terms[k] > 0 for k in ("l1_text", "l1_image", "kl"))
    parts = terms["ce"] + 25 * terms["l1_text"] + 10 * terms["l1_image"] + terms["kl"]
    assert torch.isclose(terms["loss"], parts)


def test_gaussian_prompt_aggregation_loads_the_weighted_average(clip, pool):
    from clipexplore.data import few_shot
    from clipexplore.engine import Callback
    snapshots = []
    class Record(Callback):
        order = 5
        def after_epoch(self, t): snapshots.append(t.method.trainable_state()["ctx"].clone())
    torch.manual_seed(0)
    data = few_shot(pool, 2, seed=1).dataset(clip.preprocess)
    trainer = Trainer(PromptSRC(clip, pool.classes), data, epochs=4, lr=0.01, progress=False,
                      callbacks=[GaussianPromptAggregation(mean=3, std=1), Record()]).fit()
    weights = gaussian_epoch_weights(4, 3, 1)
    expected = sum(w * s for w, s in zip(weights, snapshots))
    assert torch.isclose(weights.sum(), torch.tensor(1.0)) and weights.argmax() == 2
    assert torch.allclose(trainer.method.ctx, expected, atol=1e-6)
    assert not torch.allclose(trainer.method.ctx, snapshots[-1])


def test_recipes_build_the_methods_and_gpa_reads_the_method(clip, pool):
    from types import SimpleNamespace
    from clipexplore.methods.promptsrc import IVLP, PROMPTSRC_TEMPLATES
    official = PromptSRC.recipe("official")
    assert (official.epochs, official.batch_size, official.lr) == (20, 4, 0.0025) and "PromptSRC/vit_b16_c2_ep20_batch4_4+4ctx.yaml" in official.source
    assert official.method["teacher_templates"] == PROMPTSRC_TEMPLATES and len(PROMPTSRC_TEMPLATES) == 60
    method = PromptSRC.from_recipe(clip, pool.classes, recipe="toy")
    assert (method.text_weight, method.image_weight, method.gpa_mean, method.gpa_std) == (25.0, 10.0, 15, 1)
    gpa = GaussianPromptAggregation()
    gpa.before_fit(SimpleNamespace(epochs=20, method=method))
    assert torch.allclose(gpa.weights, gaussian_epoch_weights(20, 15, 1))
    ivlp = IVLP.from_recipe(clip, pool.classes, recipe="official")
    assert ivlp.ctx.shape[0] == 2 and ivlp.prompt.words == "a photo of a"      # 2 of the 4 words learned, the rest kept
    try: GaussianPromptAggregation().before_fit(SimpleNamespace(epochs=5, method=ivlp)); raise AssertionError("no error")
    except ValueError as e: assert "no GPA settings" in str(e)


def test_teacher_averages_unnormalised_features(clip, pool):
    "PromptSRC's teacher: the normalised mean of the raw text features over templates (not of normalised ones)."
    from clipexplore.methods.promptsrc import teacher_text_features
    templates = ["a photo of a {}.", "a sketch of a {}."]
    with torch.no_grad(): raw = torch.stack([clip.encode_text([t.format(c) for c in pool.classes]).float() for t in templates])
    assert torch.allclose(teacher_text_features(clip, pool.classes, templates), torch.nn.functional.normalize(raw.mean(0), dim=-1), atol=1e-6)
