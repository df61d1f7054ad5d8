"""TeCoA's official PGD attack, prompters and loss on the golden backbone.

    python tools/golden/tecoa.py MIRROR_OF_cvlab-columbia/ZSRobust4FoundationModel

Runs, from the mirror: `attacks.py: attack_pgd` (L-infinity PGD on [0, 1] pixels, CLIP normalisation inside),
`models/prompters.py: PadPrompter, TokenPrompter`, `models/model.py: multiGPU_CLIP, clip_img_preprocessing` and the
patched `replace/model.py` (token prompt appended after the patch tokens, before `ln_pre`). Three things are
adapted at run time, none of which changes a formula:
- the repository expects its `replace/` files copied over an installed `clip` package: `clip.model` is
  `replace/model.py` loaded here (its tokenizer file is not in the repository; the texts are tokenised with
  OpenAI's BPE through open_clip, the same tokens);
- the code calls `.cuda()` at import and in `PadPrompter.forward`: `Tensor.cuda` is the identity while it runs;
- `clip_img_preprocessing` resizes every input to 224 (ViT-B/32); the golden ViT is 96 px, so the resize is
  to 96, which is the identity (bicubic at the same size copies), as clipexplore's inputs are already at size.
The random start of the attack is drawn once (seeded) and given to both sides."""
import importlib.util
import sys
import types
from pathlib import Path
from types import SimpleNamespace

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from tools.golden.common import GOLDEN_CLASSNAMES, GOLDEN_CLIP_CONFIG, build_official, official_checkout, save_golden

TEMPLATE = "This is a photo of a {}"                  # visual_prompt.py / finetuning.py
EPS, STEP, STEPS = 4 / 255, 1 / 255, 3               # a budget the clamp reaches in 3 steps
N_TOKENS, PAD = 5, 6
SIZE = GOLDEN_CLIP_CONFIG["vision_cfg"]["image_size"]
BLOCK = 3                                            # inputs drawn at 32 px and repeated 3x3: a small reference
GRADIENTS = ("class_embedding", "ln_pre.weight", "ln_post.weight", "ln_post.bias", "transformer.resblocks.3.mlp.c_proj.bias")
CROP = (slice(None), slice(None), slice(0, 16), slice(0, 16))     # a corner of full-size results (padding included)

def upsample(low):
    "[B, 3, 32, 32] -> [B, 3, 96, 96] by repeating each value in a 3 x 3 block (exact; the test does the same)."
    return low.repeat_interleave(BLOCK, dim=2).repeat_interleave(BLOCK, dim=3)

def golden_inputs(n=2):
    "Pixels in [0, 1] (low resolution), labels and the attack's random start U(-eps, eps), seeded."
    g = torch.Generator().manual_seed(7)
    low = SIZE // BLOCK
    pixels = torch.rand(n, 3, low, low, generator=g)
    labels = torch.randint(len(GOLDEN_CLASSNAMES), (n,), generator=g)
    start = torch.rand(n, 3, low, low, generator=g) * 2 * EPS - EPS
    return pixels, labels, start

def text_tokens():
    import open_clip
    return open_clip.tokenizer.SimpleTokenizer(context_length=77)([TEMPLATE.format(c) for c in GOLDEN_CLASSNAMES])

