"""Pilot tests of labels and blends in the TUI: the condition knob, guidance keys, the
training form's conditional switch, labels side by side in the compare view, a blend."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from charlm_tui.app import CharLMApp
from charlm_tui.messages import EngineCommand
from charlm_tui.panes.corpus import CorpusPane
from charlm_tui.panes.generation import GenerationPane
from charlm_tui.panes.training_form import TrainForm
from charlm_tui.widgets.token_view import TokenView
from engine.worker import protocol as p
from tests.tui.waiting import text_of, wait_until

SIZE = (120, 36)
CHARS = sorted(set("abcdefgh .\n"))


def _run(path: Path, labels: list[str], seed: int) -> Path:
    from engine.data.corpus import Vocab
    from engine.runs.checkpoint import save_checkpoint
    from tests.helpers import tiny_model

    model = tiny_model("lstm", vocab_size=len(CHARS), seed=seed, num_labels=len(labels))
    with torch.no_grad():
        for param in model.parameters():  # outputs that depend strongly on the label
            param.normal_(0.0, 1.0)
    meta = {"step": 3, "char_counts": [1] * len(CHARS), "labels": labels}
    save_checkpoint(path, model=model, vocab=Vocab(CHARS), meta=meta)
    return path


async def _to_generate_tab(pilot) -> None:
    app = pilot.app
    corpus = app.query_one(CorpusPane)  # its first load takes the focus: let it finish first
    await wait_until(pilot, lambda: bool(corpus.loaded_name), 60, "the startup corpus")
    await pilot.pause(0.2)
    app.action_tab("generate")
    await wait_until(pilot, lambda: app.focused is app.query_one("#prompt"), 30, "the prompt")
    await pilot.press("escape")  # from the prompt to the output, where the knob keys act
    assert app.focused is app.query_one(TokenView)


async def _generated(pilot, pane: GenerationPane, before: str = "") -> str:
    view = pilot.app.query_one(TokenView)
    await wait_until(
        pilot,
        lambda: (
            not pane.generating and len(view.data) == pane.values["length"] and view.text != before
        ),
        30,
    )
    return view.text


async def test_the_condition_knob_cycles_labels_and_steers_generation(tmp_path: Path) -> None:
    run = _run(tmp_path / "styles", ["code", "verse"], 0)
    app = CharLMApp(engine_mode="thread", checkpoint=str(run))
    async with app.run_test(size=SIZE) as pilot:
        pane = app.query_one(GenerationPane)
        await wait_until(pilot, lambda: pane.labels == ("code", "verse"), 30, "the labels")
        await _to_generate_tab(pilot)
        await pilot.press(*"lll")  # length 200 -> 50
        assert pane.values["length"] == 50
        assert "label none" in text_of(app, "#knobs").replace("\u00a0", " ")
        await pilot.press("enter")
        plain = await _generated(pilot, pane)

        await pilot.press("n")  # auto-regenerates with the same seed, now as "code"
        assert pane.values["condition"] == "code"
        assert "label code" in text_of(app, "#knobs").replace("\u00a0", " ")
        code = await _generated(pilot, pane, plain)
        await pilot.press("n")
        assert pane.values["condition"] == "verse"
        verse = await _generated(pilot, pane, code)
        assert len({plain, code, verse}) == 3

        await pilot.press("n")  # an even mix of both labels
        knobs = text_of(app, "#knobs").replace("\u00a0", " ")
        assert pane.values["condition"] == "code=1,verse=1"
        assert "code 50% + verse 50%" in knobs
        await pilot.press("G")
        assert pane.values["guidance"] == pytest.approx(1.25)
        assert "guide 1.25" in text_of(app, "#knobs").replace("\u00a0", " ")
        await _generated(pilot, pane, verse)
        await pilot.press("n")  # back to none
        assert pane.values["condition"] == ""


async def test_an_unconditional_model_shows_no_condition_knob(tmp_path: Path) -> None:
    run = _run(tmp_path / "plain", [], 1)
    app = CharLMApp(engine_mode="thread", checkpoint=str(run))
    async with app.run_test(size=SIZE) as pilot:
        pane = app.query_one(GenerationPane)
        await wait_until(pilot, lambda: pane.has_model, 30)
        await _to_generate_tab(pilot)
        await pilot.press("n")
        assert pane.values["condition"] == ""
        assert "label" not in text_of(app, "#knobs")


async def test_the_training_form_offers_conditional_for_a_labelled_corpus(tmp_path: Path) -> None:
    corpus = tmp_path / "styles"
    corpus.mkdir()
    (corpus / "code.txt").write_text("x = 1\n" * 200, encoding="utf-8")
    (corpus / "verse.txt").write_text("roses are red\n" * 100, encoding="utf-8")
    app = CharLMApp(engine_mode="thread", corpus=str(corpus))
    async with app.run_test(size=SIZE) as pilot:
        box = app.query_one("#conditional")
        await wait_until(pilot, lambda: box.display, 30, "the conditional switch")
        form = app.query_one(TrainForm)
        assert "conditional" not in form.command().train  # off until ticked
        box.value = True
        assert form.command().train["conditional"] is True
        app.query_one("#corpus-path").value = "markov"
        app.query_one(TrainForm).show_conditional([])  # what a plain corpus load does
        assert not box.display and "conditional" not in form.command().train


async def test_compare_labels_side_by_side_and_a_blend_in_the_header(tmp_path: Path) -> None:
    run = _run(tmp_path / "styles", ["code", "verse"], 2)
    other = _run(tmp_path / "other", [], 3)
    app = CharLMApp(engine_mode="thread", checkpoint=str(run))
    async with app.run_test(size=SIZE) as pilot:
        pane = app.query_one(GenerationPane)
        await wait_until(pilot, lambda: pane.labels == ("code", "verse"), 30)
        await _to_generate_tab(pilot)
        await pilot.press(*"llllll", "C")
        await wait_until(pilot, lambda: type(app.screen).__name__ == "CompareScreen")
        screen = app.screen
        await wait_until(pilot, lambda: screen.done, 60, "the label comparison")
        table = screen.query_one("#compare-table")
        assert [str(table.get_row_at(i)[0]) for i in range(table.row_count)] == [
            "none",
            "code",
            "verse",
        ]
        assert "Compare labels" in text_of(screen, "#compare-title")
        await pilot.press("escape")

        pane.post_message(EngineCommand(p.AddToBlend(str(other), req=p.new_request_id())))
        await wait_until(pilot, lambda: bool(pane.blend), 30, "the blend")
        assert "mixture of current 50% + other 50%" in text_of(app, "#gen-header")
        await pilot.press("n", "enter")  # the condition applies to the conditional member
        await _generated(pilot, pane)
        await pilot.press("minus")
        await wait_until(pilot, lambda: not pane.blend, 30)
        assert not app.query_one("#gen-header").display
