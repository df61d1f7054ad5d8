"""CLIP-ReID's official losses, identity prompts and retrieval metrics on identical inputs.

    python tools/golden/clipreid.py MIRROR_OF_Syliz517/CLIP-ReID

From the mirror: `loss/supcontrast.py: SupConLoss` (stage 1, image->text and text->image, temperature 1),
`loss/softmax_loss.py: CrossEntropyLabelSmooth` (ID loss, epsilon 0.1), `loss/triplet_loss.py: TripletLoss`
(batch-hard, margin 0.3), `utils/metrics.py: R1_mAP_eval` (mAP and CMC, same identity and camera removed, features
normalised, Euclidean distance), and `model/make_model_clipreid.py: PromptLearner, TextEncoder` on the golden backbone
built by the repository's `model/clip/model.py` (text features of "A photo of a X X X X person." per identity).
Run-time adaptations: `Tensor.cuda` is the identity (PromptLearner tokenises onto the GPU), `timm` (imported for
layers the text side does not use) is stubbed when it is not installed."""
import contextlib
import subprocess
import sys
import tempfile
import types
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from tools.golden.common import build_official, save_golden

FOLDERS = ("loss", "utils", "model")                  # the mirror lacks datasets/keypoint_*.txt (over 4 MiB): unpack these only

@contextlib.contextmanager
def official_folders(mirror):
    "Like `official_checkout`, for the folders the script needs (git archive of the whole tree fails on the absent blobs)."
    with tempfile.TemporaryDirectory() as tmp:
        archive = subprocess.run(["git", "-C", str(mirror), "archive", "HEAD", *FOLDERS], capture_output=True, check=True).stdout
        subprocess.run(["tar", "-x", "-C", tmp], input=archive, check=True)
        sys.path.insert(0, tmp)
        saved = dict(sys.modules)
        try: yield Path(tmp)
        finally:
            sys.path.remove(tmp)
            for k in list(sys.modules):
                if k not in saved: del sys.modules[k]

P, K, N_IDS = 4, 2, 6                                 # a P x K batch (identities 0..3 of 6), as the triplet sampler gives

def golden_inputs():
    g = torch.Generator().manual_seed(11)
    labels = torch.arange(P).repeat_interleave(K)
    out = dict(labels=labels,
               image_features=0.3 * torch.randn(P * K, 256, generator=g),           # raw, unnormalised (temperature 1)
               text_features=0.3 * torch.randn(P * K, 256, generator=g),
               scores=torch.randn(P * K, N_IDS, generator=g),
               triplet_features=torch.randn(P * K, 32, generator=g),
               cls_ctx=0.02 * torch.randn(N_IDS, 4, 512, generator=g))
    # retrieval: 5 identities seen by 3 cameras; identity 4's queries have no gallery image from another camera
    q_ids, g_ids = torch.tensor([0, 0, 1, 1, 2, 2, 3, 3, 4, 4]), torch.arange(5).repeat_interleave(6)
    q_cams, g_cams = torch.tensor([0, 1, 1, 2, 2, 0, 0, 1, 1, 1]), torch.arange(3).repeat(10)
    g_cams[g_ids == 4] = 1
    centres = torch.randn(5, 16, generator=g)
    out.update(query=centres[q_ids] + 1.6 * torch.randn(len(q_ids), 16, generator=g), query_ids=q_ids, query_cams=q_cams,
               gallery=centres[g_ids] + 1.6 * torch.randn(len(g_ids), 16, generator=g), gallery_ids=g_ids, gallery_cams=g_cams)
    return out

def losses(out):
    from loss.softmax_loss import CrossEntropyLabelSmooth
    from loss.supcontrast import SupConLoss
    from loss.triplet_loss import TripletLoss
    y = out["labels"]
    image, text = out["image_features"].clone().requires_grad_(True), out["text_features"].clone().requires_grad_(True)
    supcon = SupConLoss("cpu")
    i2t, t2i = supcon(image, text, y, y), supcon(text, image, y, y)              # processor_clipreid_stage1.py
    (i2t + t2i).backward()
    scores = out["scores"].clone().requires_grad_(True)
    id_loss = CrossEntropyLabelSmooth(num_classes=N_IDS, use_gpu=False)(scores, y); id_loss.backward()
    feats = out["triplet_features"].clone().requires_grad_(True)
    triplet = TripletLoss(0.3)(feats, y)[0]; triplet.backward()
    return dict(i2t=i2t.detach(), t2i=t2i.detach(), grad_image=image.grad, grad_text=text.grad, id=id_loss.detach(),
                grad_scores=scores.grad, triplet=triplet.detach(), grad_triplet=feats.grad)

def metrics(out):
    from utils.metrics import R1_mAP_eval
    evaluator = R1_mAP_eval(len(out["query"]), max_rank=50, feat_norm=True)
    evaluator.reset()
    evaluator.update((out["query"], out["query_ids"].numpy(), out["query_cams"].numpy()))
    evaluator.update((out["gallery"], out["gallery_ids"].numpy(), out["gallery_cams"].numpy()))
    cmc, mAP = evaluator.compute()[:2]
    return dict(mAP=torch.tensor(float(mAP)), rank1=torch.tensor(float(cmc[0])), rank5=torch.tensor(float(cmc[4])))

def identity_text(root, out):
    "Text features of each identity's prompt, by the official PromptLearner and TextEncoder."
    if "timm" not in sys.modules:
        try: import timm  # noqa: F401
        except ImportError:
            layers = types.ModuleType("timm.models.layers")
            layers.DropPath = layers.to_2tuple = layers.trunc_normal_ = None
            sys.modules.update({"timm": types.ModuleType("timm"), "timm.models": types.ModuleType("timm.models"), "timm.models.layers": layers})
    from model.clip import model as clip_model
    from model.make_model_clipreid import PromptLearner, TextEncoder
    clip = build_official(clip_model, h_resolution=3, w_resolution=3, vision_stride_size=32)
    learner = PromptLearner(N_IDS, "market1501", torch.float32, clip.token_embedding)
    with torch.no_grad(): learner.cls_ctx.copy_(out["cls_ctx"])
    labels = torch.arange(N_IDS)
    with torch.no_grad():
        return TextEncoder(clip)(learner(labels), learner.tokenized_prompts)

def run(mirror):
    out = golden_inputs()
    real_cuda = torch.Tensor.cuda
    with official_folders(mirror) as root:
        torch.Tensor.cuda = lambda self, *a, **k: self
        try:
            out.update(losses(out)); out.update(metrics(out))
            out["identity_text"] = identity_text(root, out)
        finally: torch.Tensor.cuda = real_cuda
    return out

if __name__ == "__main__":
    torch.set_num_threads(1)
    mirror = sys.argv[1]
    out = run(mirror)
    print({k: round(float(out[k]), 4) for k in ("i2t", "t2i", "id", "triplet", "mAP", "rank1", "rank5")})
    save_golden("clipreid", out, mirror, ["loss/supcontrast.py", "loss/softmax_loss.py", "loss/triplet_loss.py", "utils/metrics.py",
                                          "model/make_model_clipreid.py", "model/clip/model.py", "processor/processor_clipreid_stage1.py"],
                __file__, meta=dict(P=P, K=K, n_ids=N_IDS, template="A photo of a X X X X person.", margin=0.3, epsilon=0.1,
                                    temperature=1.0))
