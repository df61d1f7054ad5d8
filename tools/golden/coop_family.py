"""What the CoOp-family golden scripts share: stand-ins for the Dassl imports at the top of the official trainer
modules, a minimal config object with the fields their PromptLearner/CustomCLIP read, a shim that lets Dassl's
schedulers run on current PyTorch, and the seeded learned values every script sets.

The official trainer modules (`trainers/coop.py`, `cocoop.py`, `kgcoop.py`, `prograd.py`) import
`TRAINER_REGISTRY, TrainerX` and a few helpers from Dassl only to register and train the trainer class; the classes
compared here (PromptLearner, TextEncoder, CustomCLIP, ProGradLoss) do not use them. So the stand-ins below are
empty, except where a script passes a real Dassl module (the schedule, ProGrad's gradient projection)."""
import contextlib
import importlib
import importlib.util
import sys
import types
from pathlib import Path

import torch

def namespace(**fields):
    "A config node: nested dicts become attribute access, like yacs' CfgNode."
    return types.SimpleNamespace(**{k: namespace(**v) if isinstance(v, dict) else v for k, v in fields.items()})

def official_cfg(image_size, n_ctx=16, ctx_init="", csc=False, position="end", dataset="ImageNet", **extra):
    "The fields the CoOp-family PromptLearners read (TRAINER.COOP / COCOOP, INPUT.SIZE, DATASET.NAME), fp32."
    trainer = dict(N_CTX=n_ctx, CTX_INIT=ctx_init, CSC=csc, CLASS_TOKEN_POSITION=position, PREC="fp32", W=8.0)
    return namespace(TRAINER=dict(COOP=trainer, COCOOP=dict(trainer)), INPUT=dict(SIZE=(image_size, image_size)),
                     DATASET=dict(NAME=dataset), MODEL=dict(BACKBONE=dict(NAME="golden")), **extra)

class _Registry:
    def register(self, *args):
        return (lambda cls: cls) if not args else args[0]

def _module(name, **attrs):
    module = types.ModuleType(name); module.__dict__.update(attrs)
    return module

@contextlib.contextmanager
def dassl_stand_ins(**real):
    """Empty `dassl.*` modules for the names the official trainer modules import at the top; `real` passes real
    modules for some of them (e.g. `engine=` a module holding the real `TrainerX`)."""
    nothing = lambda *a, **k: None
    stubs = {"dassl": _module("dassl", __path__=[]),
             "dassl.engine": _module("dassl.engine", TRAINER_REGISTRY=_Registry(), TrainerX=object),
             "dassl.metrics": _module("dassl.metrics", compute_accuracy=lambda *a, **k: [torch.zeros(())]),
             "dassl.utils": _module("dassl.utils", load_pretrained_weights=nothing, load_checkpoint=nothing),
             "dassl.optim": _module("dassl.optim", build_optimizer=nothing, build_lr_scheduler=nothing)}
    for short, module in real.items(): stubs[f"dassl.{short}"] = module
    saved = {k: sys.modules.get(k) for k in stubs}
    sys.modules.update(stubs)
    try: yield stubs
    finally:
        for k, v in saved.items():
            if v is None: sys.modules.pop(k, None)
            else: sys.modules[k] = v

def load_file_as(name, path, stand_ins=()):
    "Import one official source file as module `name`, with `stand_ins` (module name -> attrs) for its heavy imports."
    saved = {k: sys.modules.get(k) for k in stand_ins}
    for k, attrs in stand_ins.items(): sys.modules[k] = _module(k, **attrs)
    try:
        spec = importlib.util.spec_from_file_location(name, str(path))
        module = importlib.util.module_from_spec(spec); sys.modules[name] = module
        spec.loader.exec_module(module)
        return module
    finally:
        for k, v in saved.items():
            if v is None: sys.modules.pop(k, None)
            else: sys.modules[k] = v

