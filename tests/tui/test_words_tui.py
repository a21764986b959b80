"""Pilot tests of word-token models in the TUI: the form's switch, generation in characters."""

from __future__ import annotations

from pathlib import Path

import torch

from charlm_tui.app import CharLMApp
from charlm_tui.panes.generation import GenerationPane
from charlm_tui.panes.training_form import TrainForm
from charlm_tui.widgets.token_view import TokenView
from tests.tui.waiting import wait_until

SIZE = (120, 36)
CHARS = sorted(set("abcdefgh .\n"))
WORDS = ["bad", "cafe", "faced", "dead", "bed"]


def _word_run(path: Path) -> Path:
    from engine.data.words import WordVocab
    from engine.runs.checkpoint import save_checkpoint
    from tests.helpers import tiny_model

    vocab = WordVocab([*CHARS, *WORDS])
    model = tiny_model("lstm", vocab_size=len(vocab), seed=4)
    with torch.no_grad():  # make the whole words likely, so tokens are longer than a char
        model.head.bias[len(CHARS) :] += 3.0
    save_checkpoint(path, model=model, vocab=vocab, meta={"step": 2, "char_counts": [1] * 16})
    return path


async def test_the_form_trains_word_tokens_when_ticked(tmp_path: Path) -> None:
    app = CharLMApp(engine_mode="thread", corpus="markov")
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        form = app.query_one(TrainForm)
        assert "tokens" not in form.command().train  # characters unless ticked
        app.query_one("#words").value = True
        assert form.command().train["tokens"] == "word"
        form.fill_from_checkpoint("lstm", {"num_layers": 1, "hidden_size": 8}, {"tokens": "char"})
        assert app.query_one("#words").value is False


async def test_generation_from_a_word_checkpoint_keeps_the_length_in_characters(
    tmp_path: Path,
) -> None:
    run = _word_run(tmp_path / "words")
    app = CharLMApp(engine_mode="thread", checkpoint=str(run))
    async with app.run_test(size=SIZE) as pilot:
        pane = app.query_one(GenerationPane)
        await wait_until(pilot, lambda: pane.has_model, 30, "the word model")
        app.action_tab("generate")
        await wait_until(pilot, lambda: app.focused is app.query_one("#prompt"), 30, "the prompt")
        app.query_one("#prompt").value = "a bad "
        await pilot.press("escape")
        await pilot.press(*"lll")  # length 200 -> 50
        assert pane.values["length"] == 50
        await pilot.press("enter")
        view = app.query_one(TokenView)
        await wait_until(pilot, lambda: not pane.generating and len(view.text) == 50, 30)
        assert set(view.text) <= set(CHARS)
        # one entry per character (the cursor moves by character), and the alternatives
        # shown for a character are whole tokens: words among them
        assert len(view.data) == 50
        assert any(len(c) > 1 for top in view.data.tops for c, _ in top)


async def test_word_alternatives_keep_the_bars_and_percentages_in_columns() -> None:
    """Alternatives of a word model are words: one label column as wide as the widest (long
    words cut with an ellipsis), so every bar starts and every percentage ends in line."""
    from rich.cells import cell_len
    from textual.app import App, ComposeResult

    from charlm_tui.widgets.next_char import MAX_LABEL, NextCharPanel

    class PanelApp(App[None]):
        def compose(self) -> ComposeResult:
            yield NextCharPanel()

    top = [("the", 0.4), (" ", 0.3), ("\n", 0.1), ("extraordinarily", 0.05), ("a", 0.01)]
    app = PanelApp()
    async with app.run_test(size=(40, 12)) as pilot:
        panel = app.query_one(NextCharPanel)
        panel.show(3, ("the", 0.4, 0.4, top))
        await pilot.pause()
        lines = str(panel.render()).split("\n")[-len(top) :]
        assert len({cell_len(line) for line in lines}) == 1, lines
        column = 2 + MAX_LABEL + 1  # "N " then the widest label (the cut one) and a space
        assert all(line[column - 1] == " " and line[column] in "█▉▊▋▌▍▎▏" for line in lines), lines
        assert "extraor…" in lines[3] and lines[1].startswith("2 ␣ ")
        assert [line[-6:] for line in lines] == [" 40.0%", " 30.0%", " 10.0%", "  5.0%", "  1.0%"]
