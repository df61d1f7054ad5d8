"""PromptSRC references from muzairkhattak/PromptSRC: logits, each loss term and the total, the gradients of the
learned prompts, and EPOCHS official training steps with Gaussian prompt aggregation (GPA).

    python tools/golden/promptsrc.py MIRROR_OF_muzairkhattak/PromptSRC MIRROR_OF_KaiyangZhou/Dassl.pytorch

Everything runs the official code: `PromptSRC.build_model` (its three CLIP copies, the 60-template teacher, Dassl's
real SGD from `build_optimizer`, the Gaussian weights), then `PromptSRC.forward_backward` once per epoch, each epoch
one batch of the golden images, so that the official GPA bookkeeping accumulates and finally loads the aggregate.
The config is the official base-to-new one (Dassl's defaults, the repository's `extend_cfg`, then
`configs/trainers/PromptSRC/vit_b16_c2_ep20_batch4_4+4ctx.yaml`: 4+4 tokens, loss weights 25 and 10) with these
changes for the golden backbone and a short run: image size 96, fp32, prompt depth DEPTH = 3 (of 4 layers), EPOCHS
epochs with GPA mean GPA_MEAN and std GPA_STD (official: 20 epochs, 15 and 1), learning rate LR held constant
(`update_lr` is a no-op and Dassl's scheduler is not built, since its warm-up wrapper passes torch 2's removed
`verbose` argument: the schedule has its own reference; official 0.0025 with warm-up and cosine). CLIP is
loaded by the official `load_clip_to_cpu` from a file holding the golden weights (its `_download` returns that
file). `.half()` and `.cuda()` are no-ops. The loss terms are read from the official calls of `F.cross_entropy`,
`F.l1_loss` and `F.kl_div`."""
import sys
import tempfile
import types
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from tools.golden.common import GOLDEN_CLASSNAMES, golden_images, mirror_provenance, official_checkout, official_state_dict, save_golden
from tools.golden.mpl import IMAGE_SIZE, LABELS, TEXT_STD, VISUAL_STD, fp32_on_cpu, official_cfg, seeded_, stub_dassl_engine

DEPTH, N_CTX, EPOCHS, GPA_MEAN, GPA_STD, LR, SEED = 3, 4, 4, 3, 1, 0.05, 4
CONFIG = "configs/trainers/PromptSRC/vit_b16_c2_ep20_batch4_4+4ctx.yaml"

class Recorder:
    "Stands in for the trainer module's `F`, keeping the value of every call of the loss functions in order."
    def __init__(self, functional, names=("cross_entropy", "l1_loss", "kl_div")):
        self.functional, self.names, self.calls = functional, names, []
    def __getattr__(self, attr):
        fn = getattr(self.functional, attr)
        if attr not in self.names: return fn
        def recorded(*args, **kwargs):
            out = fn(*args, **kwargs); self.calls.append((attr, out.detach().clone())); return out
        return recorded

def official_trainer(root, weights_file):
    "The official PromptSRC trainer after its own `build_model`, on the golden weights."
    from clip import clip
    import trainers.promptsrc as promptsrc
    clip._download = lambda url, *a, **k: weights_file
    promptsrc.build_lr_scheduler = lambda *args, **kwargs: None     # Dassl's warm-up wrapper fails on torch 2 (`verbose`); unused here
    cfg = official_cfg(root, CONFIG, {"INPUT.SIZE": (IMAGE_SIZE, IMAGE_SIZE), "TRAINER.PROMPTSRC.PREC": "fp32",
                                      "TRAINER.PROMPTSRC.PROMPT_DEPTH_VISION": DEPTH, "TRAINER.PROMPTSRC.PROMPT_DEPTH_TEXT": DEPTH,
                                      "TRAINER.PROMPTSRC.GPA_MEAN": GPA_MEAN, "TRAINER.PROMPTSRC.GPA_STD": GPA_STD,
                                      "OPTIM.MAX_EPOCH": EPOCHS, "OPTIM.LR": LR})
    trainer = object.__new__(promptsrc.PromptSRC)
    trainer.cfg, trainer.device = cfg, torch.device("cpu")
    trainer.dm = types.SimpleNamespace(dataset=types.SimpleNamespace(classnames=GOLDEN_CLASSNAMES))
    trainer.register_model = lambda *args, **kwargs: None
    trainer.build_model()
    trainer.update_lr = lambda *args, **kwargs: None
    return trainer, promptsrc, cfg

def learned(model):
    "What the official trainer trains: 'prompt_learner' or 'VPT' in the name, minus the frozen `ZS_image_encoder`."
    return {n: p for n, p in model.named_parameters() if p.requires_grad}

