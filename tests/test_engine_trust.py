"The engine under a hostile user: kills during a save, divergence, resume and load checks, label spaces, the feature cache, exact resume of callback state, the method protocol under the protocols."
import os
import signal
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
import torch

from clipexplore.engine import (CHECKPOINT, Callback, CheckpointError, FeatureDataset, Trainer, TrainingDiverged, describe_transform,
                                evaluate, load_learned, read_checkpoint)
from clipexplore.methods.coop import CoOp

BUILD = '''
import torch
from clipexplore.backbone import load_clip
from clipexplore.engine import FeatureDataset, Trainer
from clipexplore.methods.coop import CoOp
from clipexplore.toyworld import ToyWorld
clip = load_clip(device="cpu")
data = FeatureDataset.encode(clip, ToyWorld(96, seed=31))
def trainer(**kw):
    torch.manual_seed(0)
    return Trainer(CoOp(clip, data.classes, n_ctx=4), data, **{**dict(epochs=3, batch_size=16, progress=False), **kw})
'''
CHILD = "import sys, torch; torch.set_num_threads(int(sys.argv[3]))  # the parent's: the same float results" + BUILD + '''
import os, sys
import clipexplore.engine as engine
folder, point = sys.argv[1], sys.argv[2]
saves, real_save, real_replace = [0], engine.save_file, os.replace
def save_file(tensors, path, metadata=None):
    saves[0] += 1
    if saves[0] == 2 and point == "writing":
        real_save(tensors, path, metadata=metadata)
        data = open(path, "rb").read(); open(path, "wb").write(data[:len(data) // 2]); os._exit(9)   # killed mid-write
    real_save(tensors, path, metadata=metadata)
def replace(src, dst):
    if saves[0] == 2 and point == "before_rename": os._exit(9)
    real_replace(src, dst)
    if saves[0] == 2 and point == "after_rename": os._exit(9)
engine.save_file, os.replace = save_file, replace
trainer(checkpoint_dir=folder).fit()
'''


@pytest.fixture(scope="module")
def built():
    scope = {}
    exec(BUILD, scope)
    return scope


@pytest.mark.parametrize("point", ["writing", "before_rename", "after_rename"])
def test_a_kill_during_save_leaves_a_whole_checkpoint_and_resume_is_exact(built, tmp_path, point):
    child = subprocess.run([sys.executable, "-c", CHILD, str(tmp_path), point, str(torch.get_num_threads())], capture_output=True, text=True, timeout=600)
    assert child.returncode == 9, child.stderr[-2000:]
    _, meta = read_checkpoint(tmp_path)
    assert meta["epoch"] == (2 if point == "after_rename" else 1)                  # the old checkpoint, or the new one, whole
    full = built["trainer"]().fit()
    resumed = built["trainer"]().resume(tmp_path).fit()
    assert torch.equal(resumed.method.ctx, full.method.ctx)
    assert [r["loss"] for r in resumed.history] == [r["loss"] for r in full.history]


class InfiniteLrFrom(Callback):
    def __init__(self, epoch, lr=float("inf")): self.epoch, self.lr = epoch, lr
    def before_batch(self, t):
        if t.epoch >= self.epoch:
            for g in t.opt.param_groups: g["lr"] = self.lr


@pytest.mark.parametrize("lr", [float("inf"), float("nan"), 1e9])
def test_divergence_keeps_the_last_good_checkpoint_and_restores_it(built, tmp_path, lr):
    trainer = built["trainer"](checkpoint_dir=tmp_path, callbacks=[InfiniteLrFrom(1, lr)])
    with pytest.raises(TrainingDiverged, match="last good state .1 of 3 epochs done.; the checkpoint in .* was not overwritten"):
        trainer.fit()
    tensors, meta = read_checkpoint(tmp_path)
    assert meta["epoch"] == 1 and torch.equal(tensors["method.ctx"], trainer.method.ctx.detach())
    assert (trainer.epoch, trainer.step_in_epoch) == (1, 0) and torch.isfinite(trainer.method.ctx).all()