@contextlib.contextmanager
def scheduler_verbose_shim():
    """Dassl's warm-up schedulers call `_LRScheduler.__init__(optimizer, last_epoch, verbose)`; PyTorch >= 2.7 dropped
    `verbose`. This base class accepts and ignores it (it only printed), so Dassl's own code runs unchanged."""
    import torch.optim.lr_scheduler as lr_scheduler
    original = lr_scheduler._LRScheduler
    class _LRSchedulerAcceptingVerbose(lr_scheduler.LRScheduler):
        def __init__(self, optimizer, last_epoch=-1, verbose=False): super().__init__(optimizer, last_epoch)
    lr_scheduler._LRScheduler = _LRSchedulerAcceptingVerbose
    try: yield
    finally: lr_scheduler._LRScheduler = original

@contextlib.contextmanager
def cpu_only():
    "Make `.cuda()` a no-op on modules and tensors (KgCoOp and ProGrad move their zero-shot CLIP to CUDA)."
    module_cuda, tensor_cuda = torch.nn.Module.cuda, torch.Tensor.cuda
    torch.nn.Module.cuda = lambda self, *a, **k: self
    torch.Tensor.cuda = lambda self, *a, **k: self
    try: yield
    finally: torch.nn.Module.cuda, torch.Tensor.cuda = module_cuda, tensor_cuda

def import_trainer(module_name, **real):
    "Import an official `trainers/<name>.py` (its repository root on sys.path) behind Dassl stand-ins."
    with dassl_stand_ins(**real):
        sys.modules.pop(module_name, None)
        return importlib.import_module(module_name)

def seeded_like(tensor, seed, std=0.02):
    "A seeded random tensor shaped like `tensor`: learned values that a zero or word initialisation cannot hide."
    return torch.randn(tensor.shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float32) * std

def golden_labels(n, n_classes, seed=0):
    "Seeded labels for the golden images."
    return torch.randint(0, n_classes, (n,), generator=torch.Generator().manual_seed(2000 + seed))

INPUTS_NOTE = "images: golden_images({n}) (seeded; the test regenerates them and checks images_sum); labels stored here"

def reference_images(n):
    "The golden images [n, 3, 96, 96] every CoOp-family reference is computed on (regenerated, not stored)."
    from tools.golden.common import golden_images
    return golden_images(n)

def inputs_meta(images):
    "What the test needs to regenerate the inputs and check they are the same."
    return dict(inputs=INPUTS_NOTE.format(n=len(images)), images_sum=round(float(images.double().sum()), 6))

def image_size():
    from tools.golden.common import GOLDEN_CLIP_CONFIG
    return GOLDEN_CLIP_CONFIG["vision_cfg"]["image_size"]

def sub_root(root, folder):
    "A folder inside an unpacked mirror, put first on sys.path (ProGrad's repository keeps its code in subfolders)."
    path = Path(root) / folder
    sys.path.insert(0, str(path))
    return path

class _StepRecorder:
    "The part of Dassl's TrainerBase a forward_backward reaches: zero the grads, backward, record the loss (no step)."
    def __init__(self): self.losses = []
    def model_backward_and_update(self, loss, names=None):
        for p in self.model.parameters(): p.grad = None
        loss.backward(); self.losses.append(loss.detach())
    def update_lr(self, names=None): raise AssertionError("the schedule must not step mid-epoch here")

def run_forward_backward(trainer_cls, model, cfg, images, labels, base=_StepRecorder, **attrs):
    """Run an official trainer's own `forward_backward` on one batch, on an object carrying only what it reads
    (model, cfg, device, batch counters, and `attrs`); `base` supplies the backward (Dassl's TrainerBase for ProGrad)."""
    methods = {k: v for k, v in vars(trainer_cls).items() if callable(v) and not k.startswith("__")}
    runner = type(f"Official{trainer_cls.__name__}", (base,), methods)()
    runner.model, runner.cfg, runner.device, runner.batch_idx, runner.num_batches = model, cfg, torch.device("cpu"), 0, 2
    runner.__dict__.update(attrs)
    summary = runner.forward_backward({"img": images, "label": labels})
    return runner, summary
