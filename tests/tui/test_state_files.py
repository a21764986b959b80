"""Hostile saved-state files: the app still opens, with one notice, never hangs or crashes.

`app-state.json` and `recent.json` as a named pipe, a link to /dev/zero, a huge
sparse file, or JSON nested 100,000 levels deep.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from charlm_tui.app import CharLMApp
from charlm_tui.panes.corpus import CorpusPane
from tests.hostile import HOSTILE_JSON
from tests.tui.waiting import wait_until

SIZE = (120, 36)


@pytest.mark.timeout(60)
@pytest.mark.parametrize("name", ["app-state.json", "recent.json"])
@pytest.mark.parametrize("kind", sorted(HOSTILE_JSON))
async def test_a_hostile_state_file_opens_the_app_with_one_notice(
    kind: str, name: str, data_dir: Path
) -> None:
    make, fragment = HOSTILE_JSON[kind]
    data_dir.mkdir(parents=True, exist_ok=True)
    make(data_dir / name)
    app = CharLMApp(engine_mode="thread")
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        notices = [n.message for n in app._notifications]
        assert len([n for n in notices if fragment in n]) == 1, notices
        await wait_until(pilot, lambda: app.query_one(CorpusPane).loaded_name == "verse", 30)


@pytest.mark.timeout(60)
async def test_saving_state_never_writes_through_a_planted_link(
    data_dir: Path, tmp_path: Path
) -> None:
    data_dir.mkdir(parents=True, exist_ok=True)
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me", encoding="utf-8")
    (data_dir / "app-state.json.tmp").symlink_to(victim)
    (data_dir / "recent.json").symlink_to(victim)
    app = CharLMApp(engine_mode="thread")
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: app.query_one(CorpusPane).loaded_name == "verse", 30)
        from charlm_tui.state.recent import remember

        remember(str(victim))
        await pilot.press("ctrl+q")
    assert victim.read_text(encoding="utf-8") == "keep me"
