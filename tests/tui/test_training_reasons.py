"""The training form trains what `charlm-tui train` would from the same choices, and shows
the resolution's reasons (engine/training/request.py) under its fields."""

from __future__ import annotations

import json
from pathlib import Path

from charlm_tui.app import CharLMApp
from charlm_tui.panes.corpus import CorpusPane
from charlm_tui.panes.training import TrainingPane
from tests.tui.waiting import text_of, wait_until


async def open_training(app: CharLMApp, pilot) -> None:
    """The markov sample loaded, the training pane shown."""
    corpus = app.query_one(CorpusPane)
    await wait_until(pilot, lambda: corpus.loaded_name == "markov", what="the corpus")
    await pilot.press("f3")


async def test_the_cpu_preset_is_fitted_in_the_app_too_and_the_form_says_why() -> None:
    app = CharLMApp(engine_mode="thread", corpus="markov")
    async with app.run_test(size=(120, 36)) as pilot:
        await open_training(app, pilot)
        app.query_one("#preset").value = "cpu"
        await pilot.pause()
        assert app.query_one("#f-width").value == "512"
        # 8 s: under the width probe's 20 s, with room for steps on a slow machine.
        app.query_one("#f-time_budget").value = "8"
        await pilot.press("f5")
        pane = app.query_one(TrainingPane)
        await wait_until(pilot, lambda: pane.state in ("done", "failed"), 120, "training to end")
        assert pane.state == "done"
        shown = text_of(app, "#form-error")
        assert "width and regularisation: fitted at the start to the 8 s budget" in shown
        assert "width 256: a " in shown  # 8 s is too short for the preset's 512
        assert "epochs of" in shown
        await pilot.pause()
        form, said = app.query_one("#train-form").region, app.query_one("#form-error").region
        assert form.contains(said.x, said.y), "the reasons scrolled into view"
        state = json.loads((Path(pane.run_dir) / "last" / "state.json").read_text("utf-8"))
        assert state["model"]["hidden_size"] == 256, "the width `train` would have trained"


async def test_a_time_limit_too_short_for_one_step_says_so_and_saves_nothing(
    data_dir: Path,
) -> None:
    """The engine's refusal (tests/cli/test_run_dir_cli.py) reaches the app in its
    words: the time limit, what it would need, and no run left behind."""
    app = CharLMApp(engine_mode="thread", corpus="markov")
    async with app.run_test(size=(120, 36)) as pilot:
        await open_training(app, pilot)
        app.query_one("#f-time_budget").value = "1"
        await pilot.press("f5")
        pane = app.query_one(TrainingPane)
        await wait_until(pilot, lambda: pane.state in ("done", "failed"), 60, "training to end")
        assert pane.state == "failed"
        shown = text_of(app, "#train-state") + text_of(app, "#form-error")
        assert "no time to train" in shown and "nothing was saved" in shown
        assert "--time-budget" not in shown  # the app's words, not the CLI's flag
        runs = data_dir / "runs"
        assert not runs.exists() or not any(runs.iterdir())


async def test_a_note_from_the_running_run_is_shown_once_and_keeps_the_state() -> None:
    """A note (the data fit raised at the first evaluation, engine/training/refit.py) is a
    toast; the status line keeps the precision it shows. The CLI prints it as is."""
    from charlm_tui.cli_common import stderr
    from charlm_tui.cli_train_display import TrainDisplay
    from engine.worker import protocol as p

    line = "regularisation raised at step 250: training runs at 35k chars/s, faster than"
    app = CharLMApp(engine_mode="thread", corpus="markov")
    async with app.run_test(size=(120, 36)) as pilot:
        await open_training(app, pilot)
        pane = app.query_one(TrainingPane)
        pane._got_StatusEvent(p.StatusEvent("training", "bf16 (1.6x faster here)"))
        pane._got_StatusEvent(p.StatusEvent("training", line, note=True))
        await pilot.pause()
        assert "bf16 (1.6x faster here)" in text_of(app, "#train-state")
        assert [n.message for n in app._notifications] == [line]
    display = TrainDisplay(quiet=False)  # not a terminal here: a line per event
    with stderr.capture() as said:
        display(p.StatusEvent("training", line, note=True))
    assert said.get().startswith("regularisation raised")  # not "precision regularisation"