def test_ctrl_c_inside_a_step_waits_for_it_and_nothing_is_replayed(built, tmp_path):
    class PressCtrlC(Callback):                                        # a real SIGINT, in the middle of the step's forward
        def before_batch(self, t):
            if (t.epoch, t.step_in_epoch) == (1, 2): t.method.press = True
    coop_loss = CoOp.loss
    def loss(self, batch):
        if getattr(self, "press", False): self.press = False; signal.raise_signal(signal.SIGINT)
        return coop_loss(self, batch)
    trainer = built["trainer"](checkpoint_dir=tmp_path, callbacks=[PressCtrlC()])
    trainer.method.loss = loss.__get__(trainer.method)
    trainer.fit()
    assert trainer.interrupted and (trainer.epoch, trainer.step_in_epoch) == (1, 3)   # the step it interrupted was counted
    full = built["trainer"]().fit()
    resumed = built["trainer"]().resume(tmp_path).fit()
    assert torch.equal(resumed.method.ctx, full.method.ctx)


def test_resume_refuses_what_differs_unless_allowed(built, tmp_path):
    built["trainer"](checkpoint_dir=tmp_path).fit()
    for kw, says in [(dict(lr=0.01), "lr: checkpoint 0.002"), (dict(batch_size=8), "batch_size"), (dict(seed=2), "seed"),
                     (dict(optimizer="adamw"), "optimizer: checkpoint 'SGD', this trainer 'AdamW'")]:
        with pytest.raises(CheckpointError, match=says): built["trainer"](**kw).resume(tmp_path)
    with pytest.raises(CheckpointError, match="past this trainer's end"): built["trainer"](epochs=1).resume(tmp_path, allow_changes=("epochs",))
    with pytest.warns(UserWarning, match="resuming with a change: lr"): built["trainer"](lr=0.01).resume(tmp_path, allow_changes=("lr",))
    with pytest.raises(TypeError, match="choose among"): built["trainer"]().resume(tmp_path, allow_changes=("colour",))
    clip, data = built["clip"], built["data"]
    other = Trainer(CoOp(clip, data.classes[::-1], n_ctx=4), FeatureDataset(data.features, data.labels, data.domains), epochs=3,
                    batch_size=16, progress=False)
    with pytest.raises(CheckpointError, match="class names"): other.resume(tmp_path)


