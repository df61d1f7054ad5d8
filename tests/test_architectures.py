"""Every method on every architecture family, with small random-weight towers: a plain ViT (ViT-B-16's shape), a ModifiedResNet
(RN50's), a timm ConvNeXt (open_clip's TimmModel) and CoCa (a ViT with attention pooling, a text tower with a class token).
Each method either refuses at construction with a message that names its need, or works end to end: fit, predict,
set_classes, an interrupted run resumed equals an uninterrupted one, `load_learned` into a fresh instance reproduces the
logits, and the checkpoint's `method.*` tensors are exactly those that changed in fit (parameters and buffers), plus any
unchanged trainable parameter, never a frozen tensor. Plus: CoCa's features equal its own, SigLIP is refused clearly."""
import importlib
import pkgutil
import re

import pytest
import torch

import clipexplore.methods
from clipexplore.backbone import CLIP, SIGLIP_EXTRA, clip_from_config, load_clip
from clipexplore.engine import Callback, Method, Trainer, as_features, load_learned, predict, read_checkpoint

torch.set_num_threads(1)

TEXT = dict(context_length=77, vocab_size=49408, width=64, heads=2, layers=2)
SIZE = 64                                               # the toy world's images, so region and patch-labelled data fit too
ARCHITECTURES = {                                       # open_clip model configs: the shapes of the named models, tiny
    "ViT-B-16": dict(embed_dim=32, vision_cfg=dict(image_size=SIZE, patch_size=16, width=64, layers=2, head_width=32), text_cfg=TEXT),
    "RN50": dict(embed_dim=32, vision_cfg=dict(image_size=SIZE, layers=[1, 1, 1, 1], width=8, patch_size=None), text_cfg=TEXT),
    "convnext": dict(embed_dim=32, vision_cfg=dict(timm_model_name="convnext_atto", timm_model_pretrained=False, timm_pool="",
                                                   timm_proj="linear", image_size=SIZE), text_cfg=TEXT),
    "coca": dict(embed_dim=32, custom_text=True,
                 vision_cfg=dict(image_size=SIZE, patch_size=16, width=64, layers=2, head_width=32, attentional_pool=True,
                                 attn_pooler_heads=2, output_tokens=True),
                 text_cfg=dict(TEXT, context_length=76, embed_cls=True, output_tokens=True),
                 multimodal_cfg=dict(context_length=76, vocab_size=49408, width=64, heads=2, layers=1, attn_pooler_heads=2)),
}
NAMES, OTHER = ["circle", "square", "star"], ["ring", "heart"]
NEED = re.compile(r"need|ViT|cannot|only|support", re.IGNORECASE)


@pytest.fixture(scope="module", params=sorted(ARCHITECTURES))
def arch(request):
    torch.manual_seed(0)
    return request.param, clip_from_config(ARCHITECTURES[request.param], name=f"tiny-{request.param}", device="cpu")


class RandomImages(torch.utils.data.Dataset):
    "`n` random normalised images labelled round-robin over `classes`, one domain."
    def __init__(self, classes, n=12, seed=0):
        g = torch.Generator().manual_seed(seed)
        self.classes, self.domain_names = list(classes), ["photo"]
        self.images = torch.randn(n, 3, SIZE, SIZE, generator=g)
        self.labels = [i % len(classes) for i in range(n)]
    def __len__(self): return len(self.labels)
    def __getitem__(self, i): return dict(image=self.images[i], label=self.labels[i], domain=0, index=i)


def _all_methods():
    for m in pkgutil.iter_modules(clipexplore.methods.__path__): importlib.import_module(f"clipexplore.methods.{m.name}")
    found, todo = set(), [Method]
    while todo:
        for sub in todo.pop().__subclasses__():
            if sub.__module__.startswith("clipexplore.") and sub not in found: found.add(sub); todo.append(sub)
    return {c.__name__: c for c in found}


M = _all_methods()


