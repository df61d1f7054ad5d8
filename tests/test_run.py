"`clipexplore run` and `clipexplore table`: resumable per-seed runs under the papers' protocols, their files, their table, their argument checks, two processes."
import csv
import json
import os
import socket

import pytest
import torch
import torch.multiprocessing as mp

import clipexplore.run as runmod
from clipexplore.cli import main
from clipexplore.engine import Callback
from clipexplore.protocols import harmonic_mean

FAST = ["--shots", "2", "--set", "epochs=3", "--device", "cpu"]        # 20 training images: one batch, split 10/10 over two processes


def read_csv(path):
    with open(path, newline="") as f: return list(csv.DictReader(f))


def summary(folder):
    "{column: (mean, std, runs)} of a run's summary.csv."
    return {r["column"]: (float(r["mean"]), float(r["std"]), int(r["runs"])) for r in read_csv(folder / "summary.csv")}


def seed_accuracies(folder, seed):
    return {r["column"]: float(r["accuracy"]) for r in read_csv(folder / f"seed{seed}" / "results.csv")}


def cli(*args):
    main(["run", *map(str, args)])


@pytest.fixture(scope="module")
def coop_run(tmp_path_factory):
    "CoOp few-shot on the toy world, seeds 1 and 2, three epochs: the one-process run."
    out = tmp_path_factory.mktemp("runs") / "coop"
    cli("coop", "--seeds", "1", "2", *FAST, "--out", out)
    return out


def test_few_shot_writes_every_file_with_mean_and_std(coop_run):
    for f in ("config.json", "summary.csv", "summary.md", "dashboard.png", "seed1/results.csv", "seed2/results.csv",
              "seed1/checkpoint/state.safetensors", "seed2/checkpoint/state.safetensors", "seed1/dashboard.png"):
        assert (coop_run / f).is_file(), f
    config = json.loads((coop_run / "config.json").read_text())
    assert (config["method"], config["recipe"], config["shots"], config["seeds"], config["trainer"]["epochs"]) == ("CoOp", "toy", 2, [1, 2], 3)
    assert config["method_settings"]["n_ctx"] == 16
    stats = summary(coop_run)
    assert list(stats) == ["photo", "sketch", "cartoon", "painting", "mean"] and all(runs == 2 for _, _, runs in stats.values())
    for column, (mean, std, _) in stats.items():
        a, b = seed_accuracies(coop_run, 1)[column], seed_accuracies(coop_run, 2)[column]
        assert mean == pytest.approx((a + b) / 2) and std == pytest.approx(abs(a - b) / 2)
    md = (coop_run / "summary.md").read_text()
    assert "| CoOp |" in md and "±" in md and "per seed" in md
    assert (coop_run / "dashboard.png").stat().st_size > 10_000


class StopAt(Callback):
    "Ctrl-C before the first batch of `epoch` of seed `seed`'s training."
    def __init__(self, seed, epoch): self.seed, self.epoch = seed, epoch
    def before_batch(self, trainer):
        if trainer.seed == self.seed and trainer.epoch == self.epoch and trainer.step_in_epoch == 0: raise KeyboardInterrupt


def test_rerun_skips_finished_seeds_and_resumes_an_interrupted_one(tmp_path, capsys):
    out = tmp_path / "coop"
    with pytest.raises(KeyboardInterrupt, match="run the same command again"):
        runmod.run("coop", shots=2, seeds=(1, 2), sets=["epochs=3"], out=out, device="cpu", callbacks=[StopAt(seed=2, epoch=2)])
    assert (out / "seed1" / "results.csv").is_file() and not (out / "seed2" / "results.csv").exists()
    assert (out / "seed2" / "checkpoint" / "state.safetensors").is_file() and not (out / "summary.csv").exists()
    first = (out / "seed1" / "results.csv").read_bytes(), (out / "seed1" / "results.csv").stat().st_mtime_ns
    capsys.readouterr()
    cli("coop", "--seeds", "1", "2", *FAST, "--out", out)
    said = capsys.readouterr().out
    assert "seed 1 (1/2): finished before" in said and "resuming from" in said and "2 of 3 epochs done" in said
    assert ((out / "seed1" / "results.csv").read_bytes(), (out / "seed1" / "results.csv").stat().st_mtime_ns) == first
    alone = tmp_path / "seed2_alone"                                     # the same seed, never interrupted
    cli("coop", "--seeds", "2", *FAST, "--out", alone)
    assert seed_accuracies(out, 2) == seed_accuracies(alone, 2)
    capsys.readouterr()
    cli("coop", "--seeds", "1", "2", *FAST, "--out", out)               # all finished: nothing trains
    said = capsys.readouterr().out
    assert said.count("finished before") == 2 and "training" not in said and summary(out)["mean"][2] == 2
    with pytest.raises(SystemExit) as stop: cli("coop", "--seeds", "1", "2", "--shots", "3", "--set", "epochs=3", "--out", out)
    assert stop.value.code == 2 and "shots: 2 there, 3 now" in capsys.readouterr().err


