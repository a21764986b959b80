"""Pilot tests of the Inspect pane: choose a unit, search a regex, move the cursor, switch
views, on a checkpoint and on a model while it trains (engine in a thread)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from charlm_tui.app import CharLMApp
from charlm_tui.panes.inspect import InspectPane
from charlm_tui.widgets.value_text import ValueText
from engine.data.corpus import Vocab
from engine.inspect import find_units, unit_activations
from engine.runs.checkpoint import save_checkpoint
from tests.helpers import quoted_text, tiny_model
from tests.tui.waiting import text_of, wait_until

SIZE = (120, 40)
KEYS = {'"': "quotation_mark", "[": "left_square_bracket", "]": "right_square_bracket",
        "^": "circumflex_accent", "*": "asterisk", "\\": "backslash", "-": "minus"}  # fmt: skip


@pytest.fixture
def quoted_corpus(tmp_path: Path) -> Path:
    path = tmp_path / "quoted.txt"
    path.write_text(quoted_text(30_000, seed=1), encoding="utf-8")
    return path


def _checkpoint(tmp_path: Path, corpus: Path, model_type: str) -> tuple[Path, object]:
    vocab = Vocab(sorted(set(corpus.read_text(encoding="utf-8"))))
    model = tiny_model(model_type, len(vocab))
    run = tmp_path / f"run-{model_type}"
    save_checkpoint(run, model=model, vocab=vocab, meta={"step": 3})
    return run, model


async def _open_inspect(pilot) -> InspectPane:
    app = pilot.app
    pane = app.query_one(InspectPane)
    await wait_until(pilot, lambda: pane.has_model, 60, "a model")
    await pilot.press("f10")
    await wait_until(pilot, lambda: bool(pane.text), 60, "the excerpt's activations")
    await pilot.pause()
    return pane


async def _type(pilot, text: str) -> None:
    await pilot.press(*(KEYS.get(c, c) for c in text))


async def test_units_find_and_cursor_on_a_checkpoint(tmp_path: Path, quoted_corpus: Path) -> None:
    run, model = _checkpoint(tmp_path, quoted_corpus, "lstm")
    app = CharLMApp(corpus=str(quoted_corpus), checkpoint=str(run), engine_mode="thread")
    async with app.run_test(size=SIZE) as pilot:
        pane = await _open_inspect(pilot)
        view = app.query_one(ValueText)
        assert len(pane.text) == 2000 and view.text == pane.text and view.has_focus
        corpus_text = quoted_corpus.read_text(encoding="utf-8")
        assert pane.text == corpus_text[int(len(corpus_text) * 0.9) :][:2000]  # held-out split
        acts = unit_activations(model, Vocab(sorted(set(corpus_text))).encode(pane.text), pane.text)
        assert np.allclose(view.values, acts.unit(pane.unit), atol=1e-5)
        assert f"unit {pane.unit}" in text_of(app, "#inspect-status")

        # arrow keys move between units, in label order, and repaint the text
        labels = pane.labels()
        first = pane.unit
        await pilot.press("down")
        await wait_until(pilot, lambda: pane.unit != first and pane.values, 60, "next unit")
        assert labels.index(pane.unit) == (labels.index(first) + 1) % len(labels)
        await wait_until(
            pilot, lambda: np.allclose(view.values, acts.unit(pane.unit), atol=1e-5), 30
        )
        await pilot.press("up", "up")
        await wait_until(pilot, lambda: labels.index(pane.unit) == labels.index(first) - 1, 60)

        # a regex search lists the top units; the best one is shown
        find = app.query_one("#inspect-find")
        await pilot.press("slash")
        await wait_until(pilot, lambda: find.has_focus, 60, "the regex input")
        await _type(pilot, r'"[^"]*"')
        assert find.value == '"[^"]*"'
        await pilot.press("enter")
        await wait_until(pilot, lambda: bool(pane.found), 60, "units found")
        expected = find_units(acts, r'"[^"]*"', top=10)
        assert [u for u, _ in pane.found] == [m.label for m in expected.top]
        await wait_until(pilot, lambda: pane.unit == expected.top[0].label, 60)
        assert app.query_one("#inspect-units").option_count == 10
        assert "match" in text_of(app, "#inspect-status")

        # choosing another unit from the list shows it
        options = app.query_one("#inspect-units")
        options.focus()
        options.highlighted = 2
        await pilot.press("enter")
        await wait_until(pilot, lambda: pane.unit == expected.top[2].label, 60)
        await wait_until(
            pilot, lambda: np.allclose(view.values, acts.unit(pane.unit), atol=1e-5), 30
        )

        # the cursor walks the text; the side panel says where it is and the unit's value
        assert view.has_focus
        await pilot.press("home", "right", "right", "right")
        assert view.cursor == 3
        detail = text_of(app, "#inspect-detail")
        assert "cursor 3" in detail and f"{acts.unit(pane.unit)[3]:+.3f}" in detail

        # saliency follows the cursor: shares over the characters before it, summing to 1
        await pilot.press("v")
        assert "Transformers only" in text_of(app, "#inspect-status")
        await pilot.press("v")
        await wait_until(pilot, lambda: pane.saliency is not None, 60, "saliency")
        position, start, scores, _ = pane.saliency
        assert position == 3 and start == 0 and len(scores) == 3
        assert sum(scores) == pytest.approx(1.0, abs=1e-5)
        assert view.values[:3] == scores and all(v is None for v in view.values[3:])

        # the character map, with the cursor character's neighbours
        await pilot.press("v")
        await wait_until(pilot, lambda: pane.char_map is not None, 60, "character map")
        assert "nearest" in text_of(app, "#inspect-detail")
        await pilot.press("right")
        assert view.cursor == 4


async def test_pasted_text_is_inspected(tmp_path: Path, quoted_corpus: Path) -> None:
    """p opens a text box; ctrl+s inspects what was pasted there, newlines and all."""
    from textual.widgets import TextArea

    run, model = _checkpoint(tmp_path, quoted_corpus, "gru")
    app = CharLMApp(corpus=str(quoted_corpus), checkpoint=str(run), engine_mode="thread")
    async with app.run_test(size=SIZE) as pilot:
        pane = await _open_inspect(pilot)
        await pilot.press("p")
        await wait_until(pilot, lambda: type(app.screen).__name__ == "PasteScreen", 10)
        area = app.screen.query_one(TextArea)
        assert area.has_focus and area.text == ""
        await pilot.press("ctrl+s")  # nothing to inspect yet: the box stays
        assert type(app.screen).__name__ == "PasteScreen"
        pasted = 'ab "cd-ef" fa\nbe "ad-db-ca" f\n'
        area.insert(pasted)
        await pilot.press("ctrl+s")
        await wait_until(pilot, lambda: pane.text == pasted, 60, "the pasted text's activations")
        assert pane.source == "given text"
        vocab = Vocab(sorted(set(quoted_corpus.read_text(encoding="utf-8"))))
        acts = unit_activations(model, vocab.encode(pasted), pasted)
        view = app.query_one(ValueText)
        assert np.allclose(view.values, acts.unit(pane.unit), atol=1e-5)
        # p again starts from the given text; esc leaves it unchanged
        await pilot.press("p")
        await wait_until(pilot, lambda: type(app.screen).__name__ == "PasteScreen", 10)
        assert app.screen.query_one(TextArea).text == pasted
        await pilot.press("escape")
        assert pane.text == pasted and type(app.screen).__name__ == "Screen"


async def test_attention_heads_on_a_transformer(tmp_path: Path, quoted_corpus: Path) -> None:
    run, _ = _checkpoint(tmp_path, quoted_corpus, "transformer")
    app = CharLMApp(corpus=str(quoted_corpus), checkpoint=str(run), engine_mode="thread")
    async with app.run_test(size=SIZE) as pilot:
        pane = await _open_inspect(pilot)
        assert pane.groups == [("L0.mlp", 64), ("L1.mlp", 64)]
        view = app.query_one(ValueText)
        await pilot.press("home", *["right"] * 30, "v")
        await wait_until(pilot, lambda: pane.attention is not None, 60, "attention")
        position, start, weights = pane.attention
        assert position == 30 and start == 7  # the 24-character context ending at the cursor
        assert "layer 0 head 0" in text_of(app, "#inspect-status")
        window = view.values[start : position + 1]
        assert sum(window) == pytest.approx(1.0, abs=1e-5)
        assert all(v is None for v in view.values[:start] + view.values[position + 1 :])
        await pilot.press("down")
        assert "layer 0 head 1" in text_of(app, "#inspect-status")
        assert view.values[start : position + 1] == pytest.approx(weights[0][1])
        await pilot.press("down", "down")
        assert "layer 1 head 1" in text_of(app, "#inspect-status")


@pytest.mark.slow
async def test_inspects_the_model_while_it_trains(quoted_corpus: Path) -> None:
    app = CharLMApp(corpus=str(quoted_corpus), engine_mode="thread")
    async with app.run_test(size=SIZE) as pilot:
        pane = app.query_one(InspectPane)
        await wait_until(pilot, lambda: bool(app.corpus_name), 60, "the corpus")
        await pilot.press("f3")
        app.query_one("#preset").value = "tiny"
        await pilot.pause()
        app.query_one("#f-max_steps").value = "100000"
        await pilot.press("f5")
        await wait_until(pilot, lambda: pane.has_model, 120, "training to start")
        await _open_inspect(pilot)
        assert "in training" in text_of(app, "#inspect-status")
        assert pane.groups == [("L0.cell", 64), ("L0.hidden", 64)]
        await pilot.press("f3", "f7")  # stop training