def _toy_world(n, seed, **kw):
    from clipexplore.toyworld import ToyWorld
    return ToyWorld(n, seed=seed, size=SIZE, **kw)


def _regions(clip, seed=3):
    from clipexplore.methods.dualcoop import RegionDataset
    from clipexplore.tasks import ToyMultiLabel
    return RegionDataset(clip, ToyMultiLabel(_toy_world(12, seed, n_objects=(1, 2))))


def _captions(clip):
    from clipexplore.methods.taidpt import CaptionDataset
    world = _toy_world(24, 5, n_objects=(1, 2), captions=True)
    return CaptionDataset(clip, [world[i]["caption"] for i in range(len(world))], world.classes)


def _dense(clip):
    from clipexplore.methods.densecoop import DenseFeatureDataset
    return DenseFeatureDataset.from_toyworld(clip, _toy_world(12, 4, n_objects=(1, 2)))


def _groups(clip):
    from clipexplore.methods.clipreid import IdentityGroups
    return IdentityGroups(RandomImages(NAMES), k=2)


def _bank(clip):
    from clipexplore.concepts import ConceptBank
    return ConceptBank(clip, ["red", "round", "pointy", "blue", "striped"])


def _anchor(clip, names):
    data = RandomImages(names)
    return M["AnchorFT"](clip, names, [f"a photo of a {names[y]}" for y in data.labels], data.images[:4], ["a cat", "a dog", "a bird", "a cat"])


def _ensemble(clip, names): return M["PromptEnsemble"]([M["UPLPrompt"](clip, names, n_ctx=4), M["UPLPrompt"](clip, names, n_ctx=4)])


# name -> (make(clip, classnames), training data(clip, classnames) or None for RandomImages, evaluation data or None: the training data)
CASES = {
    **{n: (None, None, None) for n in ("ZeroShotClassifier", "TipAdapter", "TipAdapterF", "CLIPAdapter", "CALIP", "LinearProbe", "CoCoOp",
                                       "CPL", "KgCoOp", "ProGrad", "UPLPrompt", "GOPro", "VPT", "MaPLe", "IVLP", "PromptSRC",
                                       "MetaPrompt", "EnPrompt", "FineTuner", "TeCoA", "TeCoAPrompt")},
    "CoOp": (lambda clip, names: M["CoOp"](clip, names, n_ctx=4), None, None),
    "CALIP-FS": (lambda clip, names: M["CALIP"](clip, names, few_shot=True), None, None),
    "CARFT": (lambda clip, names: M["CARFT"](clip, names, contexts=("a photo of a {}.", "a sketch of a {}.")), None, None),
    "AnchorFT": (_anchor, None, None),
    "TeCoAPrompt-padding": (lambda clip, names: M["TeCoAPrompt"](clip, names, kind="padding"), None, None),
    "MultiCacheAdapter": (lambda clip, names: M["MultiCacheAdapter"](clip, names, {}), None, None),
    **{f"MVLPT-{v}": ((lambda v: lambda clip, names: M["MVLPT"](clip, names, v, n_ctx=4))(v), None, None) for v in ("coop", "vpt", "upt")},
    "SoftCPT": (lambda clip, names: M["SoftCPT"](clip, {"shape": names[:2], "other": names[2:]}, n_ctx=4), None, None),
    "IdentityPrompts": (lambda clip, names: M["IdentityPrompts"](clip, len(names)), None, None),
    "CLIPReID": (lambda clip, names: M["CLIPReID"](clip, len(names)), lambda clip, names: _groups(clip), lambda clip: RandomImages(NAMES)),
    "PromptEnsemble": (_ensemble, None, None),
    "CCLI": (lambda clip, names: M["CCLI"](clip, names, _bank(clip)), None, None),
    "DenseCoOp": (lambda clip, names: M["DenseCoOp"](clip, names, n_ctx=4), lambda clip, names: _dense(clip), None),
    "DualCoOp": (lambda clip, names: M["DualCoOp"](clip, names, n_ctx=4), lambda clip, names: _regions(clip), None),
    "RegionZeroShot": (None, lambda clip, names: _regions(clip), None),
    "TaIDPT": (lambda clip, names: M["TaIDPT"](clip, names, n_ctx=4), lambda clip, names: _captions(clip), lambda clip: _regions(clip)),
}
MULTI_LABEL = {"DualCoOp", "RegionZeroShot", "TaIDPT"}


