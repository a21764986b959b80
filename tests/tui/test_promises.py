"""Issue 9 in the app: quitting during training saves the run, a huge typed paste neither
freezes the app nor grows without bound, and ctrl+s / F8 do what the footer says."""

from __future__ import annotations

import json
import time
from pathlib import Path

from textual import events

from charlm_tui.app import CharLMApp
from charlm_tui.panes import generation as generation_module
from charlm_tui.panes.corpus import CorpusPane
from charlm_tui.panes.training import TrainingPane
from engine.decoding.params import SamplingParams
from engine.worker import protocol as p
from tests.tui.waiting import text_of, wait_until

SIZE = (120, 36)


def _app(**kwargs) -> CharLMApp:
    return CharLMApp(engine_mode=kwargs.pop("engine_mode", "thread"), **kwargs)


async def _loaded(pilot, name: str) -> None:
    pane = pilot.app.query_one(CorpusPane)
    await wait_until(pilot, lambda: pane.loaded_name == name, what=f"corpus {name}")


async def _start_endless_training(pilot) -> TrainingPane:
    app = pilot.app
    await pilot.press("f3")
    app.query_one("#preset").value = "tiny"
    await pilot.pause()
    app.query_one("#f-max_steps").value = ""
    app.query_one("#f-time_budget").value = ""
    app.query_one("#f-eval_interval").value = "100000"  # no periodic save: only ours
    await pilot.press("f5")
    pane = app.query_one(TrainingPane)
    await wait_until(pilot, lambda: pane.state == "training", what="training")
    return pane


def _run_dirs(data_dir: Path) -> list[Path]:
    return [p for p in (data_dir / "runs").iterdir() if p.is_dir()]


async def test_quitting_during_training_saves_the_run_first(data_dir: Path, monkeypatch) -> None:
    """Case 4: ctrl+q while training says "saving", waits, and leaves a saved run (the
    final evaluation is skipped on quit, never the save): here evaluating takes longer
    than the engine's grace period, as on the busy machine of the report."""
    from engine.training import evaluation_steps

    real_evaluate = evaluation_steps.evaluate_windows

    def slow_evaluate(*args, **kwargs):
        time.sleep(30)
        return real_evaluate(*args, **kwargs)

    monkeypatch.setattr(evaluation_steps, "evaluate_windows", slow_evaluate)
    app = _app(corpus="markov")
    steps: list[int] = []
    notices: list[str] = []
    async with app.run_test(size=SIZE) as pilot:
        await _loaded(pilot, "markov")
        await _start_endless_training(pilot)
        original = app._handle_engine_event

        def spy(event: object) -> None:
            if isinstance(event, p.StepEvent):
                steps.append(event.step)
            original(event)

        app._handle_engine_event = spy  # type: ignore[method-assign]
        await wait_until(pilot, lambda: steps and steps[-1] >= 5, what="a few steps")
        real_notify = app.notify

        def record(message: str, **kwargs: object) -> None:
            notices.append(f"{message} | {app.sub_title}")
            real_notify(message, **kwargs)  # type: ignore[arg-type]

        app.notify = record  # type: ignore[method-assign]
        await pilot.press("ctrl+q")
    assert any("Saving the run" in n and "saving…" in n for n in notices), notices
    (run,) = _run_dirs(data_dir)
    last = (run / "last").resolve()
    state = json.loads((last / "state.json").read_text(encoding="utf-8"))
    assert state["step"] >= steps[-1] >= 5, "saved at or after the last step shown"
    assert state.get("final_val") is None, "no final evaluation on quit"
    assert (last / "trainer.safetensors").exists(), "resumable"


async def test_a_huge_typed_paste_is_capped_and_the_app_keeps_answering(monkeypatch) -> None:
    """Case 12: 20,000 characters arriving as keystrokes: the prompt stops at its cap
    (and says so once, no bell per key), and the keys are handled quickly."""
    monkeypatch.setattr(generation_module, "PROMPT_MAX_CHARS", 300)
    app = _app(corpus="markov")
    async with app.run_test(size=SIZE) as pilot:
        await _loaded(pilot, "markov")
        await pilot.press("f4")
        prompt = app.query_one("#prompt")
        prompt.max_length = generation_module.PROMPT_MAX_CHARS
        prompt.focus()
        bells: list[int] = []
        monkeypatch.setattr(app, "bell", lambda: bells.append(1))
        started = time.monotonic()
        for i in range(20_000):
            char = "abcdefgh "[i % 9]
            prompt.post_message(events.Key(char, char))
        await wait_until(pilot, lambda: len(prompt.value) == 300, 60, "the capped prompt")
        await pilot.press("f1")  # a key after the flood is still answered
        await wait_until(pilot, lambda: type(app.screen).__name__ == "HelpScreen", 60)
        elapsed = time.monotonic() - started
        assert len(prompt.value) == 300
        assert bells == []
        warnings = [n for n in app._notifications if "at most 300 characters" in n.message]
        assert len(warnings) == 1
    assert elapsed < 60