def test_broken_or_foreign_checkpoints_are_refused_clearly(built, tmp_path):
    built["trainer"](checkpoint_dir=tmp_path / "good").fit()
    whole = (tmp_path / "good" / CHECKPOINT).read_bytes()
    for name, content in [("empty", b""), ("truncated", whole[: len(whole) // 2]), ("header", whole[:200])]:
        (tmp_path / name).mkdir(); (tmp_path / name / CHECKPOINT).write_bytes(content)
        with pytest.raises(CheckpointError, match="cannot be read"): built["trainer"]().resume(tmp_path / name)
    from safetensors.torch import save_file
    (tmp_path / "foreign").mkdir(); save_file({"x": torch.zeros(2)}, str(tmp_path / "foreign" / CHECKPOINT))
    with pytest.raises(CheckpointError, match="not a clipexplore Trainer checkpoint"): built["trainer"]().resume(tmp_path / "foreign")
    with pytest.raises(FileNotFoundError, match="missing"): built["trainer"]().resume(tmp_path / "nowhere")


def test_another_methods_or_a_partial_state_is_refused(built, tmp_path, clip):
    from clipexplore.methods.maple import MaPLe
    built["trainer"](checkpoint_dir=tmp_path).fit()
    maple = MaPLe(clip, built["data"].classes)
    with pytest.raises(CheckpointError, match="holds a CoOp checkpoint"): load_learned(maple, tmp_path)
    with pytest.raises(KeyError, match="lacks"): maple.load_trainable_state({"ctx": maple.ctx.detach().clone()})
    with pytest.warns(UserWarning, match="other classes"): load_learned(CoOp(clip, built["data"].classes[::-1], n_ctx=4), tmp_path)


def test_label_spaces_are_checked(built):
    clip, data = built["clip"], built["data"]
    coop = CoOp(clip, data.classes, n_ctx=4)
    reordered = FeatureDataset(data.features, data.labels, data.domains, classes=data.classes[::-1])
    subset = FeatureDataset(data.features, data.labels, data.domains, classes=data.classes[:5])
    for bad, says in [(reordered, "another order"), (subset, "5 of the method's 10 classes")]:
        with pytest.raises(ValueError, match=says): evaluate(coop, bad)
        with pytest.raises(ValueError, match=says): Trainer(coop, bad, progress=False)
    with pytest.raises(ValueError, match="labels run from 1 to 12"):
        evaluate(coop, FeatureDataset(data.features, torch.where(data.labels == 0, 12, data.labels), data.domains))
    with pytest.raises(ValueError, match="ignore_index"):
        Trainer(coop, FeatureDataset(data.features, torch.where(data.labels == 0, -100, data.labels), data.domains), progress=False)
    with pytest.raises(ValueError, match="name every domain"):
        evaluate(coop, FeatureDataset(data.features, data.labels, data.domains, domain_names=["photo"]))
    poisoned = data.features.clone(); poisoned[5] = float("nan")
    with pytest.raises(ValueError, match=r"samples \[5\]"): evaluate(coop, FeatureDataset(poisoned, data.labels, data.domains))
    as_double = FeatureDataset(data.features.double(), data.labels, data.domains, data.classes, data.domain_names)
    assert evaluate(coop, as_double).where(domain="mean")[0]["accuracy"] == evaluate(coop, data).where(domain="mean")[0]["accuracy"]


def test_the_feature_cache_is_keyed_by_content_and_survives_a_failed_write(built, tmp_path, monkeypatch):
    from torchvision import transforms as T
    from clipexplore.toyworld import ToyWorld
    assert describe_transform(T.Lambda(lambda x: x)) != describe_transform(T.Lambda(lambda x: x * 2))
    key = "from torchvision import transforms as T; from clipexplore.engine import describe_transform; print(describe_transform(T.Compose([T.Lambda(lambda x: x), T.ToTensor()])))"
    keys = {subprocess.run([sys.executable, "-c", key], capture_output=True, text=True, check=True).stdout for _ in range(2)}
    assert len(keys) == 1 and "None" not in keys                       # the same in every process: the cache hits
    clip, world = built["clip"], ToyWorld(16, seed=41)
    import errno
    import clipexplore.engine as engine
    def disk_full(*args, **kw): raise OSError(errno.ENOSPC, "No space left on device")
    monkeypatch.setattr(engine, "atomic_save_file", disk_full)
    with pytest.warns(UserWarning, match="could not write the feature cache .*No space left"):
        out = FeatureDataset.encode(clip, world, cache_dir=tmp_path)
    assert out.features.shape[0] == 16


def test_gaussian_prompt_aggregation_resumes_its_sum(clip, tmp_path):
    from clipexplore.methods.promptsrc import GaussianPromptAggregation, PromptSRC
    from clipexplore.toyworld import ToyWorld
    from clipexplore.data import toy_recordset
    data = toy_recordset(ToyWorld(40, seed=43)).dataset(clip.preprocess)
    class StopAfterEpoch(Callback):
        order = 20                                                    # after GPA has added the epoch
        def after_epoch(self, t):
            if t.epoch == 2: raise KeyboardInterrupt
    def trainer(callbacks=(), **kw):
        torch.manual_seed(0)
        method = PromptSRC(clip, data.classes, n_ctx=2, n_visual=2, depth=2, teacher_templates=("a photo of a {}.",), gpa_mean=2, gpa_std=1)
        return Trainer(method, data, epochs=3, batch_size=20, progress=False, callbacks=[GaussianPromptAggregation(), *callbacks], **kw)
    full = trainer().fit()
    stopped = trainer([StopAfterEpoch()], checkpoint_dir=tmp_path).fit()
    assert stopped.interrupted and stopped.epoch == 2
    resumed = trainer().resume(tmp_path).fit()
    assert all(torch.equal(v, resumed.method.trainable_state()[k]) for k, v in full.method.trainable_state().items())


def test_tip_adapter_f_trains_its_keys_under_the_protocols(clip, pool):
    from clipexplore.methods.adapters import TipAdapterF
    from clipexplore.protocols import few_shot_protocol
    from clipexplore.toyworld import ToyWorld
    from clipexplore.data import toy_recordset
    test = toy_recordset(ToyWorld(100, seed=44, domains=("photo",)))
    trained = []
    def make(names):
        m = TipAdapterF(clip, names); trained.append(m); return m
    few_shot_protocol(make, pool, test, shots=(2,), seeds=(1,), transform=clip.preprocess, epochs=2)
    method = trained[-1]
    norms = method.keys.detach().norm(dim=-1)                          # built from unit-norm features, then trained
    assert method.keys.requires_grad and (norms - 1).abs().max() > 1e-4
