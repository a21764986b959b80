"""The run lifecycle in the app (issue 22): a loaded run is the whole run.

Train a conditional run on a labelled folder, quit, restart: the run is open again
(its corpus, its whole form, its model); load it from the list and F5 continues it at
the next step. A run trained on another corpus brings that corpus when loaded, and F5
over a model asks a real question (continue / new run / cancel) that is gone when
dismissed.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from charlm_tui.app import CharLMApp
from charlm_tui.panes.corpus import CorpusPane
from charlm_tui.panes.generation import GenerationPane
from charlm_tui.panes.training import TrainingPane
from engine.decoding.params import SamplingParams
from engine.worker import protocol as p
from tests.helpers import write_styles
from tests.tui.waiting import start_choice_shown, text_of, train_tiny, wait_until

SIZE = (120, 36)


@pytest.fixture
def styles(tmp_path: Path) -> Path:
    """A labelled folder: one file per label."""
    return write_styles(tmp_path)


def _app(**kwargs) -> CharLMApp:
    return CharLMApp(engine_mode="thread", **kwargs)


def _spy(app: CharLMApp) -> list[object]:
    """Every engine event the app handles from now on."""
    seen: list[object] = []
    original = app._handle_engine_event

    def spy(event: object) -> None:
        seen.append(event)
        original(event)

    app._handle_engine_event = spy  # type: ignore[method-assign]
    return seen


async def _conditional_form(pilot) -> None:
    """The labelled folder loaded, the tiny preset, "conditional" ticked."""
    app = pilot.app
    corpus = app.query_one(CorpusPane)
    await wait_until(pilot, lambda: corpus.loaded_name == "styles", what="the labelled folder")
    await pilot.press("f3")
    app.query_one("#preset").value = "tiny"
    await pilot.pause()
    box = app.query_one("#conditional")
    await wait_until(pilot, lambda: box.display, 30, "the conditional switch")
    box.value = True


async def _train_conditional(pilot, max_steps: str = "20") -> TrainingPane:
    app = pilot.app
    await _conditional_form(pilot)
    app.query_one("#f-max_steps").value = max_steps
    app.query_one("#f-eval_interval").value = "10"
    await pilot.press("f5")
    pane = app.query_one(TrainingPane)
    await wait_until(pilot, lambda: pane.state in ("done", "failed"), 120, "training to end")
    assert pane.state == "done", text_of(app, "#form-error")
    return pane


async def test_train_conditional_quit_restart_load_and_f5_continues(styles: Path) -> None:
    app = _app(corpus=str(styles))
    async with app.run_test(size=SIZE) as pilot:
        await _train_conditional(pilot)
        await pilot.press("ctrl+q")

    again = _app()  # no corpus, no checkpoint: the last run comes back
    async with again.run_test(size=SIZE) as pilot:
        seen = _spy(again)
        pane = again.query_one(TrainingPane)
        generation = again.query_one(GenerationPane)
        await wait_until(pilot, lambda: generation.has_model, 60, "the last run to reopen")
        await wait_until(pilot, lambda: again.query_one("#resume").display, 30, "continue")
        assert again.query_one(CorpusPane).loaded_name == "styles"
        assert again.query_one("#conditional").value, "the conditional switch restored"
        assert again.query_one("#preset").value == "tiny"

        runs = again.query_one("#runs")
        await wait_until(pilot, lambda: runs.option_count and runs.get_option_at_index(0).id)
        run_dir = runs.get_option_at_index(0).id
        again.load_run(run_dir)  # as Enter in the list or the palette does
        await wait_until(pilot, lambda: "loaded a checkpoint" in text_of(again, "#train-state"))
        assert again.query_one("#conditional").value
        assert again.query_one("#resume").value, "“continue this run” ticked"
        assert again.query_one("#f-max_steps").value == "40", "room to continue"
        await pilot.press("f5")
        await wait_until(pilot, lambda: pane.state != "idle", 10, "F5 to start")
        await wait_until(pilot, lambda: pane.state in ("done", "failed"), 120, "continuing")
        assert pane.state == "done", text_of(again, "#form-error")
        started = [e for e in seen if isinstance(e, p.TrainStarted)]
        assert started and started[-1].step == 20 and started[-1].run_dir == run_dir
        steps = [e.step for e in seen if isinstance(e, p.StepEvent)]
        assert steps and steps[0] >= 21, "continued at the next step, not from 0"
        assert runs.option_count == 1, "the same run, continued"


async def test_loading_a_run_of_another_corpus_brings_that_corpus(styles: Path) -> None:
    app = _app(corpus=str(styles))
    async with app.run_test(size=SIZE) as pilot:
        pane = await _train_conditional(pilot, "10")
        run_dir = pane.run_dir
        app.load_corpus("markov")
        corpus = app.query_one(CorpusPane)
        await wait_until(pilot, lambda: corpus.loaded_name == "markov", 30, "markov")
        assert not app.query_one("#conditional").display
        app.load_run(run_dir)
        await wait_until(pilot, lambda: corpus.loaded_name == "styles", 30, "its corpus back")
        await wait_until(pilot, lambda: app.query_one("#resume").display, 30, "continue offered")
        assert app.query_one("#conditional").display and app.query_one("#conditional").value
        assert "F5 continues it" in text_of(app, "#train-sample")


async def test_f5_over_a_model_asks_continue_new_or_cancel(styles: Path) -> None:
    app = _app(corpus=str(styles))
    async with app.run_test(size=SIZE) as pilot:
        pane = await _train_conditional(pilot, "10")
        seen = _spy(app)
        first_run = pane.run_dir
        assert "F5: continue this run or start a new one" in text_of(app, "#train-state")

        await pilot.press("f5")  # cancelled: the question goes, and nothing stays armed
        await start_choice_shown(pilot)
        await pilot.press("escape")
        await pilot.pause(0.5)
        assert type(app.screen).__name__ == "Screen"
        assert pane.state == "done" and "cancelled" in text_of(app, "#train-state")
        await pilot.press("f5")  # asks again, never starts silently
        await start_choice_shown(pilot)
        assert not [e for e in seen if isinstance(e, p.TrainStarted)]

        await pilot.press("c")  # continue the run trained just now
        await wait_until(pilot, lambda: _started(seen), 30, "the run to continue")
        await wait_until(pilot, lambda: pane.state in ("done", "failed"), 120, "continuing")
        started = [e for e in seen if isinstance(e, p.TrainStarted)]
        assert len(started) == 1 and started[0].run_dir == first_run and started[0].step == 10

        await _continue_choice_new(pilot)
        await wait_until(pilot, lambda: len(_started(seen)) == 2, 30, "a new run")
        await wait_until(pilot, lambda: pane.state in ("done", "failed"), 120, "the new run")
        assert _started(seen)[1].run_dir != first_run and _started(seen)[1].step == 0


def _started(seen: list[object]) -> list[p.TrainStarted]:
    return [e for e in seen if isinstance(e, p.TrainStarted)]


async def _continue_choice_new(pilot) -> None:
    await pilot.press("f5")
    await start_choice_shown(pilot)
    await pilot.press("n")


async def test_ctrl_l_goes_to_the_saved_runs_from_anywhere() -> None:
    app = _app(corpus="markov")
    async with app.run_test(size=SIZE) as pilot:
        corpus = app.query_one(CorpusPane)
        await wait_until(pilot, lambda: corpus.loaded_name == "markov", 30, "markov")
        await pilot.press("f4")
        await wait_until(pilot, lambda: app.focused is app.query_one("#prompt"), 10)
        await pilot.press("ctrl+l")  # from a text field too
        assert app.query_one("#tabs").active == "training"
        assert app.focused is app.query_one("#runs")


async def test_the_conditional_switch_shows_whole_and_ticks_show_in_the_glyph(
    styles: Path,
) -> None:
    app = _app(corpus=str(styles))
    async with app.run_test(size=(80, 24)) as pilot:
        corpus = app.query_one(CorpusPane)
        await wait_until(pilot, lambda: corpus.loaded_name == "styles", 30, "the folder")
        await pilot.press("f3")
        box = app.query_one("#conditional")
        await wait_until(pilot, lambda: box.display, 30, "the conditional switch")
        await pilot.pause(0.2)
        form = app.query_one("#train-form")
        assert box.region.y + 1 <= form.region.bottom, "visible without scrolling"
        assert "conditional (labels)" in str(box.render()), "its label whole"
        off = str(box.render())
        box.value = True
        await pilot.pause()
        assert "✓" in str(box.render()) and "✓" not in off


async def test_a_partial_evaluation_after_stop_does_not_blame_a_time_limit() -> None:
    app = _app(corpus="markov")
    async with app.run_test(size=SIZE) as pilot:
        corpus = app.query_one(CorpusPane)
        await wait_until(pilot, lambda: corpus.loaded_name == "markov", 30, "markov")
        result = {"val_loss": 2.0, "val_chars": 1408, "val_split_chars": 1440}
        app._handle_engine_event(p.TrainFinished({**result, "stopped_by": "stop"}))
        await pilot.pause()
        state = text_of(app, "#train-state")
        assert "1,408 of 1,440" in state and "Stop" in state and "time limit" not in state
        app._handle_engine_event(p.TrainFinished({**result, "stopped_by": "time_budget"}))
        await pilot.pause()
        assert "(time limit)" in text_of(app, "#train-state")


async def test_a_run_starting_is_not_the_engine_starting() -> None:
    app = _app(corpus="markov")
    async with app.run_test(size=SIZE) as pilot:
        corpus = app.query_one(CorpusPane)
        await wait_until(pilot, lambda: corpus.loaded_name == "markov", 30, "markov")
        app._handle_engine_event(p.StatusEvent("starting", "building the model"))
        assert "engine starting…" not in app.sub_title
        # sent now, not queued for a start-up
        app._send_command(p.Generate("a", SamplingParams(length=3)))
        assert not app._waiting


async def test_a_time_limit_typed_for_a_conditional_run_is_kept(styles: Path) -> None:
    """The form's time limit holds for a conditional run: the run ends by it, and the field
    still reads what was typed (it once read "no limit" while the run went on for 20 min)."""
    import time

    app = _app(corpus=str(styles))
    async with app.run_test(size=SIZE) as pilot:
        seen = _spy(app)
        await _conditional_form(pilot)
        app.query_one("#f-max_steps").value = ""
        app.query_one("#f-time_budget").value = "6"
        started = time.monotonic()
        await pilot.press("f5")
        pane = app.query_one(TrainingPane)
        await wait_until(pilot, lambda: pane.state in ("done", "failed"), 60, "training to end")
        assert pane.state == "done", text_of(app, "#form-error")
        assert time.monotonic() - started < 6 + 10
        begun = [e for e in seen if isinstance(e, p.TrainStarted)]
        assert begun and begun[-1].train["time_budget"] == 6
        assert begun[-1].train["conditional"] is True
        assert app.query_one("#f-time_budget").value == "6"


async def test_a_time_limit_typed_to_continue_a_conditional_run_is_kept(styles: Path) -> None:
    """Continuing a run with a time limit typed in the form: the run ends by it."""
    import time

    app = _app(corpus=str(styles))
    async with app.run_test(size=SIZE) as pilot:
        pane = await _train_conditional(pilot)
        seen = _spy(app)
        app.query_one("#f-max_steps").value = ""
        app.query_one("#f-time_budget").value = "6"
        started = time.monotonic()
        await pilot.press("f5")
        await start_choice_shown(pilot)
        await pilot.press("c")  # continue the run trained just now
        # Waited for by its events: a continued run that stops at once (past its best) can
        # start and finish between two looks at the pane's state, as it did once in CI.
        started_again = lambda: any(isinstance(e, p.TrainStarted) for e in seen)  # noqa: E731
        await wait_until(pilot, started_again, 10, "F5 to start")
        finished = lambda: any(isinstance(e, p.TrainFinished) for e in seen)  # noqa: E731
        await wait_until(pilot, finished, 60, "the continued run to finish")
        await wait_until(pilot, lambda: pane.state in ("done", "failed"), 60, "training to end")
        assert pane.state == "done", text_of(app, "#form-error")
        assert time.monotonic() - started < 6 + 10
        begun = [e for e in seen if isinstance(e, p.TrainStarted)]
        assert begun and begun[-1].train["time_budget"] == 6 and begun[-1].step == 20
        assert app.query_one("#f-time_budget").value == "6"
        # It ends by the typed limit, or sooner once past its best (at the lowest lr).
        ended = [e for e in seen if isinstance(e, p.TrainFinished)][-1].result
        assert ended["stopped_by"] in ("time_budget", "overfitting"), ended["stopped_by"]
        assert ended["train"]["time_budget"] == 6


async def test_a_run_whose_file_has_changed_says_so_not_to_open_it(tmp_path: Path) -> None:
    """The run's own file, edited since (other characters): the warning must not send the
    user to open the corpus that is already open."""
    corpus = tmp_path / "names.txt"
    corpus.write_text("anna\nbob\ncarl\ndora\n" * 300, encoding="utf-8")
    app = _app(corpus=str(corpus))
    async with app.run_test(size=SIZE) as pilot:
        loaded = app.query_one(CorpusPane)
        await wait_until(pilot, lambda: loaded.loaded_name == "names.txt", 30, "the file")
        pane = await train_tiny(pilot, "10")
        assert pane.state == "done", text_of(app, "#form-error")
        await pilot.press("ctrl+q")

    corpus.write_text("ZOE\nYVES\nXAVI\n" * 400, encoding="utf-8")  # none of the old letters
    again = _app()
    async with again.run_test(size=SIZE) as pilot:
        await wait_until(
            pilot,
            lambda: any("has changed since" in n.message for n in again._notifications),
            60,
            "the warning that the file changed",
        )
        messages = " ".join(n.message for n in again._notifications)
        assert "open that corpus" not in messages
        assert again.query_one(CorpusPane).loaded_name == "names.txt"
        hint = "#train-sample"
        await wait_until(pilot, lambda: "before the file changed" in text_of(again, hint), 30)
        assert "open its corpus" not in text_of(again, hint)