def load_replace_clip(root):
    "The repository's patched `clip/model.py` as the module `clip.model`."
    package = types.ModuleType("clip"); package.__path__ = []
    spec = importlib.util.spec_from_file_location("clip.model", Path(root) / "replace" / "model.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["clip"], sys.modules["clip.model"], package.model = package, module, module
    spec.loader.exec_module(module)
    return module

def official_start(start):
    "Make the official `torch.zeros_like(X).cuda().uniform_(-eps, eps)` draw exactly `start`."
    real_uniform = torch.Tensor.uniform_
    def uniform_(self, a=0.0, b=1.0, generator=None):
        if self.shape == start.shape and a == -EPS and b == EPS: return self.copy_(start)
        return real_uniform(self, a, b, generator=generator)
    return uniform_

def run(mirror):
    torch.manual_seed(0)
    pixels_low, labels, start_low = golden_inputs()
    pixels, start = upsample(pixels_low), upsample(start_low)
    tokens = text_tokens()
    out = dict(pixels_low=pixels_low, labels=labels, start_low=start_low)
    real_cuda, real_upsample, real_uniform = torch.Tensor.cuda, F.upsample, torch.Tensor.uniform_
    real_interpolate = F.interpolate
    with official_checkout(mirror) as root:
        clip_model = load_replace_clip(root)
        torch.Tensor.cuda = lambda self, *a, **k: self
        F.upsample = lambda x, size=None, mode="nearest", **k: real_interpolate(x, size=(SIZE, SIZE), mode=mode, **k)
        torch.Tensor.uniform_ = official_start(start)
        try:
            from attacks import attack_pgd
            from models.model import clip_img_preprocessing, multiGPU_CLIP
            from models.prompters import PadPrompter, TokenPrompter
            criterion = torch.nn.CrossEntropyLoss()

            # fine-tuning: the attack on plain CLIP, then the loss on the adversarial images and its visual gradients
            model = build_official(clip_model, prompt_len=0)
            delta = attack_pgd(None, model, None, criterion, pixels, labels, tokens, STEP, STEPS, "l_inf", epsilon=EPS)
            out["adversarial_ft_crop"] = (pixels + delta.detach())[CROP]
            model.zero_grad()
            logits, _ = multiGPU_CLIP(model, clip_img_preprocessing(pixels + delta.detach()), tokens, None)
            loss = criterion(logits, labels); loss.backward()
            out.update(logits_ft=logits.detach(), loss_ft=loss.detach())
            for name in GRADIENTS:
                out[f"grad_ft.{name}"] = dict(model.visual.named_parameters())[name].grad.clone()

            # prompts: the padding prompter (on normalised images), the token prompter (before ln_pre), both together
            torch.manual_seed(1)
            padder = PadPrompter(SimpleNamespace(prompt_size=PAD, image_size=SIZE))
            token = TokenPrompter(N_TOKENS)
            with torch.no_grad(): token.prompt.normal_(0, 1)
            out.update({f"pad.{k}": v.detach().clone() for k, v in padder.named_parameters()}, token=token.prompt.detach().clone())
            prompted_model = build_official(clip_model, prompt_len=N_TOKENS)
            normalised = clip_img_preprocessing(pixels)
            out["padded_crop"] = padder(normalised).detach()[CROP]
            with torch.no_grad():
                out["logits_padding"] = multiGPU_CLIP(model, padder(normalised), tokens, None)[0]
                out["logits_token"] = multiGPU_CLIP(prompted_model, normalised, tokens, token())[0]
            logits, _ = multiGPU_CLIP(prompted_model, padder(normalised), tokens, token())
            loss = criterion(logits, labels); loss.backward()
            out.update(logits_both=logits.detach(), loss_both=loss.detach(), grad_token=token.prompt.grad.clone(),
                       **{f"grad_pad.{k}": v.grad.clone() for k, v in padder.named_parameters()})
            delta = attack_pgd(padder, prompted_model, token, criterion, pixels, labels, tokens, STEP, STEPS, "l_inf", epsilon=EPS)
            out["adversarial_both_crop"] = (pixels + delta.detach())[CROP]
            with torch.no_grad():
                adversarial = padder(clip_img_preprocessing(pixels + delta))
                out["logits_adversarial_both"] = multiGPU_CLIP(prompted_model, adversarial, tokens, token())[0]
        finally:
            torch.Tensor.cuda, F.upsample, torch.Tensor.uniform_ = real_cuda, real_upsample, real_uniform
    return out

if __name__ == "__main__":
    torch.set_num_threads(1)
    mirror = sys.argv[1]
    out = run(mirror)
    print(f"PGD: loss on adversarial images {out['loss_ft']:.4f}; prompted loss {out['loss_both']:.4f}")
    save_golden("tecoa", out, mirror, ["attacks.py", "models/prompters.py", "models/model.py", "replace/model.py", "visual_prompt.py"],
                __file__, meta=dict(template=TEMPLATE, classnames=list(GOLDEN_CLASSNAMES), eps=EPS, step_size=STEP, steps=STEPS,
                                    n_tokens=N_TOKENS, pad=PAD, block=BLOCK, crop="[:, :, :16, :16]", gradients=list(GRADIENTS), loss="cross entropy (visual_prompt.py: train)"))