def ours_layout(tensors, depth=DEPTH):
    "Official per-layer tensors as clipexplore's `ctx` [n, D_t], `deep_text` [J-1, n, D_t], `visual` [J, n, D_v]."
    text = "text_encoder.transformer.resblocks.{}.VPT_shallow"
    vision = "image_encoder.transformer.resblocks.{}.VPT_shallow"
    return dict(ctx=tensors["prompt_learner.ctx"], deep_text=torch.stack([tensors[text.format(i)] for i in range(1, depth)]),
                visual=torch.stack([tensors["image_encoder.VPT"]] + [tensors[vision.format(i)] for i in range(1, depth)]))

def run(root):
    with tempfile.TemporaryDirectory() as tmp:
        weights_file = str(Path(tmp) / "golden.pt")
        torch.save(official_state_dict(), weights_file)
        trainer, promptsrc, cfg = official_trainer(root, weights_file)
    model, images = trainer.model, golden_images()
    params = learned(model)
    if sorted(ours_layout(params)) != ["ctx", "deep_text", "visual"] or len(params) != 1 + 2 * DEPTH - 1:
        raise RuntimeError(f"unexpected learned parameters {sorted(params)}")
    seeded_(params, SEED, lambda n: VISUAL_STD if n.startswith("image_encoder") else TEXT_STD)
    out = {f"initial_{k}": v.detach().clone() for k, v in ours_layout(params).items()}
    model.eval()
    with torch.no_grad(): out["logits"] = model(images)
    model.train()
    recorder = Recorder(promptsrc.F)
    promptsrc.F = recorder
    kept = []
    weighting = trainer.state_dict_weighting
    def keep(main_dict, weightage, prompt_only=False):
        kept.append((float(weightage), {k: main_dict[f"{k}"].clone() for k in params}))
        return weighting(main_dict, weightage, prompt_only)
    trainer.state_dict_weighting = keep
    batch = {"img": images, "label": LABELS}
    for epoch in range(EPOCHS):
        trainer.batch_idx, trainer.num_batches = 0, 1
        summary = trainer.forward_backward(batch)
        if epoch == 0:
            names = [name for name, _ in recorder.calls]
            if names != ["cross_entropy", "l1_loss", "l1_loss", "kl_div"]: raise RuntimeError(f"unexpected loss calls {names}")
            ce, l1_text, l1_image, kl_sum = [value for _, value in recorder.calls]
            out.update(ce=ce, l1_text=l1_text, l1_image=l1_image, kl=kl_sum / out["logits"].numel(), loss=torch.tensor(summary["loss"]))
            out.update({f"grad_{k}": v.clone() for k, v in ours_layout({n: p.grad for n, p in params.items()}).items()})
    out["gpa_weights"] = torch.tensor(trainer.gauss, dtype=torch.float64)
    if [w for w, _ in kept] != trainer.gauss.tolist(): raise RuntimeError("GPA weighted the epochs out of order")
    for epoch, (_, state) in enumerate(kept, 1):
        layout = ours_layout(state)
        out[f"epoch{epoch}_ctx"], out[f"epoch{epoch}_deep_text"] = layout["ctx"], layout["deep_text"]
    out.update({f"gpa_{k}": v.detach().clone() for k, v in ours_layout(params).items()})    # the model loaded the aggregate
    return out, cfg

if __name__ == "__main__":
    torch.set_num_threads(1)
    mirror, dassl = sys.argv[1], sys.argv[2]
    dassl_used = "{}@{}: dassl/config/defaults.py, dassl/optim/optimizer.py".format(*mirror_provenance(dassl))
    with official_checkout(mirror, dassl) as (root, _), fp32_on_cpu():
        stub_dassl_engine()
        torch.manual_seed(0)
        tensors, cfg = run(root)
        o = cfg.OPTIM
        print(f"loss {float(tensors['loss']):.6f} = ce {float(tensors['ce']):.4f} + 25 l1_text {float(tensors['l1_text']):.5f}"
              f" + 10 l1_image {float(tensors['l1_image']):.5f} + kl {float(tensors['kl']):.5f}; GPA weights {tensors['gpa_weights'].tolist()}")
        save_golden("promptsrc", tensors, mirror, ["trainers/promptsrc.py", "trainers/imagenet_templates.py", "clip/model.py", CONFIG, "train.py"],
                    __file__, meta=dict(dassl=dassl_used, depth=DEPTH, n_ctx=N_CTX, n_visual=N_CTX, ctx_init=cfg.TRAINER.PROMPTSRC.CTX_INIT,
                                        text_weight=cfg.TRAINER.PROMPTSRC.TEXT_LOSS_WEIGHT, image_weight=cfg.TRAINER.PROMPTSRC.IMAGE_LOSS_WEIGHT,
                                        epochs=EPOCHS, gpa_mean=GPA_MEAN, gpa_std=GPA_STD, lr=LR, momentum=o.MOMENTUM,
                                        weight_decay=o.WEIGHT_DECAY, classnames=GOLDEN_CLASSNAMES, labels=LABELS.tolist(),
                                        images="golden_images() (4, seed 0), the same batch every epoch",
                                        note="fp32 on CPU; learned values seeded; constant lr (update_lr no-op)"))
