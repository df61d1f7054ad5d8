"""SoftCPT references: task features, generated class contexts, logits over the union, the multi-task loss, gradients.

    python tools/golden/softcpt.py MIRROR_OF_kding1225/softcpt

Runs `trainers/mtcoop.py` (`CustomCLIP`: `TaskPromptLearner`, `PromptGen` "lin", per-task `PromptLearner`s;
`MTCoOp.mutitask_loss`) with the repository's own config (its vendored `dist/Dassl.pytorch` defaults, `train.py:extend_cfg`,
`configs/trainers/MTCoOp/rn50_ep50.yaml`) and the README's SoftCPT-NATA settings (`main_mtcoop.sh ... 0 False 4 False 16 False
lin 1`: no class context, shared 4-token task context, 16 generated context tokens) on the golden backbone.
"""
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from tools.golden.common import build_official, golden_images, official_checkout, save_golden
from tools.golden.official_stubs import load_function, stub_optional_imports
from tools.golden.recipes import dassl_recipe

TASKS = {"animal species": ["dog", "sea turtle", "red fox", "golden retriever"], "man-made objects": ["alarm clock", "tram"],
         "food or flower": ["pizza", "daisy"]}
LABELS = [("animal species", 2), ("man-made objects", 0), ("food or flower", 1), ("animal species", 0)]   # one per golden image
NATA = ["TRAINER.MTCOOP.CLASS_N_CTX", 0, "TRAINER.MTCOOP.CLASS_CSC", False, "TRAINER.MTCOOP.TASK_N_CTX", 4,
        "TRAINER.MTCOOP.TASK_CSC", False, "TRAINER.MTCOOP.N_CTX", 16, "TRAINER.MTCOOP.CSC", False,
        "TRAINER.MTCOOP.PG_TYPE", "lin", "TRAINER.MTCOOP.PG_RATIO", 1]

def union_labels():
    "Official multi-task labels [B, C]: one-hot within the sample's own task, -1 over every other task's classes."
    names = [c for cs in TASKS.values() for c in cs]
    label = torch.full((len(LABELS), len(names)), -1)
    start = {t: sum(len(c) for c in list(TASKS.values())[:i]) for i, t in enumerate(TASKS)}
    for b, (task, k) in enumerate(LABELS):
        label[b, start[task]:start[task] + len(TASKS[task])] = 0
        label[b, start[task] + k] = 1
    return label

PROJ_SAMPLE = (slice(None, None, 8), slice(None, None, 32))   # the meta-net is 256 x 8192: its gradient is compared on a grid

def learned_values():
    "The seeded learned values both sides load: task context [4, 512] and the meta-net's projection [E, 16 * 512]."
    g = torch.Generator().manual_seed(41)
    return 0.3 * torch.randn(4, 512, generator=g), 0.02 * torch.randn(256, 16 * 512, generator=g)

def softcpt_cfg(root):
    from dassl.config import get_cfg_default
    cfg = get_cfg_default()
    load_function(root / "train.py", "extend_cfg")(cfg)            # without train.py's dataset imports
    cfg.merge_from_file(str(root / "configs/trainers/MTCoOp/rn50_ep50.yaml"))
    cfg.merge_from_list(NATA)
    cfg.INPUT.SIZE = (96, 96)
    return cfg

if __name__ == "__main__":
    torch.set_num_threads(1)
    mirror = sys.argv[1]
    torch.manual_seed(0)
    images, label = golden_images(), union_labels()
    task_ctx, proj = learned_values()
    stub_optional_imports()
    with official_checkout(mirror) as root:
        sys.path.insert(0, str(root / "dist" / "Dassl.pytorch"))       # the Dassl the repository ships
        from clip import model as clip_model
        import trainers.mtcoop as mtcoop
        cfg = softcpt_cfg(root)
        model = mtcoop.CustomCLIP(cfg, list(TASKS), list(TASKS.values()), build_official(clip_model)).eval()
        for name, p in model.named_parameters():
            p.requires_grad_(any(k in name for k in ("prompt_learner", "prompt_gen")))   # as MTCoOp.build_model
        with torch.no_grad(): model.task_prompt_learner.ctx.copy_(task_ctx); model.prompt_gen.proj.copy_(proj)
        task_features = model.text_encoder(model.task_prompt_learner(), model.task_tokenized_prompts)
        contexts = model.prompt_gen(task_features)
        logits, selected = model(images, label)
        assert selected is None
        trainer = mtcoop.MTCoOp.__new__(mtcoop.MTCoOp)                # only the loss method's attributes, no data
        trainer.num_tasks, trainer.taskid2type = len(TASKS), ["sl"] * len(TASKS)
        trainer.cls_range = trainer.compute_cls_range([len(c) for c in TASKS.values()])
        loss, _ = trainer.mutitask_loss(logits, label)
        loss.backward()
        meta = dict(tasks=TASKS, task_n_ctx=cfg.TRAINER.MTCOOP.TASK_N_CTX, n_ctx=cfg.TRAINER.MTCOOP.N_CTX,
                    learned="tools/golden/softcpt.py:learned_values() (the projection is 8 MB)", task_csc=cfg.TRAINER.MTCOOP.TASK_CSC,
                    pg_type=cfg.TRAINER.MTCOOP.PG_TYPE, class_n_ctx=cfg.TRAINER.MTCOOP.CLASS_N_CTX, recipe=dassl_recipe(cfg),
                    images="golden_images()", images_sum=round(float(images.double().sum()), 6))
        grads = model.task_prompt_learner.ctx.grad.clone(), model.prompt_gen.proj.grad.clone()
    print(f"multi-task loss {float(loss):.4f}; logits {tuple(logits.shape)}")
    save_golden("softcpt", dict(union_label=label, task_ctx=task_ctx, task_features=task_features,
                                contexts=contexts, logits=logits, loss=loss, task_ctx_grad=grads[0], proj_grad_sample=grads[1][PROJ_SAMPLE]),
                mirror, ["trainers/mtcoop.py", "train.py", "configs/trainers/MTCoOp/rn50_ep50.yaml", "scripts/main_mtcoop.sh",
                         "README.md", "dist/Dassl.pytorch/dassl/config/defaults.py", "clip/model.py"], __file__, meta=meta)
