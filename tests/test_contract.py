"The method contract, checked on every `Method` subclass: one finite step, gradients only where `trainable_state` says, CLIP frozen, the state round-trips, `set_classes` round-trips or refuses clearly, and a resumed run equals an uninterrupted one bit for bit."
import importlib
import pkgutil

import pytest
import torch

import clipexplore.methods
from clipexplore.engine import Callback, Method, NothingToLearn, Trainer, as_features, batches, load_learned


def _all_methods():
    for m in pkgutil.iter_modules(clipexplore.methods.__path__): importlib.import_module(f"clipexplore.methods.{m.name}")
    found, todo = set(), [Method]
    while todo:
        for sub in todo.pop().__subclasses__():
            if sub.__module__.startswith("clipexplore.") and sub not in found: found.add(sub); todo.append(sub)
    return {c.__name__: c for c in found}


FACTORIES = {                          # name -> (clip, classnames) -> method, on the toy CLIP
    **{n: None for n in ("TipAdapterF", "CLIPAdapter", "TipAdapter", "CALIP", "CoCoOp", "CPL", "EnPrompt", "FineTuner", "CARFT",
                         "GOPro", "KgCoOp", "LinearProbe", "MetaPrompt", "MVLPT", "ProGrad", "TeCoAPrompt", "TeCoA", "UPLPrompt",
                         "VPT", "ZeroShotClassifier")},
    "CoOp": lambda clip, names: _all_methods()["CoOp"](clip, names, n_ctx=4),
    "MaPLe": None, "IVLP": None, "PromptSRC": None,
    "MultiCacheAdapter": lambda clip, names: _all_methods()["MultiCacheAdapter"](clip, names, {}),
}
OWN_TESTS = {                          # methods whose data is not single-label images: their own test files check them
    "CLIPReID": "person identities (tests/test_clipreid.py)", "IdentityPrompts": "person identities (tests/test_clipreid.py)",
    "DualCoOp": "multi-label region data (tests/test_dualcoop.py)", "RegionZeroShot": "multi-label region data (tests/test_dualcoop.py)",
    "TaIDPT": "multi-label text-only training (tests/test_taidpt.py)", "SoftCPT": "several tasks (tests/test_multitask.py)",
    "AnchorFT": "retrieved anchor images and captions (tests/test_finetune.py)", "CCLI": "a concept bank (tests/test_concepts.py)",
    "PromptEnsemble": "trained members (tests/test_golden_multi.py, nbs/30_upl.ipynb)", "DenseCoOp": "patch-labelled images (tests/test_concepts.py)",
}


def test_every_method_is_covered():
    missing = sorted(set(_all_methods()) - set(FACTORIES) - set(OWN_TESTS))
    assert not missing, f"add these methods to FACTORIES (or OWN_TESTS with a reason) in tests/test_contract.py: {missing}"


@pytest.fixture(scope="module")
def small(clip, pool):
    "Two images per class of the toy pool: 20 images, batches of 8."
    from clipexplore.data import few_shot
    return few_shot(pool, 2, seed=1).dataset(clip.preprocess)


def _make(name, clip, names, seed=0):
    torch.manual_seed(seed)
    factory = FACTORIES[name] or (lambda clip, names: _all_methods()[name](clip, names))
    return factory(clip, names)


class InterruptAt(Callback):
    def __init__(self, epoch, step): self.at = (epoch, step)
    def after_batch(self, t):
        if (t.epoch, t.step_in_epoch) == self.at: raise KeyboardInterrupt


def _fit(method, data, **kw): return Trainer(method, data, epochs=2, batch_size=8, progress=False, **kw).fit()


def _logits(method, trainer_data):
    batch = next(batches(trainer_data, method.clip.device, 6))
    method.eval()
    with torch.no_grad(): return method.logits(batch)


@pytest.mark.parametrize("name", sorted(FACTORIES))
def test_method_contract(name, clip, small, tmp_path):
    frozen = {k: v.clone() for k, v in clip.model.state_dict().items()}
    method = _make(name, clip, small.classes)
    trainer = None
    if method.training_free: method.closed_form_fit(small)
    else:
        try: trainer = Trainer(method, small, epochs=2, batch_size=8, progress=False)       # init_from_data may add parameters
        except NothingToLearn: pass                                                         # zero-shot: nothing to learn
    learned = {n for n, p in method.named_parameters() if p.requires_grad}
    if trainer is None: data = as_features(method, small)
    else:
        data = trainer.train
        batch = next(batches(data, trainer.device, 8, len(method.classnames), "training"))
        method.train()
        terms = method.loss(batch)
        assert all(torch.isfinite(torch.as_tensor(v)).all() for v in terms.values()), terms
        method.zero_grad(set_to_none=True)
        method.compute_gradients(terms, batch=batch, lr=0.002)
        reached = {n for n, p in method.named_parameters() if p.grad is not None and p.grad.abs().sum() > 0}
        assert reached and reached <= learned, f"gradients reached {sorted(reached - learned)} outside the learned parameters"
        assert learned <= set(method.trainable_state()), "trainable_state() must hold every parameter that learns"
        method.zero_grad(set_to_none=True); method.eval()

        full = _fit(_make(name, clip, small.classes), small)
        _fit(_make(name, clip, small.classes), small, checkpoint_dir=tmp_path, callbacks=[InterruptAt(1, 1)])
        torch.manual_seed(12345)                                       # a resumed run must not depend on the global RNG
        resumed = Trainer(_make(name, clip, small.classes), small, epochs=2, batch_size=8, progress=False).resume(tmp_path).fit()
        want, got = full.method.trainable_state(), resumed.method.trainable_state()
        assert set(want) == set(got) and all(torch.equal(want[k], got[k]) for k in want), f"resume differs from the uninterrupted run: {[k for k in want if not torch.equal(want[k], got[k])]}"
        method = full.method
    for k, v in clip.model.state_dict().items(): assert torch.equal(v, frozen[k]), f"CLIP's {k} changed"
    assert not any(p.requires_grad for p in clip.model.parameters()) or name in ("FineTuner", "CARFT", "TeCoA")

    before = _logits(method, data)
    assert before.shape == (6, len(small.classes)) and torch.isfinite(before).all()
    if method.trainable_state():                                   # through a checkpoint file: safetensors, no pickle
        restored = _make(name, clip, small.classes, seed=1)
        if restored.training_free: restored.closed_form_fit(small)
        if trainer is not None:
            full.save(tmp_path / "full"); load_learned(restored, tmp_path / "full")
        else: restored.load_trainable_state({k: v.clone() for k, v in method.trainable_state().items()})
        assert torch.allclose(_logits(restored, data), before, atol=1e-5), "the learned state does not round-trip"

    names = list(small.classes)
    try: method.set_classes(names[::-1])
    except (ValueError, NotImplementedError) as e: assert len(str(e)) > 20          # a refusal that says why
    else:
        assert _logits(method, data).shape == (6, len(names))
        method.set_classes(names)
        assert torch.allclose(_logits(method, data), before, atol=1e-5), "set_classes does not round-trip"
