"The dashboard's recording, drawing, budget and background training; a plain nbclient run (no front end)."
import threading
import time
from types import SimpleNamespace

import matplotlib
import numpy as np
import pytest
import torch

from clipexplore.engine import Callback, FeatureDataset, Trainer, coop_lr
from clipexplore.methods.coop import CoOp
from clipexplore.widgets import BackgroundFit, Dashboard, DriftView, Recorder, Throttle, fit_in_background, pca_frames


@pytest.fixture(scope="module")
def base_new(clip, pool):
    "16 shots of the 5 base classes, and held-out base and new-class sets, encoded."
    from clipexplore.data import base_new_split, few_shot, subset_classes, toy_recordset
    from clipexplore.toyworld import ToyWorld
    held_out = toy_recordset(ToyWorld(300, seed=8, distractors=True))
    base, new = base_new_split(len(pool.classes))
    encode = lambda records: FeatureDataset.encode(clip, records.dataset(clip.preprocess))
    return encode(subset_classes(few_shot(pool, 16, seed=1), base)), encode(subset_classes(held_out, base)), encode(subset_classes(held_out, new))


def coop(clip, classes): return CoOp(clip, classes, n_ctx=4, ctx_init="a photo of a")


def test_recorder_history_base_new_and_drift(clip, base_new):
    train, valid, new = base_new
    method = coop(clip, train.classes)
    recorder = Recorder(valid, new=new, embed_every=0, budget=float("inf"))   # a frame every epoch, however slow the machine
    trainer = Trainer(method, train, epochs=6, callbacks=[recorder], progress=False).fit()
    snap = recorder.snapshot()
    assert [e["epoch"] for e in snap["epochs"]] == list(range(1, 7))
    assert set(snap["epochs"][0]) >= {"photo", "sketch", "mean", "new classes"}
    assert method.classnames == train.classes                                   # new-class evaluation put them back
    assert [f["epoch"] for f in snap["frames"]] == list(range(7))
    first, last = snap["frames"][0], snap["frames"][-1]
    assert max(first["drift"]) < 1e-4 < max(last["drift"])                        # zero-shot's prompt, then learned away from it
    n = min(200, len(valid))                                                     # probe: the first 200 validation images
    assert first["images"].shape[0] == n and first["text"].shape[0] == 5
    assert torch.allclose(first["images"].norm(dim=-1), torch.ones(n), atol=1e-4)
    per_epoch = [coop_lr(e, 6, 0.002) for e in range(6) for _ in range(trainer.batches_per_epoch)]
    assert [s["lr"] for s in snap["steps"]] == per_epoch and snap["steps"][-1]["epoch"] == 6     # warm-up, then cosine
    snap["steps"].clear(); assert recorder.steps                                # snapshots are copies


def test_recorder_needs_set_classes_for_new_classes(base_new):
    _, valid, new = base_new
    with pytest.raises(ValueError, match="set_classes"):
        Recorder(valid, new=new).before_fit(SimpleNamespace(method=SimpleNamespace()))


def test_embedding_frames_stay_within_budget(clip, base_new):
    "Throttled frames: the first, the last, and few between; the budget sets the gap from the measured cost."
    train, valid, _ = base_new
    recorder = Recorder(valid, embed_every=60)
    Trainer(coop(clip, train.classes), train, epochs=8, callbacks=[recorder], progress=False).fit()
    assert [f["epoch"] for f in recorder.frames] == [0, 8]
    throttle = Throttle(0, budget=0.25)
    throttle.run(time.sleep, 0.05)
    assert not throttle.due() and throttle.next - time.perf_counter() > 0.1      # 0.05 s of work buys 0.2 s of rest


