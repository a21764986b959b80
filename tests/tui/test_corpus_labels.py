"""Pilot tests of the Corpus pane: a labelled folder shows its labels with their sizes,
and every loaded corpus says what to do next (F3)."""

from __future__ import annotations

from pathlib import Path

from charlm_tui.app import CharLMApp
from charlm_tui.panes.corpus import CorpusPane
from tests.helpers import write_styles
from tests.tui.waiting import text_of, wait_until


async def _loaded(pilot) -> CorpusPane:
    pane = pilot.app.query_one(CorpusPane)
    await wait_until(pilot, lambda: bool(pane.loaded_name), 60, "the corpus")
    await pilot.pause()
    return pane


async def test_a_labelled_folder_shows_its_labels_and_sizes(tmp_path: Path) -> None:
    folder = write_styles(tmp_path)
    code = len((folder / "code.txt").read_text(encoding="utf-8"))
    prose = len((folder / "prose.txt").read_text(encoding="utf-8"))
    app = CharLMApp(corpus=str(folder), engine_mode="thread")
    async with app.run_test(size=(80, 24)) as pilot:
        await _loaded(pilot)
        stats = text_of(app, "#corpus-stats")
        assert "labels" in stats and "2, one per folder entry" in stats
        assert f"  code     {code:,} chars" in stats
        assert f"  prose    {prose:,} chars" in stats
        hint = "next: F3 Training, tick 'conditional' to learn the labels"
        assert text_of(app, "#corpus-next") == hint


async def test_a_plain_corpus_has_no_labels_row_and_a_next_step(tmp_path: Path) -> None:
    path = tmp_path / "plain.txt"
    path.write_text("just some text, nothing labelled here.\n" * 200, encoding="utf-8")
    app = CharLMApp(corpus=str(path), engine_mode="thread")
    async with app.run_test(size=(80, 24)) as pilot:
        await _loaded(pilot)
        stats = text_of(app, "#corpus-stats")
        assert "labels" not in stats
        assert text_of(app, "#corpus-next") == "next: F3 Training: train a model on it"
