"""CPL references: the official counterfactual mask search, CoCoOp-CF logits, loss terms and gradients, run on CPU.

    python tools/golden/cpl.py MIRROR_OF_eric-ai-lab/CPL

The official code does not import as committed: `CPL/trainers/cocoopcf.py` has `from utils *` (a syntax error) and
`CPL/utils/solver.py` imports `utils/configs.py` (argparse over the command line) and `clip.utils` (a git submodule
not in the snapshot). Both files are therefore executed from their own source with only those import lines replaced
(`from utils *` -> `from cpl_solver import mupdate, solver`, the other two dropped); Dassl is stubbed except
`dassl/utils/tools.py` (`xloss_compute`), which is loaded from the repository's vendored Dassl; `bert_score` is
stubbed (the score dictionary is given). `solver` runs its own greedy search (`get_next_edit`): `set_args` says no
stored mask file and `COCOOPCF false`, `gdown` is absent so the Google-Drive download fails as in the code's
`except`, and its `model` is a stand-in whose `visual` returns the given image features (the frozen encoder's,
unnormalised, computed here with the repository's `clip/model.py`) and whose `encode_text` is the official model's.
`torch.save` of the mask is skipped, `Tensor.cuda` is a no-op.

Two training forwards of `CustomCLIP` are recorded, each per sample at the official batch size 1:
* `asis_*`: the code as written; `cfgen` broadcasts `u[:, y]` [E, 1] against x [1, E] into an [E, E] outer product
  whose first row the loss uses (a counterfactual that is all of x or all of x_neg, by dimension 0's mask);
* the reference (no prefix): `cfgen` called with the features as columns (x.T), which mixes per dimension as the
  paper's equation and the code's evident intent; clipexplore follows this.
"""
import importlib.util
import re
import sys
import types
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from tools.golden.common import GOLDEN_CLASSNAMES, build_official, golden_images, official_checkout, save_golden

LABELS = [0, 3, 5, 6]
NEGATIVE_CLASSES = [1, 2, 7, 4]                      # the score dictionary's "most similar class" of each label

def module_from_source(name, source):
    module = types.ModuleType(name); module.__file__ = name + ".py"
    sys.modules[name] = module
    exec(compile(source, name + ".py", "exec"), module.__dict__)
    return module

def stub(name, **attrs):
    module = types.ModuleType(name); module.__dict__.update(attrs); sys.modules[name] = module
    return module

def load_official(root):
    "The official solver and cocoopcf modules, imports patched as the module docstring says."
    cpl = root / "CPL"
    sys.path.insert(0, str(cpl))
    registry = types.SimpleNamespace(register=lambda: (lambda cls: cls))
    stub("dassl"); stub("dassl.engine", TRAINER_REGISTRY=registry, TrainerX=object); stub("dassl.metrics", compute_accuracy=None)
    stub("dassl.optim", build_optimizer=None, build_lr_scheduler=None)
    spec = importlib.util.spec_from_file_location("dassl.utils.tools", cpl / "Dassl.pytorch/dassl/utils/tools.py")
    tools = importlib.util.module_from_spec(spec); sys.modules["dassl.utils.tools"] = tools; spec.loader.exec_module(tools)
    stub("dassl.utils", load_pretrained_weights=None, load_checkpoint=None, read_image=None, tools=tools)
    stub("bert_score", score=None)
    import clip                                                   # CPL/clip
    stub("clip.utils", build_optimizer=None, build_lr_scheduler=None)
    solver_src = (cpl / "utils/solver.py").read_text().replace("from .configs import *", "").replace("from clip.utils import *", "")
    solver = module_from_source("cpl_solver", solver_src)
    cf_src = re.sub(r"^from utils \*$", "from cpl_solver import mupdate, solver", (cpl / "trainers/cocoopcf.py").read_text(), flags=re.M)
    return solver, module_from_source("cocoopcf", cf_src)

class GivenFeatures:
    "Stands in for the image encoder: the 'images' it is given are already its features."
    def __init__(self, output_dim): self.output_dim = output_dim
    def __call__(self, x): return x.clone()

class SolverModel:
    "What `solver` touches of the CLIP it is given: visual (returns the given features), encode_text, logit_scale, dtype."
    def __init__(self, official):
        self.official, self.dtype, self.logit_scale = official, torch.float32, official.logit_scale
        self.visual = GivenFeatures(official.visual.output_dim)
    def cuda(self): return self
    def encode_text(self, tokens): return self.official.encode_text(tokens)

def official_mask(solver, official, features, negative_features, labels):
    "u* [E, K] from the official `solver` (its greedy search), the image features standing in for the images."
    lab2cname = {i: n for i, n in enumerate(GOLDEN_CLASSNAMES)}
    score = {GOLDEN_CLASSNAMES[y]: GOLDEN_CLASSNAMES[n] for y, n in zip(LABELS, NEGATIVE_CLASSES)}
    solver.set_args = lambda: (types.SimpleNamespace(root="data/golden", seed=1, opts=[]), types.SimpleNamespace(COCOOPCF="false"))
    solver.np = types.SimpleNamespace(load=lambda path, allow_pickle=False: np.array(lab2cname if "lab2cname" in path else score))
    save, torch.save = torch.save, lambda *a, **k: None
    try: u = solver.solver(SolverModel(official), features, negative_features, labels)
    finally: torch.save = save
    return u[:official.visual.output_dim]                                 # it returns u.t().repeat(4, 1) for 4 GPUs