def test_dashboard_reuses_one_figure_and_its_artists(clip, base_new):
    train, valid, new = base_new
    dashboard = Dashboard(valid, new=new, every_steps=1, every_seconds=0, budget=None, display=True)
    figure, pictures = dashboard.figure, []
    dashboard.image.observe(lambda change: pictures.append(change["new"]), "value")
    Trainer(coop(clip, train.classes), train, epochs=30, callbacks=[dashboard], progress=False).fit()
    # the closing redraw repeats the last step's picture when one was drawn at that step; traitlets does not
    # re-announce an unchanged value, so one redraw may add no new picture
    assert dashboard.redraws >= 3 and dashboard.redraws - 1 <= len(pictures) <= dashboard.redraws and len(set(pictures)) > 2
    assert dashboard.figure is figure and not matplotlib.pyplot.get_fignums()    # one Agg figure, outside pyplot: no leak
    assert "<b>done</b>" in dashboard.status.value and 0 < dashboard.seconds
    lines = [len(ax.lines) for ax in figure.axes]
    dashboard.redraw()
    assert [len(ax.lines) for ax in figure.axes] == lines                       # updated, not re-created


def test_headless_dashboard_records_and_saves(clip, base_new, tmp_path):
    train, valid, _ = base_new
    dashboard = Dashboard(valid, display=False)
    assert dashboard.widget is None
    Trainer(coop(clip, train.classes), train, epochs=3, callbacks=[dashboard], progress=False).fit()
    assert dashboard.redraws == 0 and len(dashboard.epochs) == 3
    path = dashboard.save_png(tmp_path / "dashboard.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    drift = DriftView(dashboard)
    assert len(drift.coords) == len(dashboard.frames) and drift.coords[0].shape == (min(200, len(valid)) + 5, 2)
    assert (tmp_path / "map.png").exists() is False and drift.save_png(tmp_path / "map.png", k=0).exists()


def test_pca_frames_fit_once_on_the_first_frame(clip, base_new):
    train, valid, _ = base_new
    recorder = Recorder(valid, embed_every=0, budget=1)
    Trainer(coop(clip, train.classes), train, epochs=3, callbacks=[recorder], progress=False).fit()
    coords = pca_frames(recorder.frames)
    n = len(recorder.frames[0]["images"])
    np.testing.assert_allclose(coords[0][:n], coords[-1][:n], atol=1e-5)        # CoOp: image features fixed, same axes
    assert np.abs(coords[-1][n:] - coords[0][n:]).max() > 0                      # the class texts moved
    with pytest.raises(ValueError, match="probe"): pca_frames([dict(recorder.frames[0], images=None)])
    with pytest.raises(ValueError, match="choose"): DriftView(recorder, method="tsne")


def wait_for_steps(run, dashboard, n):
    "Poll until the dashboard has `n` steps (no assumption about the machine's speed); fail if the run ends first."
    while run.running and len(dashboard.snapshot()["steps"]) < n: time.sleep(0.05)
    assert len(dashboard.snapshot()["steps"]) >= n, f"the run ended before step {n}: {run.error!r}"


def test_background_fit_pause_unpause_stop(clip, base_new):
    train, valid, _ = base_new
    dashboard = Dashboard(valid, display=False)
    run = fit_in_background(Trainer(coop(clip, train.classes), train, epochs=500, callbacks=[dashboard], progress=False))
    wait_for_steps(run, dashboard, 3)
    run.pause(); held = len(dashboard.snapshot()["steps"]); time.sleep(0.4)
    assert len(dashboard.snapshot()["steps"]) <= held + 1 and run.running     # the batch under way ends, then it holds
    run.unpause(); wait_for_steps(run, dashboard, held + 2); run.stop()
    trainer = run.join(timeout=600)
    assert not run.running and held < len(dashboard.steps) and trainer.epoch < 500
    assert [f["epoch"] for f in dashboard.frames][-1] == trainer.epoch            # the stopped state gets its frame
    assert dashboard.state == "stopped"


def test_background_fit_reraises_training_errors(clip, base_new):
    train, _, _ = base_new
    method = coop(clip, train.classes)
    method.loss = lambda batch: {"loss": method.ctx.sum().detach() * float("nan")}
    run = BackgroundFit(Trainer(method, train, epochs=2, progress=False))
    with pytest.raises(FloatingPointError, match="loss is nan"): run.join(timeout=60)
    with pytest.raises(ValueError, match="Dashboard"): run.stop()


class Hold(Callback):
    "Waits in `before_fit` until `go` is set, after setting `reached`; `order` puts it before or after the Dashboard (10)."
    def __init__(self, order=-1): self.order, self.reached, self.go = order, threading.Event(), threading.Event()
    def before_fit(self, trainer): self.reached.set(); assert self.go.wait(600), "the test never set go"


class Explode(Callback):
    "Fails at the first batch with a message full of HTML."
    def before_batch(self, trainer): raise ValueError("bad <input> & no 'fix'")


def test_stop_right_after_fit_in_background_ends_the_fit_early(clip, base_new):
    train, valid, _ = base_new
    dashboard = Dashboard(valid, display=False)
    run = fit_in_background(Trainer(coop(clip, train.classes), train, epochs=500, callbacks=[dashboard], progress=False))
    run.stop()
    trainer = run.join(timeout=600)
    assert trainer.epoch < 500 and dashboard.state == "stopped"


def test_stop_before_the_first_batch_stops_there(clip, base_new):
    "A Stop that surely comes before the fit's first batch (the fit is held in before_fit) ends it there: the Dashboard keeps it."
    train, valid, _ = base_new
    hold, dashboard = Hold(), Dashboard(valid, display=True)
    run = fit_in_background(Trainer(coop(clip, train.classes), train, epochs=6, callbacks=[hold, dashboard], progress=False))
    assert dashboard.state == "waiting" and "<b>waiting</b>" in dashboard.status.value
    run.stop(); assert dashboard.state == "stopped" and "<b>stopped</b>" in dashboard.status.value    # at once
    hold.go.set()
    trainer = run.join(timeout=600)
    assert trainer.epoch == 0 and trainer.step_in_epoch == 0 and dashboard.steps == []
    assert dashboard.state == "stopped" and "<b>stopped</b>" in dashboard.status.value and "done" not in dashboard.status.value
    run.stop()                                                                    # the fit is over: ignored, not left for the next fit
    assert Trainer(coop(clip, train.classes), train, epochs=1, callbacks=[dashboard], progress=False).fit().epoch == 1
    assert dashboard.state == "done"


def test_second_background_fit_is_refused_before_a_thread_starts(clip, base_new):
    train, valid, _ = base_new
    method, hold, dashboard = coop(clip, train.classes), Hold(), Dashboard(valid, display=False)
    trainer = Trainer(method, train, epochs=2, callbacks=[hold, dashboard], progress=False)
    run = fit_in_background(trainer)
    fits = lambda: {t for t in threading.enumerate() if t.name == "clipexplore-fit"}
    before = fits()
    with pytest.raises(RuntimeError, match=r"this trainer \(Trainer\) is already fitting in the background.*stop\(\) or join\(\)"):
        fit_in_background(trainer)
    with pytest.raises(RuntimeError, match=r"this method \(CoOp\) is already fitting"):
        fit_in_background(Trainer(method, train, epochs=2, progress=False))
    with pytest.raises(RuntimeError, match=r"this dashboard \(Dashboard\) is already fitting"):
        fit_in_background(Trainer(coop(clip, train.classes), train, epochs=2, callbacks=[dashboard], progress=False))
    assert fits() <= before and dashboard.state == "waiting"                     # no new thread; the first run untouched
    hold.go.set()
    assert run.join(timeout=600).epoch == 2 and dashboard.state == "done"
    again = Trainer(method, train, epochs=1, callbacks=[dashboard], progress=False)
    assert fit_in_background(again).join(timeout=600).epoch == 1                # free again once the first has ended


def test_join_with_a_timeout_on_a_running_fit_raises(clip, base_new):
    train, valid, _ = base_new
    hold, dashboard = Hold(), Dashboard(valid, display=False)
    run = fit_in_background(Trainer(coop(clip, train.classes), train, epochs=2, callbacks=[hold, dashboard], progress=False))
    with pytest.raises(TimeoutError, match=r"still training after 0.01 s; call join\(\) again or stop\(\)"): run.join(timeout=0.01)
    assert run.running
    run.stop(); hold.go.set()
    assert run.join(timeout=600).epoch == 0 and not run.running


def test_error_in_the_training_thread_shows_in_the_status(clip, base_new):
    train, valid, _ = base_new
    method = coop(clip, train.classes)
    method.loss = lambda batch: {"loss": method.ctx.sum().detach() * float("nan")}
    dashboard = Dashboard(valid, display=True)
    run = fit_in_background(Trainer(method, train, epochs=2, callbacks=[dashboard], progress=False))
    with pytest.raises(FloatingPointError, match="loss is nan"): run.join(timeout=600)
    assert dashboard.state == "error" and "<b>error</b>" in dashboard.status.value and "loss is nan" in dashboard.status.value
    run.stop(); assert dashboard.state == "error"                                # over: nothing to stop
    escaped = Dashboard(valid, display=True)
    run = fit_in_background(Trainer(coop(clip, train.classes), train, epochs=2, callbacks=[Explode(), escaped], progress=False))
    with pytest.raises(ValueError, match="bad"): run.join(timeout=600)
    assert "ValueError: bad &lt;input&gt; &amp; no &#x27;fix&#x27;" in escaped.status.value and "<input>" not in escaped.status.value


def test_pause_unpause_and_stop_show_in_the_status_at_once(clip, base_new):
    "Paused, training, stopped: set by the clicks themselves; a fit paused before its first batch holds there until stopped."
    train, valid, _ = base_new
    hold, dashboard = Hold(order=20), Dashboard(valid, display=True)                # after the Dashboard: the fit has begun
    run = fit_in_background(Trainer(coop(clip, train.classes), train, epochs=500, callbacks=[dashboard, hold], progress=False))
    assert hold.reached.wait(600) and dashboard.state == "training"
    run.pause()
    assert dashboard.state == "paused" and "<b>paused</b>" in dashboard.status.value and dashboard.pause_button.value
    run.unpause()
    assert dashboard.state == "training" and "<b>training</b>" in dashboard.status.value and not dashboard.pause_button.value
    dashboard.pause_button.value = True                                           # the Pause button, clicked
    assert dashboard.state == "paused"
    hold.go.set()                                                                 # on to the first batch, which waits
    run.pause().stop()
    assert dashboard.state == "stopped" and "<b>stopped</b>" in dashboard.status.value
    run.pause(); assert dashboard.state == "stopped"                              # stopping wins
    trainer = run.join(timeout=600)
    assert trainer.epoch == 0 and dashboard.steps == [] and dashboard.state == "stopped"   # held, then stopped: no batch ran


def live_notebook(epochs):
    "A notebook that trains CoOp in the cell with a displayed Dashboard."
    import nbformat
    setup = """import torch
from clipexplore.backbone import load_clip
from clipexplore.data import few_shot, toy_recordset
from clipexplore.engine import FeatureDataset, Trainer
from clipexplore.methods.coop import CoOp
from clipexplore.toyworld import ToyWorld
from clipexplore.widgets import Dashboard, fit_in_background
torch.set_num_threads(1)
clip = load_clip(device="cpu")
pool = toy_recordset(ToyWorld(600, seed=11, distractors=True))
train = FeatureDataset.encode(clip, few_shot(pool, 16, seed=1).dataset(clip.preprocess))
valid = FeatureDataset.encode(clip, ToyWorld(200, seed=8, distractors=True))
dashboard = Dashboard(valid, every_steps=1, every_seconds=1, budget=0.5)
dashboard"""
    cells = [setup, f"trainer = Trainer(CoOp(clip, pool.classes, n_ctx=4), train, epochs={epochs}, callbacks=[dashboard], progress=False).fit()\n"
                    "print('trained', trainer.epoch, 'epochs,', dashboard.redraws, 'redraws')"]
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in cells])
    nb.metadata["kernelspec"] = dict(name="python3", display_name="Python 3", language="python")
    return nb