async def test_ctrl_s_saves_and_f8_evaluates_during_training(data_dir: Path) -> None:
    """Audit: the footer's ctrl+s (save) and F8 (evaluate) reach the engine and answer."""
    app = _app(corpus="markov")
    async with app.run_test(size=SIZE) as pilot:
        await _loaded(pilot, "markov")
        pane = await _start_endless_training(pilot)
        await wait_until(pilot, lambda: app.query_one("#m-step").value != "–")
        await pilot.press("ctrl+s")
        await wait_until(pilot, lambda: app.last_checkpoint is not None, 30, "a saved checkpoint")
        saved = Path(app.last_checkpoint)
        assert (saved / "state.json").exists() and (saved / "trainer.safetensors").exists()
        await pilot.press("f8")
        await wait_until(
            pilot,
            lambda: any("held-out split" in n.message for n in app._notifications),
            30,
            "the evaluation notice",
        )
        await pilot.press("f7")
        await wait_until(pilot, lambda: pane.state == "stopped", 60, "stopped")


async def test_a_crash_loop_waits_for_ctrl_r() -> None:
    """Audit: an engine that dies again soon after a restart is not restarted on its own
    (the crash-loop guard); the first death is."""
    app = _app(corpus="markov")
    async with app.run_test(size=SIZE) as pilot:
        await _loaded(pilot, "markov")
        await wait_until(pilot, lambda: app.engine_state == "ready")
        restarts: list[int] = []
        app.action_restart_engine = lambda: restarts.append(1)  # type: ignore[method-assign]
        app._engine_starts = 1
        app._handle_engine_event(p.EngineDied(-9, "the engine was killed by SIGKILL"))
        await pilot.pause()
        assert restarts == [1], "the first death restarts the engine"
        app._engine_starts = 2  # died again right after that restart
        app._handle_engine_event(p.EngineDied(-9, "the engine was killed by SIGKILL"))
        await pilot.pause(0.2)
        assert restarts == [1], "a crash loop waits for ctrl+r"
        assert app.engine_state == "dead" and "ctrl+r" in app.sub_title
        assert any("Press ctrl+r" in n.message for n in app._notifications)


async def test_output_of_an_older_generation_request_is_dropped() -> None:
    """Audit: chunks of a generation that a newer one replaced never reach the view."""
    from charlm_tui.messages import EngineEvent
    from charlm_tui.panes.generation import GenerationPane
    from charlm_tui.widgets.token_view import TokenView

    app = _app(corpus="markov")
    async with app.run_test(size=SIZE) as pilot:
        await _loaded(pilot, "markov")
        await pilot.press("f4")
        pane = app.query_one(GenerationPane)
        view = app.query_one(TokenView)
        pane.req = 2  # request 1 was replaced by request 2
        pane.generating = True
        top = [("a", 0.5)]
        for event in (
            p.GenerationStarted("", SamplingParams(), req=2),
            p.GenerationChunk("new", [0.5] * 3, [0.5] * 3, [top] * 3, req=2),
            p.GenerationChunk("OLD", [0.5] * 3, [0.5] * 3, [top] * 3, req=1),
            p.GenerationDone("OLD", 3, 0.1, 30.0, req=1),
        ):
            pane.post_message(EngineEvent(event))
        await wait_until(pilot, lambda: view.text == "new")
        await pilot.pause(0.2)
        assert (view.text == "new" and pane.generating is not False) or view.text == "new"


async def test_the_final_evaluation_shows_its_progress() -> None:
    """A long end-of-run evaluation says how far it is instead of looking frozen."""
    from charlm_tui.messages import EngineEvent
    from charlm_tui.panes.training import TrainingPane

    app = _app(corpus="markov")
    async with app.run_test(size=SIZE) as pilot:
        await _loaded(pilot, "markov")
        await pilot.press("f3")
        pane = app.query_one(TrainingPane)
        pane.post_message(EngineEvent(p.EvalProgressEvent(30_000, 111_539)))
        await wait_until(pilot, lambda: "30,000/111,539" in text_of(app, "#train-eta"))
        assert "final evaluation" in text_of(app, "#train-eta")
        assert "(27%)" in text_of(app, "#train-eta")
        pane.post_message(EngineEvent(p.EvalProgressEvent(500, 1000, "tokens")))  # a word run
        await wait_until(pilot, lambda: "500/1,000 tokens (50%)" in text_of(app, "#train-eta"))