def test_base_to_new_reports_base_new_and_hm(tmp_path):
    out = tmp_path / "b2n"
    cli("kgcoop", "--protocol", "base-to-new", "--seeds", "1", *FAST, "--out", out)
    stats = summary(out)
    assert list(stats) == ["base", "new", "HM"]
    assert stats["HM"][0] == pytest.approx(harmonic_mean(stats["base"][0], stats["new"][0]))
    assert "| base | new | HM |" in (out / "summary.md").read_text()


def tiny_domainbed(root, domains=("art", "photo", "sketch"), classes=("dog", "house", "tree_top"), per_class=4, texture=False):
    "3 domains x 3 classes x 4 PIL images: a colour per class, a brightness per domain; with `texture`, a gradient (so crops differ)."
    import numpy as np
    from PIL import Image
    ramp = np.linspace(0, 60, 32)[None, :, None] if texture else 0
    for d, domain in enumerate(domains):
        for c, name in enumerate(classes):
            (root / domain / name).mkdir(parents=True)
            for i in range(per_class):
                colour = np.array([60 + 60 * d + 10 * i if k == c else 30 for k in range(3)], dtype=float)
                pixels = np.broadcast_to(colour + ramp, (32, 32, 3)).astype(np.uint8)
                Image.fromarray(pixels).save(root / domain / name / f"{i}.png")
    return root


def test_dg_on_a_domainbed_tree_holds_each_domain_out(tmp_path, capsys):
    tree, out = tiny_domainbed(tmp_path / "tinybed"), tmp_path / "dg"
    cli("coop", "--data", tree, "--protocol", "dg", "--shots", "2", "--seeds", "1", "--set", "epochs=2", "--set", "n_ctx=4", "--device", "cpu", "--out", out)
    said = capsys.readouterr().out
    assert "dg on tinybed (domainbed)" in said and "held-out domain sketch: training on art, photo" in said
    assert list(summary(out)) == ["art", "photo", "sketch", "mean"]
    assert all((out / "seed1" / "checkpoint" / d / "state.safetensors").is_file() for d in ("art", "photo", "sketch"))
    assert json.loads((out / "config.json").read_text())["method_settings"]["n_ctx"] == 4


@pytest.mark.parametrize("method, raw, sets", [("coop", False, ()), ("vpt", True, ("--set", "depth=1"))])   # the toy CLIP has 6 layers, not 12
def test_the_official_recipe_trains_on_dassl_augmentations(method, raw, sets, tmp_path, monkeypatch):
    "Cached-feature methods get AUGMENTED_VIEWS augmented views cycling over epochs; raw-image methods a new crop each epoch."
    seen, made = [], runmod.training_data
    monkeypatch.setattr(runmod, "training_data", lambda *a: seen.append(made(*a)) or seen[-1])
    tree, out = tiny_domainbed(tmp_path / "tinybed", texture=True), tmp_path / method
    cli(method, "--data", tree, "--recipe", "official", "--shots", "2", "--seeds", "1", "--set", "epochs=1", "--set", "batch_size=4",
        *sets, "--device", "cpu", "--out", out)
    assert list(summary(out)) == ["art", "photo", "sketch", "mean"]
    data = seen[0]
    if raw: assert type(data.transform.transforms[0]).__name__ == "RandomResizedCrop"
    else: assert data.views == runmod.AUGMENTED_VIEWS and not torch.equal(data.features[0], data.features[1])


def tiny_coop_split(root, classes=("red_thing", "green_thing", "blue_thing"), per_split=dict(train=3, val=2, test=2)):
    "A CoOp dataset folder: images/<class>/<i>.png and split_zhou_Tiny.json (paths relative to images/)."
    from PIL import Image
    split, i = {s: [] for s in per_split}, 0
    for c, name in enumerate(classes):
        (root / "images" / name).mkdir(parents=True)
        for s, n in per_split.items():
            for _ in range(n):
                Image.new("RGB", (32, 32), tuple(200 - 15 * (i % 5) if k == c else 20 for k in range(3))).save(root / "images" / name / f"{i}.png")
                split[s].append([f"{name}/{i}.png", c, name]); i += 1
    (root / "split_zhou_Tiny.json").write_text(json.dumps(split))
    return root


def test_cross_dataset_from_a_domainbed_tree_to_a_coop_split(tmp_path, capsys):
    tree, target, out = tiny_domainbed(tmp_path / "tinybed"), tiny_coop_split(tmp_path / "tiny"), tmp_path / "xd"
    cli("coop", "--data", tree, "--protocol", "cross-dataset", "--target", target, "--shots", "2", "--seeds", "1",
        "--set", "epochs=2", "--set", "n_ctx=4", "--device", "cpu", "--out", out)
    assert "cross-dataset on tinybed (domainbed); targets Tiny (coop-split)" in capsys.readouterr().out
    assert list(summary(out)) == ["tinybed", "Tiny", "target mean"]
    assert summary(out)["target mean"][0] == summary(out)["Tiny"][0]