def test_dashboard_in_a_plain_nbclient_run():
    "A kernel with no front end attached: widgets are built and updated, nothing crashes or blocks."
    from nbclient import NotebookClient
    nb = live_notebook(epochs=4)
    NotebookClient(nb, timeout=300, kernel_name="python3").execute()
    outputs = [o for cell in nb.cells for o in cell.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    assert any("application/vnd.jupyter.widget-view+json" in o.get("data", {}) for o in outputs)
    assert "trained 4 epochs" in "".join(o.get("text", "") for o in outputs)


class Peek(Callback):
    "Records the dashboard's buttons (disabled, tooltip) and state at each batch."
    order = 20
    def __init__(self, dashboard): self.dashboard, self.seen = dashboard, []
    def before_batch(self, trainer):
        d = self.dashboard
        self.seen.append((d.stop_button.disabled, d.pause_button.disabled, d.stop_button.tooltip, d.state))


def test_foreground_fit_disables_stop_and_pause_with_a_reason(clip, base_new):
    "A fit in the cell itself cannot read clicks: its buttons are greyed out, saying why; a background fit's are live."
    train, valid, _ = base_new
    dashboard = Dashboard(valid, display=True)
    assert not dashboard.stop_button.disabled and dashboard.buttons_disabled_because() is None     # before any fit
    peek = Peek(dashboard)
    Trainer(coop(clip, train.classes), train, epochs=2, callbacks=[dashboard, peek], progress=False).fit()
    assert peek.seen and all(stop and pause and "fit_in_background" in tip and state == "training" for stop, pause, tip, state in peek.seen)
    assert "Stop and Pause are off" not in dashboard.status.value and dashboard.state == "done"
    assert dashboard.stop_button.disabled and "over" in dashboard.stop_button.tooltip               # the run is over
    steered = Dashboard(valid, display=True)
    peek = Peek(steered)
    fit_in_background(Trainer(coop(clip, train.classes), train, epochs=2, callbacks=[steered, peek], progress=False)).join(timeout=600)
    assert peek.seen and not any(stop or pause for stop, pause, _, _ in peek.seen)


def test_empty_panels_show_notes_not_ticks_until_their_data_arrives(clip, base_new):
    train, valid, _ = base_new
    dashboard = Dashboard(valid, display=False)
    view = dashboard.view
    notes = lambda: [t.get_text() for ax in dashboard.figure.axes for t in ax.texts]
    assert len(notes()) == 5 and all(t.strip() for t in notes())               # one per panel, concepts included
    assert not view.ax_acc.yaxis.get_tick_params()["labelleft"]                # no meaningless ±0.05
    Trainer(coop(clip, train.classes), train, epochs=2, callbacks=[dashboard], progress=False).fit()
    view.update(dashboard.snapshot())
    assert not view.placeholders and set(notes()) >= set(train.classes)         # notes gone; class names on the map's stars
    assert view.ax_acc.yaxis.get_tick_params()["labelleft"]


def test_drift_gets_enough_points_however_tight_the_budget(clip, base_new):
    "A run records drift at least `drift_points` times (plus its start), even when the budget allows nothing more."
    train, valid, _ = base_new
    recorder = Recorder(valid, embed_every=1e9, budget=1e-9)
    Trainer(coop(clip, train.classes), train, epochs=40, callbacks=[recorder], progress=False).fit()
    epochs = [d["epoch"] for d in recorder.drifts]
    assert len(epochs) >= Recorder.drift_points + 1 and epochs[0] == 0 and epochs[-1] == 40
    assert [f["epoch"] for f in recorder.frames] == [0, 40]                      # images: as throttled as asked
    assert max(recorder.drifts[-1]["drift"]) > max(recorder.drifts[0]["drift"])


def test_figures_display_as_png_in_ipython():
    "A clipexplore figure returned by a cell shows as a picture, not as '<Figure size ...>'."
    from IPython.core.interactiveshell import InteractiveShell
    from clipexplore.widgets import new_figure
    shell = InteractiveShell.instance()
    fig = new_figure(figsize=(2, 2)); fig.subplots().plot([0, 1])
    data, _ = shell.display_formatter.format(fig)
    assert data["image/png"].startswith(b"\x89PNG")


def test_learned_concepts_are_read_live_for_each_kind_of_learner(clip, base_new):
    "Prompt learners: class texts against the bank (zero at zero-shot) and the context's words; CCLI: visual concepts; adapters: images."
    from clipexplore.concepts import ConceptBank
    from clipexplore.methods.adapters import CLIPAdapter
    from clipexplore.methods.ccli import CCLI
    train, valid, _ = base_new
    bank = ConceptBank.from_toyworld(clip)
    learners = {"class texts": coop(clip, train.classes), "visual concepts": CCLI(clip, train.classes, bank),
                "images": CLIPAdapter(clip, train.classes)}
    for kind, method in learners.items():
        recorder = Recorder(valid, embed_every=0, budget=float("inf"))
        Trainer(method, train, epochs=8, lr=0.01, callbacks=[recorder], progress=False).fit()
        first, last = recorder.frames[0], recorder.frames[-1]
        assert recorder.concept_kind == kind and recorder.bank.texts == bank.texts          # the toy bank by default
        assert last["concepts"].shape == (len(train.classes), len(bank)) and torch.isfinite(last["concepts"]).all()
        if kind != "visual concepts":
            assert first["concepts"].abs().max() < 1e-4 < last["concepts"].abs().max()      # nothing learned yet, then something
    assert recorder.frames[0]["context"] is None
    words = Recorder(valid, embed_every=0, budget=float("inf"))
    Trainer(coop(clip, train.classes), train, epochs=1, callbacks=[words], progress=False).fit()
    assert words.frames[0]["context"] == ["a", "photo", "of", "a"]                            # CoOp's init, read back in words


def test_concept_panel_draws_the_bank_or_says_how_to_get_one(clip, base_new):
    train, valid, _ = base_new
    shown = Dashboard(valid, display=False)
    Trainer(coop(clip, train.classes), train, epochs=3, callbacks=[shown], progress=False).fit()
    figure = shown.view.update(shown.snapshot())
    labels = {t.get_text() for t in shown.view.ax_concepts.get_xticklabels()}
    assert len(labels) == 8 and labels <= set(shown.bank.texts)
    assert shown.view.ax_concepts.get_xlabel().startswith("context ≈ ")                     # CoOp's learned words, under the heatmap
    assert shown.view.ax_concepts not in shown.view.placeholders
    off = Dashboard(valid, display=False, concepts=None)
    Trainer(coop(clip, train.classes), train, epochs=1, callbacks=[off], progress=False).fit()
    off.view.update(off.snapshot())
    assert off.bank is None and off.view.ax_concepts in off.view.placeholders and figure is shown.figure


@pytest.mark.parametrize("name", ["GOPro", "EnPrompt", "MVLPT"])
def test_dashboard_draws_methods_whose_features_take_other_arguments(clip, pool, name):
    "GOPro's class texts are per image, MVLPT's per context, EnPrompt's images need the texts: all are still drawn."
    from clipexplore.data import few_shot, subset_classes
    from clipexplore.methods.enprompt import EnPrompt
    from clipexplore.methods.gopro import GOPro
    from clipexplore.methods.mvlpt import MVLPT
    records = subset_classes(few_shot(pool, 4, seed=2), range(5)).dataset(clip.preprocess)
    make = dict(GOPro=GOPro, EnPrompt=EnPrompt, MVLPT=lambda clip, classes: MVLPT(clip, classes, "upt"))[name]
    torch.manual_seed(0)
    dashboard = Dashboard(records, display=False, every_seconds=0, budget=None)
    Trainer(make(clip, records.classes), records, epochs=2, batch_size=10, lr=0.01, callbacks=[dashboard], progress=False).fit()
    first, last = dashboard.frames[0], dashboard.frames[-1]
    moved = (first["images"] - last["images"]).abs().max()
    assert first["images"].shape == (len(records), clip.embed_dim) and len(dashboard.frames) == 3
    assert moved == 0 if name == "GOPro" else moved > 1e-4                 # GOPro prompts the texts only; the others the image tower
    dashboard.view.update(dashboard.snapshot())
    assert dashboard.view.ax_map not in dashboard.view.placeholders


def test_words_with_dollar_signs_draw_as_words():
    "A learned context's nearest token can be '$$' (seen in a real run): matplotlib must not parse it as TeX."
    from clipexplore.widgets import ConceptPanel, figure_png, new_figure
    figure = new_figure(); panel = ConceptPanel(figure.add_subplot())
    panel.show(dict(concepts=torch.randn(2, 3), context=["a", "$$", "of"]), "class texts", ["x$", "y", "z"], ["$cat", "dog"])
    assert figure_png(figure)[:4] == b"\x89PNG" and panel.ax.get_xlabel() == "context ≈ a $$ of"


def test_whole_run_budget_counts_what_was_spent_and_the_final_picture_to_come():
    dashboard = Dashboard(display=False, budget=0.03)
    dashboard._clock = time.perf_counter() - 10                      # 10 s trained: 0.27 s may go to the dashboard (90% of 3%)
    dashboard.draw_throttle.cost, dashboard.embedding_throttle.cost = 0.1, 0.05
    assert dashboard.affordable(dashboard.draw_throttle)             # 0.1 now + 0.15 still to come
    dashboard.seconds = 0.1
    assert not dashboard.affordable(dashboard.draw_throttle)         # 0.1 spent + 0.1 + 0.15 > 0.27
    assert Dashboard(display=False, budget=None).affordable(dashboard.draw_throttle)


def test_pictures_drawn_in_a_child_process_reach_the_widget(clip, base_new):
    "offload=True: the training process only pickles snapshots; the child's PNGs land in the widget, the last one after fit."
    train, valid, _ = base_new
    dashboard = Dashboard(valid, every_steps=1, every_seconds=0, budget=None, display=True, offload=True)
    assert dashboard.pictures is not None and dashboard.pictures.alive
    pictures = []
    dashboard.image.observe(lambda change: pictures.append(change["new"]), "value")
    Trainer(coop(clip, train.classes), train, epochs=20, callbacks=[dashboard], progress=False).fit()
    deadline = time.perf_counter() + 120                                        # a bounded wait for the last picture, not a timing assert
    while dashboard.pictures.pending(dashboard._picture_key) and time.perf_counter() < deadline: time.sleep(0.05)
    assert not dashboard.pictures.pending(dashboard._picture_key) and dashboard.pictures.alive
    assert dashboard.redraws == len(pictures) >= 1 and all(p[:8] == b"\x89PNG\r\n\x1a\n" for p in pictures)
    assert "<b>done</b>" in dashboard.status.value
    assert len(dashboard.view.figure.axes[0].lines) == 0                        # nothing was drawn in this process


def test_a_dead_picture_process_falls_back_to_drawing_here(clip, base_new):
    train, valid, _ = base_new
    dashboard = Dashboard(valid, every_steps=1, every_seconds=0, budget=None, display=True, offload=True)
    process = dashboard.pictures
    process.process.kill(); process.process.wait()
    deadline = time.perf_counter() + 60
    while process.alive and time.perf_counter() < deadline: time.sleep(0.05)
    assert not process.alive
    Trainer(coop(clip, train.classes), train, epochs=2, callbacks=[dashboard], progress=False).fit()
    assert dashboard.redraws >= 1 and len(dashboard.view.figure.axes[0].lines) > 0      # drawn in this process instead
