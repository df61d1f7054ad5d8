"""The learning rate per epoch of Dassl's own `build_lr_scheduler` (cosine wrapped in ConstantWarmupScheduler), the
schedule every CoOp-family repository trains with, run on a toy optimiser and stepped once per epoch as the trainers
do (`update_lr()` after an epoch's last batch).

    python tools/golden/dassl_schedule.py MIRROR_OF_KaiyangZhou/Dassl.pytorch

Writes `dassl_schedule`: `lr_E{epochs}_W{warmup}` [epochs], the lr each epoch trains with, for the cases in CASES."""
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from tools.golden.common import official_checkout, save_golden
from tools.golden.coop_family import namespace, scheduler_verbose_shim

CASES = [(5, 1), (10, 1), (50, 1), (5, 2), (10, 2)]           # (epochs, warm-up epochs)
LR, WARMUP_LR = 0.002, 1e-5                                   # configs/trainers/CoOp/*.yaml: LR, WARMUP_CONS_LR

def dassl_lrs(build_lr_scheduler, epochs, warmup):
    "The lr of each epoch: read from the optimiser while the epoch trains, then one scheduler step."
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=LR, momentum=0.9, weight_decay=5e-4)
    cfg = namespace(LR_SCHEDULER="cosine", STEPSIZE=(-1,), GAMMA=0.1, MAX_EPOCH=epochs, WARMUP_EPOCH=warmup,
                    WARMUP_RECOUNT=True, WARMUP_TYPE="constant", WARMUP_CONS_LR=WARMUP_LR)   # Dassl defaults + CoOp yaml
    scheduler = build_lr_scheduler(optimizer, cfg)
    lrs = []
    for _ in range(epochs):
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step(); scheduler.step()
    return torch.tensor(lrs, dtype=torch.float64)

def main(mirror):
    with official_checkout(mirror), scheduler_verbose_shim():
        from dassl.optim import build_lr_scheduler
        out = {f"lr_E{e}_W{w}": dassl_lrs(build_lr_scheduler, e, w) for e, w in CASES}
    for k, v in out.items(): print(k, [f"{x:.3e}" for x in v[:4].tolist()], "...")
    save_golden("dassl_schedule", out, mirror, ["dassl/optim/lr_scheduler.py", "dassl/config/defaults.py"], __file__,
                meta=dict(cases=CASES, lr=LR, warmup_lr=WARMUP_LR, optimizer="sgd", warmup_type="constant", scheduler="cosine",
                          note="PyTorch >= 2.7 dropped LRScheduler's `verbose` argument; a base class accepting it runs Dassl unchanged"))

if __name__ == "__main__":
    main(sys.argv[1])
