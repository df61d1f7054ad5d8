"""Running official code written for a GPU on the CPU, and reading what it computes without changing it.

`cuda_on_cpu()` makes `.cuda()` and `.to('cuda')` leave tensors and modules where they are; `recording(obj, name)`
wraps a function so that every call's arguments are kept (official scripts often only print their logits);
`returned_locals(function_name)` keeps the local variables of a function when it returns."""
import contextlib
import sys

import torch
from torch import nn


def _is_cuda(device):
    return (isinstance(device, str) and device.startswith("cuda")) or (isinstance(device, torch.device) and device.type == "cuda")


@contextlib.contextmanager
def cuda_on_cpu():
    "`.cuda()`, `.to('cuda')` and `nn.Module.cuda()` become no-ops for the duration of the block."
    tensor_cuda, tensor_to, module_cuda = torch.Tensor.cuda, torch.Tensor.to, nn.Module.cuda
    def to(self, *args, **kwargs):
        args = tuple("cpu" if _is_cuda(a) else a for a in args)
        if _is_cuda(kwargs.get("device")): kwargs["device"] = "cpu"
        return tensor_to(self, *args, **kwargs)
    torch.Tensor.cuda, torch.Tensor.to, nn.Module.cuda = (lambda self, *a, **k: self), to, (lambda self, *a, **k: self)
    try: yield
    finally: torch.Tensor.cuda, torch.Tensor.to, nn.Module.cuda = tensor_cuda, tensor_to, module_cuda


def top1_accuracy(output, target, *args, **kwargs):
    "Top-1 accuracy in percent, as the official `cls_acc` (whose `float(ndarray[1])` fails under NumPy 2) returns it."
    return 100.0 * float((output.argmax(1) == target).float().mean())


def topk_accuracies(output, label, n, topk=(1, 5)):
    "CALIP's `accuracy` (percent correct within each top-k), without its NumPy-2-incompatible `float(ndarray[1])`."
    pred = output.topk(max(topk), 1, True, True)[1].t()
    correct = pred.eq(label.view(1, -1).expand_as(pred))
    return tuple(100 * float(correct[:k].reshape(-1).float().sum()) / n for k in topk)


@contextlib.contextmanager
def recording(owner, name, instead=None):
    "Replace `owner.name` by a wrapper that appends each call's positional arguments to the yielded list (and calls `instead` if given)."
    original, calls = getattr(owner, name), []
    def wrapper(*args, **kwargs):
        calls.append(tuple(a.detach().clone() if torch.is_tensor(a) else a for a in args))
        return (instead or original)(*args, **kwargs)
    setattr(owner, name, wrapper)
    try: yield calls
    finally: setattr(owner, name, original)


@contextlib.contextmanager
def returned_locals(*function_names):
    "Keep `{name: [locals at each return]}` of the functions called `function_names` (and their return values as `'<return>'`)."
    kept = {n: [] for n in function_names}
    def profile(frame, event, arg):
        if event == "return" and frame.f_code.co_name in kept:
            kept[frame.f_code.co_name].append({**frame.f_locals, "<return>": arg})
    previous = sys.getprofile()
    sys.setprofile(profile)
    try: yield kept
    finally: sys.setprofile(previous)


class RecordingAdamW(torch.optim.AdamW):
    "torch's AdamW (the official default settings untouched) that keeps each step's gradients and the parameters after it."
    steps = []
    def step(self, closure=None):
        grads = [p.grad.detach().clone() for g in self.param_groups for p in g["params"]]
        lrs = [g["lr"] for g in self.param_groups]
        out = super().step(closure)
        RecordingAdamW.steps.append(dict(grads=grads, lr=lrs[0], params=[p.detach().clone() for g in self.param_groups for p in g["params"]]))
        return out


@contextlib.contextmanager
def recording_adamw():
    "`torch.optim.AdamW` records its steps in the yielded list while the block runs."
    original = torch.optim.AdamW
    RecordingAdamW.steps = []
    torch.optim.AdamW = RecordingAdamW
    try: yield RecordingAdamW.steps
    finally: torch.optim.AdamW = original
