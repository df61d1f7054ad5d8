"Two CPU processes under HF Accelerate (gloo) learn the same prompts as one process with the same global batch."
import os
import socket

import pytest
import torch
import torch.multiprocessing as mp

accelerate = pytest.importorskip("accelerate")

EPOCHS, BATCH = 3, 32


def coop_run(accelerator=None):
    "CoOp on cached toy features, seeded; returns the learned context."
    from clipexplore.backbone import load_clip
    from clipexplore.data import few_shot, toy_recordset
    from clipexplore.engine import Trainer
    from clipexplore.methods.coop import CoOp
    from clipexplore.toyworld import ToyWorld
    torch.set_num_threads(1)
    clip = load_clip(device="cpu")
    pool = toy_recordset(ToyWorld(600, seed=11, domains=("photo", "cartoon")))
    torch.manual_seed(0)
    method = CoOp(clip, pool.classes, n_ctx=4)
    init = method.ctx.detach().clone()
    train = few_shot(pool, 8, seed=1).dataset(clip.preprocess)
    Trainer(method, train, epochs=EPOCHS, batch_size=BATCH, lr=0.02, warmup_epochs=0, progress=False,
            accelerator=accelerator).fit()
    return init, method.ctx.detach().clone()


def worker(rank, port, out):
    os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE="2", LOCAL_WORLD_SIZE="2",
                      MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), OMP_NUM_THREADS="1")
    from accelerate import Accelerator
    accelerator = Accelerator(cpu=True)
    assert accelerator.num_processes == 2
    _, ctx = coop_run(accelerator)
    if rank == 0: torch.save(ctx, out)
    accelerator.wait_for_everyone()


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0)); return s.getsockname()[1]


@pytest.mark.slow
def test_two_gloo_processes_match_one(tmp_path):
    out = tmp_path / "ctx.pt"
    mp.spawn(worker, args=(free_port(), str(out)), nprocs=2, join=True)
    two = torch.load(out, weights_only=True)
    init, one = coop_run()
    assert (one - init).abs().max() > 1e-3                 # it learned something
    assert torch.allclose(two, one, atol=1e-5), (two - one).abs().max()
