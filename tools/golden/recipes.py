"""The training recipe an official Dassl/yacs config describes, as the fields of clipexplore's `Recipe`.

The golden scripts store it in a reference's `meta["recipe"]`, read from the config the official code was run with, so
the tests can check each method's `recipes["official"]` against the official configuration itself."""

def dassl_recipe(cfg):
    "Recipe fields of a Dassl config: optimiser, its settings, epochs, batch, warm-up and the schedule's kind."
    o = cfg.OPTIM
    if o.LR_SCHEDULER != "cosine" or (o.WARMUP_EPOCH > 0 and o.WARMUP_TYPE != "constant"):
        raise ValueError(f"schedule {o.LR_SCHEDULER} with {o.WARMUP_TYPE} warm-up has no Recipe equivalent")
    return dict(epochs=int(o.MAX_EPOCH), batch_size=int(cfg.DATALOADER.TRAIN_X.BATCH_SIZE), lr=float(o.LR), optimizer=o.NAME,
                momentum=float(o.MOMENTUM), weight_decay=float(o.WEIGHT_DECAY), warmup_epochs=max(int(o.WARMUP_EPOCH), 0),
                warmup_lr=float(o.WARMUP_CONS_LR), schedule="dassl")      # Dassl steps the cosine once per epoch
