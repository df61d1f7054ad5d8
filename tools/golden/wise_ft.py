"""WiSE-FT references from the official code (mlfoundations/wise-ft: src/wise_ft.py, `_merge`).

    python tools/golden/wise_ft.py MIRROR_OF_mlfoundations/wise-ft

The official `_merge(alpha, theta_0, theta_1, fishers=None, fisher_floor)` on two seeded state dicts shaped like a
fine-tuned encoder with BatchNorm and a head: float weights, BatchNorm's running statistics and its integer
`num_batches_tracked`. The merged entries are stored as `load_state_dict` would write them into the model (integer
buffers cast back to their dtype). `src/wise_ft.py`'s other imports (training, datasets, evaluation; they need the
`wilds` package) are stubbed: only `_merge` runs."""
import sys
import types
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from tools.golden.common import official_checkout, save_golden

ALPHAS = (0.0, 0.37, 1.0)


def state_dicts(seed=0):
    "theta_0 (zero-shot) and theta_1 (fine-tuned): a conv + BatchNorm + head, every entry changed by fine-tuning."
    g = torch.Generator().manual_seed(seed)
    shapes = {"conv1.weight": (4, 3, 3, 3), "bn1.weight": (4,), "bn1.bias": (4,), "bn1.running_mean": (4,), "bn1.running_var": (4,),
              "head.weight": (3, 4), "head.bias": (3,)}
    zero = {k: torch.randn(s, generator=g) for k, s in shapes.items()}
    zero["bn1.running_var"] = zero["bn1.running_var"].exp()
    tuned = {k: v + 0.3 * torch.randn(v.shape, generator=g) for k, v in zero.items()}
    tuned["bn1.running_var"] = zero["bn1.running_var"] * torch.randn(4, generator=g).mul(0.3).exp()
    zero["bn1.num_batches_tracked"], tuned["bn1.num_batches_tracked"] = torch.tensor(0), torch.tensor(13)
    return zero, tuned


def official(mirror):
    zero, tuned = state_dicts()
    stubs = {"src.models.eval": "evaluate", "src.models.finetune": "finetune", "src.models.utils": "fisher_load",
             "src.models.zeroshot": "get_zeroshot_classifier", "src.args": "parse_arguments"}
    saved = dict(sys.modules)
    try:
        with official_checkout(mirror):
            for name, attr in stubs.items():
                module = types.ModuleType(name); setattr(module, attr, None); sys.modules[name] = module
            modeling = types.ModuleType("src.models.modeling")
            modeling.ClassificationHead = modeling.ImageEncoder = modeling.ImageClassifier = None
            sys.modules["src.models.modeling"] = modeling
            from src.wise_ft import _merge
            merged = {alpha: _merge(alpha, zero, tuned, None, 1e-8) for alpha in ALPHAS}
    finally:
        for k in list(sys.modules):
            if k not in saved: del sys.modules[k]
    tensors = {f"zero.{k}": v for k, v in zero.items()} | {f"tuned.{k}": v for k, v in tuned.items()}
    for alpha, theta in merged.items():
        tensors |= {f"merged_{alpha}.{k}": v.to(zero[k].dtype) for k, v in theta.items()}     # as load_state_dict stores it
    return tensors


if __name__ == "__main__":
    mirror = sys.argv[1]
    save_golden("wise_ft", official(mirror), mirror, ["src/wise_ft.py"], __file__,
                meta=dict(alphas=list(ALPHAS), note="merged_{alpha}.{key}: the official merge of zero.{key} and tuned.{key}"))