def test_table_gathers_runs_into_the_papers_layout(coop_run, tmp_path, capsys):
    other = tmp_path / "kgcoop"
    cli("kgcoop", "--seeds", "1", *FAST, "--out", other)
    capsys.readouterr()
    main(["table", str(coop_run), str(other), "--csv", str(tmp_path / "table.csv")])
    said = capsys.readouterr().out
    assert "| method | photo | sketch | cartoon | painting | mean |" in said and "| CoOp |" in said and "| KgCoOp |" in said and "±" in said
    rows = read_csv(tmp_path / "table.csv")
    assert [r["run"] for r in rows] == ["CoOp", "KgCoOp"]
    assert float(rows[0]["mean"]) == pytest.approx(summary(coop_run)["mean"][0]) and "mean std" in rows[0]


@pytest.fixture
def no_model(monkeypatch):
    def refuse(*args, **kwargs): raise AssertionError("the model was loaded before the arguments were checked")
    monkeypatch.setattr(runmod, "load_clip", refuse)


@pytest.mark.parametrize("args, says", [
    (["coopp"], "did you mean CoOp"), (["ccli"], "needs bank"), (["dualcoop"], "multi-label"),
    (["coop", "--protocol", "b2n"], "--protocol"), (["coop", "--protocol", "cross-dataset"], "needs --target"),
    (["coop", "--target", "toy"], "only --protocol cross-dataset"),
    (["coop", "--shots", "0"], "--shots"), (["coop", "--shots", "100000"], "between 1 and"),
    (["coop", "--seeds", "-1"], "--seeds"), (["coop", "--seeds", "1", "1"], "twice"),
    (["coop", "--set", "n_cxt=4"], "did you mean n_ctx"), (["coop", "--set", "epochs=0"], "whole number >= 1"),
    (["coop", "--set", "epochs"], "key=value"), (["coop", "--set", "lr=fast"], "lr must be a number"),
    (["coop", "--recipe", "paper"], "has the recipes official, toy"), (["coop", "--data", "/no/such/folder"], "does not exist"),
    (["coop", "--pretrained", "openai"], "not a tag"), (["coop", "--pretrained", "/no/such/w.safetensors"], "no such file"),
    (["coop", "--device", "bogus"], "--device"), (["zeroshotclassifier"], "METHOD"),
])
def test_bad_run_arguments_exit_2_with_a_message(args, says, no_model, capsys, tmp_path):
    with pytest.raises(SystemExit) as stop: main(["run", *args, "--out", str(tmp_path / "out")])
    assert stop.value.code == 2
    err = capsys.readouterr().err
    assert says in err and "error" in err, err
    assert not (tmp_path / "out").exists()


def test_bad_data_and_out_folders(no_model, capsys, tmp_path):
    (tmp_path / "empty").mkdir(); (tmp_path / "file").write_text("x")
    for args, says in [(["--data", tmp_path / "empty"], "neither a CoOp dataset folder"), (["--out", tmp_path / "file"], "is a file"),
                       (["--data", tiny_domainbed(tmp_path / "bed"), "--protocol", "dg", "--shots", "5"], "rarest class and domain")]:
        with pytest.raises(SystemExit) as stop: cli("coop", *args)
        assert stop.value.code == 2 and says in capsys.readouterr().err


def test_unknown_model_and_table_folders_are_refused(capsys, tmp_path):
    with pytest.raises(SystemExit) as stop: cli("coop", "--model", "ViT-B-99", "--out", tmp_path / "out")
    assert stop.value.code == 2 and "--model" in (err := capsys.readouterr().err) and "Close matches" in err
    with pytest.raises(SystemExit) as stop: main(["table", str(tmp_path)])
    assert stop.value.code == 2 and "no config.json" in capsys.readouterr().err


def worker(rank, port, out):
    os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE="2", LOCAL_WORLD_SIZE="2",
                      MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), OMP_NUM_THREADS="1")
    torch.set_num_threads(1)
    main(["run", "coop", "--seeds", "1", "2", *FAST, "--out", out])


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0)); return s.getsockname()[1]


@pytest.mark.slow
def test_two_gloo_processes_give_the_one_process_summary(coop_run, tmp_path):
    pytest.importorskip("accelerate")
    out = tmp_path / "two"
    mp.spawn(worker, args=(free_port(), str(out)), nprocs=2, join=True)
    assert json.loads((out / "config.json").read_text()) == json.loads((coop_run / "config.json").read_text())
    assert summary(out) == summary(coop_run)
    for seed in (1, 2): assert seed_accuracies(out, seed) == seed_accuracies(coop_run, seed)
