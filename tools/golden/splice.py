"""SpLiCE's official decomposition on the golden backbone's embeddings.

    python tools/golden/splice.py MIRROR_OF_AI4LIFE-GROUP/SpLiCE

Runs `splice/model.py: SPLICE.encode_image` (normalise, subtract the image mean, renormalise, solve, recompose,
cosine) with both official solvers: 'skl' (scikit-learn's positive Lasso, alpha = l1 / (2 d), per image) and 'admm'
(`splice/admm.py`, rho 5, 2000 iterations; its hard-coded device="cuda" is replaced by the CPU). The concept
dictionary is made as `splice/splice.py: load` makes it (raw concept texts encoded, normalised, their mean
subtracted, renormalised): those two lines are restated here because `load` downloads its vocabulary and mean.
The image mean is the mean of the normalised features of a separate reference set (the official means, e.g.
`data/means/open_clip_ViT-B-32_image.pt`, have norm 0.56: a mean of normalised features)."""
import sys
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from tools.golden.common import GOLDEN_CLASSNAMES, golden_images, golden_open_clip, official_checkout, save_golden

CONCEPTS = list(GOLDEN_CLASSNAMES) + ["cat", "bird", "car", "tree", "flower", "water", "grass", "snow", "sky", "road",
                                     "red", "green", "blue", "yellow", "black", "white", "striped", "spotted", "wooden",
                                     "metal", "night", "beach", "forest", "city", "kitchen", "toy", "drawing", "painting",
                                     "cartoon", "sketch", "photo", "close-up"]
L1 = 0.05                                          # random weights correlate weakly: 0.25 would zero every weight

def embeddings():
    "Raw concept text embeddings, image features of the images to decompose and of a reference set (open_clip, golden weights)."
    import open_clip
    model, tokenizer = golden_open_clip(), open_clip.tokenizer.SimpleTokenizer(context_length=77)
    with torch.no_grad():
        concepts = torch.cat([model.encode_text(tokenizer(c)) for c in CONCEPTS])       # one at a time, as `load`
        images = model.encode_image(golden_images(6))
        reference = model.encode_image(golden_images(48, seed=1))
    return concepts, images, reference

def run(mirror):
    concepts_raw, images, reference = embeddings()
    image_mean = F.normalize(reference, dim=1).mean(0)
    dictionary = F.normalize(concepts_raw, dim=1)                                     # splice.py: load
    dictionary = F.normalize(dictionary - dictionary.mean(0), dim=1)
    out = dict(concepts_raw=concepts_raw, images=images, image_mean=image_mean, dictionary=dictionary)
    with official_checkout(mirror):
        from splice.admm import ADMM
        from splice.model import SPLICE
        for solver in ("skl", "admm"):
            model = SPLICE(image_mean, dictionary, solver="skl", l1_penalty=L1, return_weights=True, return_cosine=True)
            if solver == "admm":                       # as SPLICE.__init__ builds it, on the CPU
                model.solver, model.l1_penalty = "admm", L1
                model.admm = ADMM(rho=5, l1_penalty=L1, tol=1e-6, max_iter=2000, device="cpu", verbose=False)
                torch.manual_seed(0)                   # ADMM starts from randn iterates
            weights, cosine_sum = model.encode_image(images)
            recomposed = model.recompose_image(weights)
            out[f"weights_{solver}"] = weights.float()
            out[f"cosine_{solver}"] = (recomposed * F.normalize(images, dim=1)).sum(1)       # per image: diag(recon @ image.T)
            out[f"cosine_sum_{solver}"] = cosine_sum.float()
    return out

if __name__ == "__main__":
    torch.set_num_threads(1)
    mirror = sys.argv[1]
    out = run(mirror)
    for solver in ("skl", "admm"):
        l0 = (out[f"weights_{solver}"] > 0).sum(1).float()
        print(f"{solver}: L0 {l0.tolist()}, cosine {[round(c, 3) for c in out[f'cosine_{solver}'].tolist()]}")
    print("max |skl - admm| weight:", float((out["weights_skl"] - out["weights_admm"]).abs().max()))
    save_golden("splice", out, mirror, ["splice/model.py", "splice/admm.py", "splice/splice.py"], __file__,
                meta=dict(concepts=CONCEPTS, l1=L1, reference_images="golden_images(48, seed=1)", images="golden_images(6)",
                          admm=dict(rho=5, tol=1e-6, max_iter=2000), skl="Lasso(alpha=l1/(2d), positive=True, fit_intercept=False, "
                          "max_iter=10000, tol=1e-6)"))
