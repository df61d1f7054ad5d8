"""The CoOp family against references from its official code (tools/golden/coop.py, cocoop.py, kgcoop.py, prograd.py)
and Dassl's learning-rate schedule (tools/golden/dassl_schedule.py).

Each reference holds its labels and learned values (the images are `golden_images()`, regenerated and checked);
clipexplore's method is built on the same golden backbone, the values copied in, and every quantity compared within a
small multiple of the backbone floor."""
import functools

import pytest
import torch
import torch.nn.functional as F

from clipexplore.engine import Method
from tools.golden import common
from tools.golden.common import GOLDEN_CLASSNAMES, assert_golden, golden_clip, golden_images

torch.set_num_threads(1)

@pytest.fixture(scope="module")
def clip(): return golden_clip()

load_golden = functools.lru_cache(common.load_golden)      # each load checks the backbone's fingerprint: once is enough

def inputs(ref):
    "The batch a reference was computed on: the seeded golden images (checked against the stored sum) and its labels."
    labels = ref[0]["labels"]
    images = golden_images(len(labels))
    assert round(float(images.double().sum()), 6) == ref[1]["meta"]["images_sum"], "golden_images() changed: regenerate the reference"
    return dict(image=images, label=labels)

def compare_coop(method, batch, t, prefix, name, what):
    "Logits, cross entropy and context gradient of a CoOp-like method against keys `prefix`_* of a reference."
    with torch.no_grad(): assert_golden(method.logits(batch), t[f"{prefix}_logits"], name, f"logits ({what})")
    loss = method.loss(batch)["loss"]
    assert_golden(loss, t[f"{prefix}_loss"], name, f"loss ({what})")
    loss.backward()
    assert_golden(method.ctx.grad, t[f"{prefix}_grad"], name, f"context gradient ({what})")

# CoOp

@pytest.mark.parametrize("position", ["end", "middle", "front"])
def test_coop_unified_context(clip, position):
    from clipexplore.methods.coop import CoOp
    ref = load_golden("coop_unified"); t = ref[0]
    method = CoOp(clip, GOLDEN_CLASSNAMES, n_ctx=16, class_token_position=position)
    with torch.no_grad(): method.ctx.copy_(t["ctx"])
    compare_coop(method, inputs(ref), t, position, "CoOp", f"unified, M=16, {position}")

@pytest.mark.parametrize("position", ["end", "middle"])
def test_coop_class_specific_context(clip, position):
    from clipexplore.methods.coop import CoOp
    ref = load_golden("coop_csc"); t = ref[0]
    method = CoOp(clip, GOLDEN_CLASSNAMES, n_ctx=4, class_specific=True, class_token_position=position)
    with torch.no_grad(): method.ctx.copy_(t["ctx"])
    compare_coop(method, inputs(ref), t, position, "CoOp", f"class-specific, M=4, {position}")

def test_coop_word_initialised_context(clip):
    "The context 'a photo of a' starts from is the official one, and so are the logits it gives untouched."
    from clipexplore.methods.coop import CoOp
    ref = load_golden("coop_unified"); t = ref[0]
    method = CoOp(clip, GOLDEN_CLASSNAMES, n_ctx=4, ctx_init="a photo of a")
    assert_golden(method.ctx, t["word_init_ctx"], "CoOp", "initial context ('a photo of a')")
    compare_coop(method, inputs(ref), t, "word_init", "CoOp", "'a photo of a' init")

# CoCoOp

META_NET = {"linear1": "0", "linear2": "2"}        # official OrderedDict names -> clipexplore's nn.Sequential indices

def test_cocoop_logits_loss_and_gradients(clip):
    from clipexplore.methods.cocoop import CoCoOp
    ref = load_golden("cocoop"); t = ref[0]
    method = CoCoOp(clip, GOLDEN_CLASSNAMES, n_ctx=4, ctx_init="a photo of a")
    assert_golden(method.ctx, t["initial_ctx"], "CoCoOp", "initial context ('a photo of a')")
    ours = {f"{i}.{p}": f"meta_net.{name}.{p}" for name, i in META_NET.items() for p in ("weight", "bias")}
    with torch.no_grad():
        method.ctx.copy_(t["ctx"])
        for mine, theirs in ours.items(): method.meta_net.state_dict()[mine].copy_(t[theirs])
    batch = inputs(ref)
    with torch.no_grad(): assert_golden(method.logits(batch), t["logits"], "CoCoOp", "logits")
    loss = method.loss(batch)["loss"]
    assert_golden(loss, t["loss"], "CoCoOp", "loss")
    loss.backward()
    assert_golden(method.ctx.grad, t["grad_ctx"], "CoCoOp", "context gradient")
    grads = dict(method.meta_net.named_parameters())
    assert_golden(torch.cat([grads[k].grad.flatten() for k in ours]), torch.cat([t[f"grad_{v}"].flatten() for v in ours.values()]),
                  "CoCoOp", "meta-net gradient")

# KgCoOp

def test_kgcoop_logits_knowledge_term_and_loss(clip):
    from clipexplore.methods.kgcoop import KgCoOp
    ref = load_golden("kgcoop"); t = ref[0]; info = ref[1]["meta"]
    method = KgCoOp(clip, GOLDEN_CLASSNAMES, n_ctx=4, ctx_init="a photo of a", weight=info["weight"], template=info["template"])
    assert_golden(method.ctx, t["initial_ctx"], "KgCoOp", "initial context ('a photo of a')")
    assert_golden(method.handcrafted, t["handcrafted"], "KgCoOp", "hand-crafted class features")
    with torch.no_grad(): method.ctx.copy_(t["ctx"])
    batch = inputs(ref)
    with torch.no_grad(): assert_golden(method.logits(batch), t["logits"], "KgCoOp", "logits")
    terms = method.loss(batch)
    assert_golden(terms["knowledge"], t["knowledge"], "KgCoOp", "knowledge term (1 - mean cos)")
    assert_golden(terms["loss"], t["loss"], "KgCoOp", "loss (CE + 8 x knowledge)")
    terms["loss"].backward()
    assert_golden(method.ctx.grad, t["grad_ctx"], "KgCoOp", "context gradient")