def test_every_method_class_has_a_case():
    missing = sorted(set(M) - {n.split("-")[0] for n in CASES})
    assert not missing, f"add these methods to CASES in tests/test_architectures.py: {missing}"


class InterruptAt(Callback):
    def __init__(self, epoch, step): self.at = (epoch, step)
    def after_batch(self, t):
        if (t.epoch, t.step_in_epoch) == self.at: raise KeyboardInterrupt


def _classnames(name):
    "The toy world's objects for methods trained on its scenes (regions, patch labels, captions), else three names."
    from clipexplore.toyworld import OBJECTS
    return list(OBJECTS) if name in MULTI_LABEL | {"DenseCoOp"} else NAMES


class LateRefusal(AssertionError):
    "A method built on a tower it cannot use, refusing only later (its data, fit or logits): it should refuse at construction."


def _make(name, clip, names, seed=0):
    torch.manual_seed(seed)
    make = CASES[name][0] or (lambda clip, names: M[name.split("-")[0]](clip, names))
    return make(clip, names)


def _tensors(method):
    "Every parameter and persistent buffer of `method` (its state_dict: non-persistent buffers are caches it rebuilds), cloned."
    return {n: t.detach().clone() for n, t in method.state_dict().items()}


def _batch(method, data):
    data = as_features(method, data)
    items = [data[i] for i in range(min(6, len(data)))]
    batch = torch.utils.data.default_collate(items)
    if "image" in batch and batch["image"].dim() == 5: batch["image"] = batch["image"].flatten(0, 1)     # identity groups
    return {k: v.to(method.clip.device) if torch.is_tensor(v) else v for k, v in batch.items()}


def _logits(method, batch):
    method.eval()
    with torch.no_grad(): return method.logits(batch)


def _fit(method, train, **kw): return Trainer(method, train, epochs=2, batch_size=4, lr=1e-3, progress=False, **kw).fit()


SEARCHED = {"TipAdapterF": {"alpha", "beta"}, "MultiCacheAdapter": {"alpha", "beta"}, "CALIP-FS": {"betas"}}  # set by a search after fit: learned even when it keeps the start value

def _check_checkpoint(name, method, before, folder):
    "The checkpoint's method tensors: every tensor that changed in fit, plus unchanged trainable parameters; nothing frozen."
    after = _tensors(method)
    changed = {n for n, t in after.items() if n not in before or before[n].shape != t.shape or not torch.equal(before[n], t)}
    held = {k[len("method."):]: v for k, v in read_checkpoint(folder)[0].items() if k.startswith("method.")}
    trainable = {n for n, p in method.named_parameters() if p.requires_grad}
    assert changed <= set(held), f"changed in fit but not in the checkpoint: {sorted(changed - set(held))[:8]}"
    frozen = sorted(set(held) - changed - trainable - SEARCHED.get(name, set()))
    assert not frozen, f"the checkpoint holds frozen tensors that did not change: {frozen[:8]}"
    assert all(torch.equal(held[n], after[n].cpu()) for n in held if n in after), "the checkpoint's tensors are not the method's"


def _set_classes(method, batch):
    "Other class names: the logits follow (one column per name), or a refusal that says why. Returns what happened."
    try:
        if getattr(method, "slices", None) and len(method.slices) > 1:
            method.set_classes(["ring", "heart", "oval"], slices={t: s for t, s in zip(method.slices, (slice(0, 2), slice(2, 3)))})
            n = 3
        else: method.set_classes(OTHER); n = len(OTHER)
    except (ValueError, NotImplementedError) as e:
        assert len(str(e)) > 20, f"set_classes refused without saying why: {e!r}"
        return "refused"
    assert _logits(method, batch).shape[1] == n, "set_classes did not change the logits' columns"
    return "ok"


