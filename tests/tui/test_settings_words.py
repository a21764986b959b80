"""Engine errors name settings, and the app words them its own way (issue 22, item 4):
no CLI flag reaches the app; comparing labels with guidance set compares with it."""

from __future__ import annotations

from pathlib import Path

from charlm_tui.app import CharLMApp
from charlm_tui.panes.generation import GenerationPane
from engine.decoding.params import SamplingParams
from engine.worker import protocol as p
from tests.tui.test_conditional_tui import SIZE, _run, _to_generate_tab
from tests.tui.waiting import text_of, wait_until


def _errors(app: CharLMApp) -> list[str]:
    return [n.message for n in app._notifications if n.severity == "error"]


async def test_compare_labels_with_guidance_set(tmp_path: Path) -> None:
    run = _run(tmp_path / "styles", ["code", "verse"], 2)
    app = CharLMApp(engine_mode="thread", checkpoint=str(run))
    async with app.run_test(size=SIZE) as pilot:
        pane = app.query_one(GenerationPane)
        await wait_until(pilot, lambda: pane.labels == ("code", "verse"), 30)
        await _to_generate_tab(pilot)
        await pilot.press(*"llllll", "n", "G", "G")  # a label, guidance 1.5
        assert pane.values["guidance"] == 1.5
        await pilot.press("C")
        await wait_until(pilot, lambda: type(app.screen).__name__ == "CompareScreen")
        screen = app.screen
        await wait_until(pilot, lambda: screen.done or _errors(app), 60, "the comparison")
        assert not _errors(app), _errors(app)
        assert screen.guidance == 1.5 and "guidance 1.5" in text_of(screen, "#compare-title")
        table = screen.query_one("#compare-table")
        assert [str(table.get_row_at(i)[0]) for i in range(table.row_count)] == [
            "none",
            "code",
            "verse",
        ]


async def test_engine_errors_reach_the_app_without_cli_flags(tmp_path: Path) -> None:
    run = _run(tmp_path / "styles", ["code", "verse"], 2)
    app = CharLMApp(engine_mode="thread", checkpoint=str(run))
    async with app.run_test(size=SIZE) as pilot:
        pane = app.query_one(GenerationPane)
        await wait_until(pilot, lambda: pane.labels == ("code", "verse"), 30)
        # guidance without a label: what the engine says about it, in the app's words
        app._send_command(
            p.Generate("ab", SamplingParams(length=5), req=p.new_request_id(), guidance=2.0)
        )
        await wait_until(pilot, lambda: _errors(app), 30, "the error")
        (notice,) = _errors(app)
        assert "guidance" in notice and "label" in notice, notice
        assert "--" not in notice, notice
