"""The raw-image pipeline: loader workers for files, augmentations that do not depend on who decodes them, exact resume with
workers, and encoding / evaluation split across two processes (gloo) equal to one process, each image encoded once."""
import os
import socket

import numpy as np
import pytest
import torch
import torch.multiprocessing as mp
from PIL import Image

CLASSES = ("circle", "square", "triangle")


def image_tree(root, per_class=8, size=48):
    "A root/<class>/<i>.jpg tree of random-noise JPEGs, one brightness per class (so a prompt can learn something)."
    rng = np.random.default_rng(0)
    for c, name in enumerate(CLASSES):
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            pixels = np.clip(rng.normal(60 + 70 * c, 40, (size, size + 8, 3)), 0, 255).astype(np.uint8)
            Image.fromarray(pixels).save(root / name / f"{i}.jpg", quality=90)
    return root


def file_records(root):
    from clipexplore.data import image_folder_records
    return image_folder_records(root, check=False)


def augment(clip):
    from clipexplore.engine import coop_train_transform
    return coop_train_transform(clip.image_size[0], scale=(0.5, 1.0))


def test_workers_only_for_files(clip, tmp_path):
    from clipexplore.metrics import default_workers, usable_cpus
    from clipexplore.toyworld import ToyWorld
    files = file_records(image_tree(tmp_path)).dataset(clip.preprocess)
    assert default_workers(files) == min(8, usable_cpus()) > 0
    assert default_workers(ToyWorld(10, seed=0)) == 0
    with pytest.raises(ValueError, match="num_workers"):
        from clipexplore.metrics import encode_dataset
        encode_dataset(clip, files, num_workers=-1)


def test_encoding_with_workers_equals_without(clip, tmp_path):
    from clipexplore.engine import FeatureDataset
    from clipexplore.metrics import encode_dataset
    data = file_records(image_tree(tmp_path)).dataset(clip.preprocess)
    plain, two = encode_dataset(clip, data, 5, num_workers=0), encode_dataset(clip, data, 5, num_workers=2)
    assert all(torch.equal(a, b) for a, b in zip(plain, two))
    one = FeatureDataset.encode(clip, data, views=3, augment=augment(clip), num_workers=1).features
    many = FeatureDataset.encode(clip, data, views=3, augment=augment(clip), num_workers=2).features
    assert torch.equal(one, many)                                     # each augmented view seeded per image, not per worker
    assert not torch.equal(one[1], one[2])                            # and the views differ


def fit_on_files(clip, data, workers, epochs=3, callbacks=(), checkpoint_dir=None, resume=None):
    from clipexplore.engine import Trainer
    from clipexplore.methods.coop import CoOp
    torch.manual_seed(0)
    method = CoOp(clip, list(CLASSES), n_ctx=4)
    trainer = Trainer(method, data, epochs=epochs, batch_size=8, lr=0.02, warmup_epochs=0, cache_features=False, progress=False,
                      num_workers=workers, callbacks=callbacks, checkpoint_dir=checkpoint_dir)
    if resume: trainer.resume(resume)
    trainer.fit()
    return method.ctx.detach().clone(), trainer


def test_training_on_files_does_not_depend_on_workers_and_resumes_exactly(clip, tmp_path):
    from clipexplore.engine import Callback, StopTraining
    data = file_records(image_tree(tmp_path / "images")).dataset(augment(clip))
    one, trainer = fit_on_files(clip, data, 1)
    assert trainer.num_workers == 1 and trainer._train_loader is not None
    two, _ = fit_on_files(clip, data, 2)
    assert torch.equal(one, two)                                      # the same crops whoever decodes them

    class StopMidEpoch(Callback):
        def after_batch(self, trainer):
            if trainer.epoch == 1 and trainer.step_in_epoch == 1: raise StopTraining
    ckpt = tmp_path / "ckpt"
    fit_on_files(clip, data, 2, callbacks=[StopMidEpoch()], checkpoint_dir=ckpt)
    resumed, _ = fit_on_files(clip, data, 2, resume=ckpt)
    assert torch.equal(resumed, one)


def shard_worker(rank, port, root, out):
    os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE="2", LOCAL_WORLD_SIZE="2",
                      MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), OMP_NUM_THREADS="1")
    torch.set_num_threads(1)
    from accelerate import Accelerator
    accelerator = Accelerator(cpu=True)
    features, table, encoded = encode_and_evaluate(root, accelerator)
    torch.save(dict(features=features, table=list(table), encoded=encoded), f"{out}.{rank}")
    accelerator.wait_for_everyone()


def encode_and_evaluate(root, accelerator=None):
    "Features of the tree (batches of 4) and zero-shot accuracy, counting the images this process encoded."
    from clipexplore.backbone import load_clip
    from clipexplore.engine import evaluate
    from clipexplore.metrics import encode_dataset
    from clipexplore.methods.zeroshot import ZeroShotClassifier
    clip = load_clip(device="cpu")
    seen, encode = [0], clip.encode_image
    def counting(x, **kw):
        seen[0] += len(x); return encode(x, **kw)
    clip.encode_image = counting
    data = file_records(root).dataset(clip.preprocess)
    features = encode_dataset(clip, data, 4, num_workers=0, accelerator=accelerator)[0]
    encoded = seen[0]
    table = evaluate(ZeroShotClassifier(clip, data.classes), data, accelerator=accelerator)   # batches of 256: rank 0 does all 21
    return features, table, (encoded, seen[0] - encoded)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0)); return s.getsockname()[1]


@pytest.mark.slow
def test_two_processes_encode_and_evaluate_each_image_once(tmp_path):
    pytest.importorskip("accelerate")
    root = image_tree(tmp_path / "images", per_class=7)                    # 21 images: shares of 12 and 9 in batches of 4
    out = tmp_path / "result"
    mp.spawn(shard_worker, args=(free_port(), str(root), str(out)), nprocs=2, join=True)
    ranks = [torch.load(f"{out}.{r}", weights_only=False) for r in range(2)]
    features, table, encoded = encode_and_evaluate(root)
    assert encoded == (21, 21)                                            # one process: the whole dataset in each pass
    assert [r["encoded"] for r in ranks] == [(12, 21), (9, 0)]            # two: whole batches each, every image once per pass
    for r in ranks:
        assert torch.equal(r["features"], features)                       # gathered, in order, the same bits
        assert r["table"] == list(table)