def _run(name, clip, tmp_path):
    "The whole check of method `name` on `clip`; returns 'refused: ...' or 'works (...)'."
    base = name.split("-")[0]
    names = _classnames(base)
    try: method = _make(name, clip, names)
    except (ValueError, TypeError) as e:
        assert NEED.search(str(e)) and len(str(e)) > 30, f"{name} refused without naming its need: {e!r}"
        return f"refuses: {str(e)[:90]}"
    try: return _works(name, clip, names, method, tmp_path)
    except ValueError as e:
        if "need" not in str(e): raise
        raise LateRefusal(f"{name} was built on a {clip.vision_kind} tower but refused only later ({e}): refuse at construction, "
                          "e.g. with clip.require_vit(...)") from e


def _works(name, clip, names, method, tmp_path):
    "Fit, resume, checkpoint, load_learned, predict and set_classes of a method that accepted `clip`."
    make, train_of, eval_of = CASES[name]
    base = name.split("-")[0]
    train = train_of(clip, names) if train_of else RandomImages(names)
    evaluation = eval_of(clip) if eval_of else train
    frozen = {k: v.clone() for k, v in clip.model.state_dict().items()}
    notes = []
    if method.training_free:
        before = _tensors(method)
        method.closed_form_fit(train)
        state = method.trainable_state()
        changed = {n for n, t in _tensors(method).items() if n not in before or not torch.equal(before[n], t)}
        assert changed <= set(state), f"closed_form_fit changed tensors its trainable_state lacks: {sorted(changed - set(state))[:8]}"
        restored = _make(name, clip, names, seed=1)
        restored.load_trainable_state({k: v.clone() for k, v in state.items()})
        notes.append("closed form")
    elif not any(p.requires_grad for p in method.parameters()) and type(method).init_from_data is Method.init_from_data:
        restored, notes = _make(name, clip, names, seed=1), ["nothing to learn"]
    else:
        method = _make(name, clip, names)                         # the same global random state as the interrupted run's
        before = _tensors(method)                                  # before init_from_data, which may make the cache or parameters
        trainer = _fit(method, train)
        trainer.save(tmp_path / "full")
        _check_checkpoint(name, method, before, tmp_path / "full")
        _fit(_make(name, clip, names), train, checkpoint_dir=tmp_path / "cut", callbacks=[InterruptAt(1, 1)])
        torch.manual_seed(12345)                                   # a resumed run must not depend on the global random state
        resumed = Trainer(_make(name, clip, names), train, epochs=2, batch_size=4, lr=1e-3, progress=False).resume(tmp_path / "cut").fit()
        want, got = method.trainable_state(), resumed.method.trainable_state()
        assert set(want) == set(got), "the resumed run learns other tensors"
        differ = [k for k in want if not torch.equal(want[k], got[k])]
        assert not differ, f"resumed run differs from the uninterrupted one in {differ[:5]}"
        restored = load_learned(_make(name, clip, names, seed=1), tmp_path / "full")
        notes.append("fit, resume, checkpoint")
    for k, v in clip.model.state_dict().items(): assert torch.equal(v, frozen[k]), f"the frozen CLIP's {k} changed"
    method.train()
    training = [n for n, m in clip.model.named_modules() if m.training]
    assert not training, f"{name} in training mode puts the frozen CLIP's {training[:3]} in training mode (BatchNorm statistics would move)"
    batch = _batch(method, evaluation)
    want = _logits(method, batch)
    assert torch.isfinite(want).all() and want.shape[0] == len(batch["index"])
    got = _logits(restored, batch)
    assert torch.allclose(got, want, rtol=1e-5, atol=1e-6), f"load_learned logits differ by {float((got - want).abs().max()):.3g}"
    if base not in MULTI_LABEL:
        preds, labels, _ = predict(method, evaluation)
        assert len(preds) == len(evaluation) and int(preds.max()) < want.shape[1]
    notes.append(f"set_classes {_set_classes(method, batch)}")
    return "works (" + ", ".join(notes) + ")"


