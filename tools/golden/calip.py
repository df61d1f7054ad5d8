"""CALIP references from the official code (ZiyuGuo99/CALIP: run_imagenet.py, clip/model.py, utils.py).

    python tools/golden/calip.py MIRROR_OF_ZiyuGuo99/CALIP

The official script's `main(cfg)` runs as it is, on the golden backbone built by its own modified `clip/model.py`
(whose ViT returns every token after `ln_post` and `proj`, as its ResNet returns every position of the attention
pool): `clip.load`, the ImageNet folder and the data loader are replaced by the golden model and four images, and
the 7 ImageNet templates are used with the golden class names. `main` only prints, so the script reads its
`get_logits` return value (visual-aware and text-aware logits), its first `accuracy` call (zero-shot logits) and the
one at a chosen grid point (the blended logits), and the grid lists from its locals."""
import os
import sys
import tempfile
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from tools.golden.common import GOLDEN_CLASSNAMES, build_official, golden_images, official_checkout, save_golden
from tools.golden.run_official import cuda_on_cpu, recording, returned_locals, topk_accuracies

GRID_POINT = (137, 61)            # (beta2 index, beta3 index) of the official 200 x 200 grid whose blended logits are kept


def official(mirror):
    images = golden_images(4, seed=3)
    labels = torch.tensor([0, 1, 2, 3])
    cwd = os.getcwd()
    with official_checkout(mirror), cuda_on_cpu(), tempfile.TemporaryDirectory() as tmp:
        os.chdir(tmp)                                                 # the script caches features under ./cache
        try:
            import run_imagenet
            from clip import model as clip_model
            model = build_official(clip_model)
            run_imagenet.clip.load = lambda name, *a, **k: (model, None)
            run_imagenet.torchvision.datasets.ImageNet = lambda *a, **k: None
            data_loader = run_imagenet.torch.utils.data.DataLoader
            run_imagenet.torch.utils.data.DataLoader = lambda *a, **k: [(images, labels)]
            run_imagenet.CLASS_NAME["golden"] = GOLDEN_CLASSNAMES
            run_imagenet.TEMPLATE["golden"] = run_imagenet.TEMPLATE["imagenet"]
            cfg = dict(backbone="golden", dataset="golden", data_root="", load_cache=False, search=True, beta2=2.0, beta3=0.1)
            try:
                with recording(run_imagenet, "accuracy", topk_accuracies) as calls, returned_locals("get_logits", "main") as kept:
                    run_imagenet.main(cfg)
            finally:
                run_imagenet.torch.utils.data.DataLoader = data_loader
            templates = list(run_imagenet.TEMPLATE["imagenet"])
        finally:
            os.chdir(cwd)
    visual_aware, text_aware = kept["get_logits"][0]["<return>"]
    main_locals = kept["main"][0]
    i, j = GRID_POINT
    beta2, beta3 = main_locals["beta2_list"][i], main_locals["beta3_list"][j]
    blended = calls[1 + i * len(main_locals["beta3_list"]) + j][0]                   # call 0 is the zero-shot accuracy
    tensors = dict(labels=labels, zero_shot_logits=calls[0][0], visual_aware_logits=visual_aware, text_aware_logits=text_aware,
                   blended_logits=blended, beta2_grid=torch.tensor(main_locals["beta2_list"], dtype=torch.float64),
                   beta3_grid=torch.tensor(main_locals["beta3_list"], dtype=torch.float64),
                   text_features=main_locals["feat_t"].t())
    return tensors, dict(beta2=beta2, beta3=beta3, templates=templates)


if __name__ == "__main__":
    torch.set_num_threads(1)
    mirror = sys.argv[1]
    tensors, found = official(mirror)
    save_golden("calip", tensors, mirror, ["run_imagenet.py", "clip/model.py", "utils.py", "class_template.py", "configs/imagenet.yaml"],
                __file__, meta=dict(images="golden_images(4, seed=3)", grid_point=GRID_POINT, **found,
                                    note="logits use the official hard-coded 100; ViT patch tokens (the official configs use RN101's attention-pool positions)"))