def columns_cfgen(official_cfgen):
    "The official cfgen with the features as columns [E, B]: per-dimension mixing."
    def cfgen(x, nx, u, y, use_cuda=True):
        xp, uy = official_cfgen(x.T, nx.T, u, y)
        return xp.T, uy
    return cfgen

def set_learned(model, g):
    with torch.no_grad():
        pl = model.prompt_learner
        pl.ctx.copy_(0.3 * torch.randn(pl.ctx.shape, generator=g))
        for p in pl.meta_net.parameters(): p.copy_(0.1 * torch.randn(p.shape, generator=g))
        pl.u.copy_(1 + 0.5 * torch.randn(pl.u.shape, generator=g))       # some above 1 (clamped) and some below
    return {"ctx": pl.ctx.detach().clone(), "u": pl.u.detach().clone(),
            **{f"meta_net.{k}": v.detach().clone() for k, v in pl.meta_net.state_dict().items()}}

def training_terms(cf, model, images, ust, negatives, labels, recorded):
    "Per sample (batch size 1): the loss, its contrast and norm terms, and the summed gradients."
    losses, contrasts, norms = [], [], []
    xloss, cfgen = cf.xloss_compute, cf.cfgen
    cf.xloss_compute = lambda *a: recorded.setdefault("x", []).append(xloss(*a)) or recorded["x"][-1]
    def recording_cfgen(*a, **k):
        xp, uy = cfgen(*a, **k); recorded.setdefault("u", []).append(uy); return xp, uy
    cf.cfgen = recording_cfgen
    model.train(); model.zero_grad()
    for i in range(len(labels)):
        recorded.clear()
        loss = model(images[i:i + 1], ust, negatives[i:i + 1], labels[i:i + 1]).sum()
        loss.backward()
        losses.append(loss.detach()); contrasts.append(recorded["x"][0].mean().detach()); norms.append(recorded["u"][0].norm(dim=0)[0].detach())
    cf.xloss_compute, cf.cfgen = xloss, cfgen
    pl = model.prompt_learner
    grads = {"grad_ctx": pl.ctx.grad.clone(), "grad_u": pl.u.grad.clone(),
             **{f"grad_meta_net.{k}": p.grad.clone() for k, p in pl.meta_net.named_parameters()}}
    return dict(loss=torch.stack(losses), contrast=torch.stack(contrasts), mask_norm=torch.stack(norms), **grads)

def run_official(mirror, images, negatives):
    out = {}
    cuda = torch.Tensor.cuda
    torch.Tensor.cuda = lambda self, *a, **k: self
    try:
        with official_checkout(mirror) as root:
            solver, cf = load_official(Path(root))
            from clip import clip as clip_api, model as clip_module
            official = build_official(clip_module)
            labels = torch.tensor(LABELS)
            with torch.no_grad():
                features, negative_features = official.visual(images), official.visual(negatives)       # unnormalised
                out["name_features"] = official.encode_text(clip_api.tokenize(GOLDEN_CLASSNAMES))
            ust = official_mask(solver, official, features.clone(), negative_features.clone(), labels)
            node = types.SimpleNamespace
            cfg = node(TRAINER=node(COCOOP=node(N_CTX=4, CTX_INIT="a photo of a", PREC="fp32")), INPUT=node(SIZE=(96, 96)))
            model = cf.CustomCLIP(cfg, GOLDEN_CLASSNAMES, official)
            for p in model.parameters(): p.requires_grad_(False)
            for p in model.prompt_learner.parameters(): p.requires_grad_(True)
            model.prompt_learner.token_prefix.requires_grad_(False); model.prompt_learner.token_suffix.requires_grad_(False)
            learned = set_learned(model, torch.Generator().manual_seed(30))
            model.eval()
            with torch.no_grad(): out["logits"] = model(images)
            recorded = {}
            asis = training_terms(cf, model, images, ust, negatives, labels, recorded)
            official_cfgen, cf.cfgen = cf.cfgen, columns_cfgen(cf.cfgen)
            intended = training_terms(cf, model, images, ust, negatives, labels, recorded)
            cf.cfgen = official_cfgen
    finally:
        torch.Tensor.cuda = cuda
    out.update(features=features, negative_features=negative_features, u_star=ust.T[labels], **intended)
    out.update({f"asis_{k}": asis[k] for k in ("loss", "contrast", "mask_norm")})
    return out, learned

if __name__ == "__main__":
    torch.set_num_threads(1)
    mirror = sys.argv[1]
    both = golden_images(2 * len(LABELS))
    images, negatives = both[:len(LABELS)], both[len(LABELS):]
    out, learned = run_official(mirror, images, negatives)
    print("u* copies", (out["u_star"] > 0).sum(-1).tolist(), "dimensions; loss", out["loss"].tolist(), "as written", out["asis_loss"].tolist())
    save_golden("cpl", dict(image_sum=both.double().sum(), labels=torch.tensor(LABELS), negative_classes=torch.tensor(NEGATIVE_CLASSES),
                            **{f"learned.{k}": v for k, v in learned.items()}, **out),
                mirror, ["CPL/trainers/cocoopcf.py", "CPL/utils/solver.py", "CPL/Dassl.pytorch/dassl/utils/tools.py", "CPL/clip/model.py"],
                __file__, meta=dict(classnames=GOLDEN_CLASSNAMES, n_ctx=4, ctx_init="a photo of a", lam=1, control_scale=0.07,
                                    images=f"golden_images({2 * len(LABELS)}): samples then negatives", batch_size=1,
                                    note="imports patched (syntax error, missing submodule); cfgen called with features as columns"))
