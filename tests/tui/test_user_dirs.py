"""The app with unusable user directories: it opens where it can, and says why once.

A data directory that cannot be created (a file in the way: `CHARLM_DATA_DIR=/etc/passwd`,
`HOME` pointing to a file) is shown in a notice; training then fails with that one
line instead of a crash. An unusable cache is worked around (a private temporary one).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from charlm_tui.app import CharLMApp
from charlm_tui.panes.corpus import CorpusPane
from charlm_tui.panes.training import TrainingPane
from tests.tui.waiting import train_tiny, wait_until

SIZE = (120, 36)


@pytest.mark.timeout(90)
async def test_a_data_directory_that_is_a_file_opens_the_app_with_a_notice(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory", encoding="utf-8")
    monkeypatch.setenv("CHARLM_DATA_DIR", str(blocker))
    app = CharLMApp(engine_mode="thread")
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: app.query_one(CorpusPane).loaded_name == "verse", 30)
        notices = [n.message for n in app._notifications]
        about = [n for n in notices if "data directory" in n and str(blocker) in n]
        assert len(about) == 1, notices
        assert "\n" not in about[0]
        pane = await train_tiny(pilot, "5", 60)
        assert pane.state == "failed"
        refused = [n.message for n in app._notifications if n.title == "Could not start training"]
        assert len(refused) == 1 and str(blocker) in refused[0], refused
        await pilot.press("ctrl+q")
    assert blocker.read_text(encoding="utf-8") == "not a directory"


@pytest.mark.timeout(90)
async def test_an_unusable_cache_directory_still_loads_and_trains(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("x", encoding="utf-8")
    monkeypatch.setenv("CHARLM_CACHE_DIR", str(blocker / "cache"))
    app = CharLMApp(engine_mode="thread", corpus="markov")
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: app.query_one(CorpusPane).loaded_name == "markov", 30)
        await pilot.press("f3")
        app.query_one("#preset").value = "tiny"
        await pilot.pause()
        app.query_one("#f-max_steps").value = "5"
        app.query_one("#f-eval_interval").value = "5"
        await pilot.press("f5")
        pane = app.query_one(TrainingPane)
        await wait_until(pilot, lambda: pane.state in ("done", "failed"), 60, "training to end")
        assert pane.state == "done"


@pytest.mark.timeout(60)
async def test_an_engine_error_keeps_a_path_with_a_newline_whole(tmp_path: Path) -> None:
    empty = tmp_path / "e\nmpty.txt"
    empty.write_text("", encoding="utf-8")
    app = CharLMApp(engine_mode="thread", corpus="markov")
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: app.query_one(CorpusPane).loaded_name == "markov", 30)
        path_input = app.query_one("#corpus-path")
        path_input.focus()
        path_input.value = str(empty)
        await pilot.press("enter")
        escaped = str(tmp_path / "e\\nmpty.txt")
        await wait_until(pilot, lambda: any(escaped in n.message for n in app._notifications), 20)
        notice = next(n.message for n in app._notifications if escaped in n.message)
        assert "\n" not in notice and "empty" in notice