KNOWN_FAILURES = {("RN50", "MultiCacheAdapter"): "the loss turns NaN in the second epoch on the tiny random-weight RN50 "
                                                  "(the stacked encoders now stay in eval mode; the cause is not found yet)"}


@pytest.mark.parametrize("name", sorted(CASES))
def test_method_on_architecture(arch, name, tmp_path):
    arch_name, clip = arch
    clip.eval()                                                   # whatever an earlier failing case left behind
    if (arch_name, name) in KNOWN_FAILURES:
        with pytest.raises(Exception):                            # strict: once the case works, this fails and the entry must go
            _run(name, clip, tmp_path)
        pytest.xfail(KNOWN_FAILURES[arch_name, name])
    outcome = _run(name, clip, tmp_path)
    print(f"\nMATRIX {arch_name:9s} {name:20s} {outcome}")


# ---- the backbone itself on each family

def test_plain_features_equal_open_clip_on_every_family(arch):
    name, clip = arch
    texts = ["a photo of a star", "a red square!", "x"]
    images = torch.randn(2, 3, SIZE, SIZE)
    with torch.no_grad():
        own_text = clip.model.encode_text(clip.tokenizer(texts), normalize=False)
        own_image = clip.model.encode_image(images, normalize=False)
        assert torch.allclose(clip.encode_text(texts), own_text, atol=1e-6)
        emb, eot = clip.embed_tokens(texts)
        assert torch.allclose(clip.encode_embeddings(emb, eot), own_text, atol=1e-6)      # the prompt learners' path
        assert torch.allclose(clip.encode_image(images), own_image, atol=1e-6)
    assert clip.vision_kind == {"ViT-B-16": "vit", "RN50": "resnet", "convnext": "timm", "coca": "vit-attnpool"}[name]
    if clip.vision_kind != "vit":
        with pytest.raises(ValueError, match="VPT needs a ViT vision tower"): clip.require_vit("VPT")


def test_coca_is_recognised_and_its_context_is_the_tokenizers():
    torch.manual_seed(0)
    clip = clip_from_config(ARCHITECTURES["coca"], name="tiny-coca", device="cpu")
    assert clip.is_coca and clip.context_length == 76 and clip.tokenize(["a dog"]).shape == (1, 76)
    deep = [None, torch.randn(2, clip.text_width)]
    with torch.no_grad():                                     # deep text prompts reach CoCa's class token
        assert (clip.encode_text(["a dog"], deep_prompts=deep) - clip.encode_text(["a dog"])).abs().max() > 1e-4


def test_siglip_is_refused_clearly():
    try: import transformers  # noqa: F401
    except ImportError:
        with pytest.raises(ImportError, match=re.escape(SIGLIP_EXTRA)): load_clip("ViT-B-16-SigLIP", device="cpu")
        hub = dict(ARCHITECTURES["ViT-B-16"], text_cfg=dict(TEXT, hf_tokenizer_name="timm/ViT-B-16-SigLIP"))
        with pytest.raises(ImportError, match="transformers"): clip_from_config(hub, name="tiny-siglip", device="cpu")
    sigmoid = dict(ARCHITECTURES["ViT-B-16"], init_logit_bias=-10.0)        # SigLIP's scores on OpenAI's tokenizer
    with pytest.raises(TypeError, match="sigmoid scores with a learned logit_bias"): clip_from_config(sigmoid, device="cpu")


def test_clip_from_config_checks_its_config():
    with pytest.raises(ValueError, match="text_cfg"): clip_from_config(dict(embed_dim=32, vision_cfg={}), device="cpu")