# ProGrad

def test_prograd_terms_and_projected_gradient(clip):
    from clipexplore.methods.prograd import ProGrad, prograd_project
    ref = load_golden("prograd"); t = ref[0]; info = ref[1]["meta"]
    method = ProGrad(clip, GOLDEN_CLASSNAMES, n_ctx=info["n_ctx"], template=info["template"], lam=info["lam"], temperature=info["temperature"])
    assert_golden(method.ctx, t["initial_ctx"], "ProGrad", "initial context (template words in the last slots)")
    with torch.no_grad(): method.ctx.copy_(t["ctx"])
    batch = inputs(ref)
    with torch.no_grad():
        assert_golden(method.logits(batch), t["logits"], "ProGrad", "logits")
        teacher = clip.logit_scale * method.image_features(batch) @ method.handcrafted.T
    assert_golden(teacher, t["teacher_logits"], "ProGrad", "zero-shot teacher logits")
    terms = method.loss(batch)
    assert_golden(terms["ce"], t["ce"], "ProGrad", "CE term")
    assert_golden(terms["zero_shot_ce"], t["kl"], "ProGrad", "cross entropy to zero-shot CLIP (the KL term up to a constant)")
    g_ce, g_kl = (torch.autograd.grad(terms[k], method.ctx, retain_graph=True)[0] for k in ("ce", "zero_shot_ce"))
    assert_golden(g_ce, t["grad_ce"], "ProGrad", "CE gradient")
    assert_golden(g_kl, t["grad_kl"], "ProGrad", "KL gradient")
    assert (t["grad_ce"] * t["grad_kl"]).sum() < 0, "the reference must exercise the projection (conflicting gradients)"
    assert_golden(prograd_project(t["grad_ce"], t["grad_kl"], info["lam"]), t["grad_projected"], "ProGrad",
                  "projection of the official gradients (lambda 1)")
    method.compute_gradients(terms)
    # The projection keeps the small part of G_ce orthogonal to a nearly opposite G_kl (cos ~ -0.96), so float32 noise
    # of G_ce (this computation's scale) is compared on that scale: the projected gradient beside G_ce.
    assert_golden(torch.cat([method.ctx.grad, g_ce]), torch.cat([t["grad_projected"], t["grad_ce"]]), "ProGrad",
                  "projected context gradient (lambda 1; on G_ce's scale)")

# The learning-rate schedule (Dassl's ConstantWarmupScheduler around CosineAnnealingLR, stepped once per epoch)

SCHEDULE_CASES = [(5, 1), (10, 1), (50, 1), (5, 2), (10, 2)]

@pytest.mark.parametrize("epochs, warmup", SCHEDULE_CASES)
def test_coop_lr_is_dassls_schedule(epochs, warmup):
    from clipexplore.engine import coop_lr
    ref = load_golden("dassl_schedule"); info = ref[1]["meta"]
    ours = torch.tensor([coop_lr(e, epochs, info["lr"], warmup, info["warmup_lr"]) for e in range(epochs)], dtype=torch.float64)
    assert_golden(ours, ref[0][f"lr_E{epochs}_W{warmup}"], "schedule", f"lr per epoch ({epochs} epochs, warm-up {warmup})")

class Probe(Method):
    "A linear head on cached features: the cheapest method the Trainer can train."
    uses_image_features = True
    def __init__(self, dim=8, n_classes=3):
        super().__init__(); self.head = torch.nn.Linear(dim, n_classes)
    def logits(self, batch): return self.head(batch["image_features"])

@pytest.mark.parametrize("epochs, warmup", [(5, 1), (5, 2)])
def test_trainer_trains_each_batch_at_dassls_lr(epochs, warmup):
    "Every batch of epoch e runs at Dassl's lr for e (read by a callback), and the history records it."
    from clipexplore.engine import Callback, FeatureDataset, Trainer
    ref = load_golden("dassl_schedule"); info = ref[1]["meta"]; expected = ref[0][f"lr_E{epochs}_W{warmup}"]
    g = torch.Generator().manual_seed(0)
    data = FeatureDataset(F.normalize(torch.randn(12, 8, generator=g), dim=-1), torch.arange(12) % 3, torch.zeros(12, dtype=torch.long))
    class BatchLrs(Callback):
        def __init__(self): self.seen = []
        def after_batch(self, trainer): self.seen.append((trainer.epoch, trainer.opt.param_groups[0]["lr"]))
    seen = BatchLrs()
    torch.manual_seed(0)
    trainer = Trainer(Probe(), data, epochs=epochs, warmup_epochs=warmup, lr=info["lr"], warmup_lr=info["warmup_lr"],
                      batch_size=4, device="cpu", progress=False, callbacks=[seen]).fit()
    assert len(seen.seen) == epochs * 3
    per_batch = torch.tensor([expected[e].item() for e, _ in seen.seen], dtype=torch.float64)
    assert_golden(torch.tensor([lr for _, lr in seen.seen], dtype=torch.float64), per_batch, "schedule", f"Trainer lr per batch (warm-up {warmup})")
    assert_golden(torch.tensor([r["lr"] for r in trainer.history], dtype=torch.float64), expected, "schedule", f"Trainer history lr (warm-up {warmup})")
