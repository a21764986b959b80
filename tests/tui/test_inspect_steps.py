"""Pilot tests of the Inspect pane's walking and words (issue 22, item 8): after a regex
search ↑/↓ step down the ranked list; the unit list and sparkline show only in the
units view; the header stops saying "in training" once the run ended."""

from __future__ import annotations

from pathlib import Path

import pytest

from charlm_tui.app import CharLMApp
from charlm_tui.panes.inspect import InspectPane
from charlm_tui.panes.training import TrainingPane
from engine.data.corpus import Vocab
from engine.runs.checkpoint import save_checkpoint
from tests.helpers import quoted_text, tiny_model
from tests.tui.test_inspect_pane import _open_inspect, _type
from tests.tui.waiting import text_of, wait_until

SIZE = (120, 40)


@pytest.fixture
def quoted_corpus(tmp_path: Path) -> Path:
    path = tmp_path / "quoted.txt"
    path.write_text(quoted_text(30_000, seed=1), encoding="utf-8")
    return path


def _app(tmp_path: Path, corpus: Path) -> CharLMApp:
    """The app over a tiny LSTM checkpoint of `corpus`."""
    vocab = Vocab(sorted(set(corpus.read_text(encoding="utf-8"))))
    run = tmp_path / "run-lstm"
    save_checkpoint(run, model=tiny_model("lstm", len(vocab)), vocab=vocab, meta={"step": 3})
    return CharLMApp(corpus=str(corpus), checkpoint=str(run), engine_mode="thread")


async def test_arrows_walk_the_ranked_list_after_a_search(tmp_path: Path, quoted_corpus: Path):
    app = _app(tmp_path, quoted_corpus)
    async with app.run_test(size=SIZE) as pilot:
        pane = await _open_inspect(pilot)
        await pilot.press("slash")
        await _type(pilot, r'"[^"]*"')
        await pilot.press("enter")
        await wait_until(pilot, lambda: bool(pane.found), 60, "units found")
        ranked = [unit for unit, _ in pane.found]
        await wait_until(pilot, lambda: pane.unit == ranked[0], 60)
        await pilot.press("escape")  # back to the text, where ↑/↓ act
        options = app.query_one("#inspect-units")
        for rank in (1, 2, 3):
            await pilot.press("down")
            assert pane.unit == ranked[rank], "↓ steps down the ranked list, not by number"
            assert options.highlighted == rank
            status = text_of(app, "#inspect-status")
            assert f"unit {ranked[rank]} ({rank + 1}/{len(ranked)} for /" in status
        await pilot.press("up")
        assert pane.unit == ranked[2]
        await pilot.press("up", "up", "up")
        assert pane.unit == ranked[-1]  # wraps round the list

        # an empty search drops the list: ↓ walks every unit by number again
        await pilot.press("slash", *["backspace"] * 8, "enter", "escape")
        assert pane.found == [] and options.option_count == 0
        labels = pane.labels()
        here = pane.unit
        await pilot.press("down")
        assert labels.index(pane.unit) == (labels.index(here) + 1) % len(labels)
        assert f"/{len(labels)}, ↑↓)" in text_of(app, "#inspect-status")


async def test_unit_list_and_sparkline_only_in_the_units_view(tmp_path: Path, quoted_corpus: Path):
    app = _app(tmp_path, quoted_corpus)
    async with app.run_test(size=SIZE) as pilot:
        pane = await _open_inspect(pilot)
        parts = [
            app.query_one(s) for s in ("#inspect-spark", "#inspect-units", "#inspect-units-title")
        ]
        assert all(part.display for part in parts)
        for view in ("attention", "saliency", "map"):
            await pilot.press("v")
            assert pane.view == view
            assert not any(part.display for part in parts), view
            assert app.query_one("#inspect-detail").display  # the cursor's detail stays
        await pilot.press("v")
        assert pane.view == "units" and all(part.display for part in parts)


async def test_the_header_says_the_run_ended(quoted_corpus: Path) -> None:
    app = CharLMApp(corpus=str(quoted_corpus), engine_mode="thread")
    async with app.run_test(size=SIZE) as pilot:
        pane = app.query_one(InspectPane)
        training = app.query_one(TrainingPane)
        await wait_until(pilot, lambda: bool(app.corpus_name), 60, "the corpus")
        await pilot.press("f3")
        app.query_one("#preset").value = "tiny"
        await pilot.pause()
        app.query_one("#f-max_steps").value = "20"
        app.query_one("#f-eval_interval").value = "10"
        await pilot.press("f5")
        await wait_until(pilot, lambda: pane.has_model, 120, "training to start")
        await wait_until(pilot, lambda: training.state == "done", 120, "training to end")
        await pilot.press("f10")
        await wait_until(pilot, lambda: bool(pane.text), 60, "the excerpt")
        status = text_of(app, "#inspect-status")
        assert "in training" not in status
        assert "lstm trained at step 20 (u: latest weights)" in status
