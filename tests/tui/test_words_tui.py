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
    from engine.training.checkpoint import save_checkpoint
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
