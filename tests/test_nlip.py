"NLIP: the loss-based noise probability finds swapped captions; the harmonised loss stops pulling noisy pairs together; the objective runs inside pretraining."
import pytest
import torch
from sklearn.metrics import roc_auc_score

from clipexplore.methods.nlip import NLIP, clip_targets, flag_noisy_pairs, harmonised_clip_loss, per_pair_clip_loss
from clipexplore.toyclip import PRETRAIN_OBJECTS, caption_batch, noisy_captions, pretrain_toy_clip
from clipexplore.toyworld import ToyWorld


def test_noise_probability_finds_swapped_captions(clip):
    stream = ToyWorld(10**6, seed=4242, n_objects=PRETRAIN_OBJECTS, transform=None, captions=True)
    images, captions = caption_batch(stream, 0, 512)
    captions, noisy = noisy_captions(stream, captions, 0, 0.3)
    p, losses = flag_noisy_pairs(clip, images, captions)
    assert 0.2 < noisy.float().mean() < 0.4
    assert roc_auc_score(noisy, p) > 0.95                                    # toy run: 0.989
    assert p[noisy].mean() > 0.8 > 0.2 > p[~noisy].mean()
    with pytest.raises(ValueError, match="captions"): flag_noisy_pairs(clip, images[:3], captions[:2])
    with pytest.raises(ValueError, match="fraction"): noisy_captions(stream, captions, 0, 1.0)


def test_harmonised_loss_is_clip_loss_for_clean_pairs_and_lets_noisy_pairs_go():
    logits, targets = torch.randn(8, 8) * 4, torch.eye(8)
    torch.testing.assert_close(harmonised_clip_loss(logits, targets, torch.zeros(8)), per_pair_clip_loss(logits, targets).mean())
    flat = torch.zeros(8, 8, requires_grad=True)                # an untrained model: every similarity equal
    p = torch.tensor([0.0] * 4 + [1.0] * 4)
    harmonised_clip_loss(flat, targets, p).backward()
    own = flat.grad.diagonal()
    assert (own[:4] < -0.01).all()                     # clean pairs: pulled together
    assert own[4:].abs().max() < 1e-3                  # sure-noisy pairs: not pulled together
    assert torch.equal(clip_targets(torch.tensor([[1, 2], [1, 2], [3, 4]])), torch.tensor([[0.5, 0.5, 0], [0.5, 0.5, 0], [0, 0, 1.0]]))


def test_nlip_objective_estimates_noise_and_completes_captions_during_pretraining(tmp_path):
    objective = NLIP(warmup_steps=8)
    _, history = pretrain_toy_clip(steps=14, batch_size=32, warmup=2, caption_noise=0.5, objective=objective,
                                   run_dir=tmp_path, device="cpu", log_every=7)
    before, after = history
    assert before["noise_probability"] == 0 and before["completed"] == 0      # warm-up: plain CLIP loss
    assert 0 < after["noise_probability"] < 1 and after["completed"] > 0
    assert "noise_auc" in after and len(objective.recent) == 14 * 32
