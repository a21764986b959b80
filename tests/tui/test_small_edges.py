"""Pilot tests of issue 22's smaller points (item 10): an empty prompt on an items model
starts a fresh item; F8 says what it scored; alt+1..4 as tmux sends them switch panes;
a finished run's status line is whole at 80 columns and names the next steps (F5, F4);
no footer is cut at 80 columns."""

from __future__ import annotations

from pathlib import Path

import pytest
from textual import events

from charlm_tui.app import CharLMApp
from charlm_tui.panes.generation import GenerationPane
from charlm_tui.screens.help import HelpScreen
from engine.data.corpus import Vocab
from engine.runs.checkpoint import save_checkpoint
from tests.helpers import tiny_model
from tests.tui.test_app import _loaded, _train
from tests.tui.waiting import text_of, wait_until

NAMES = "\n".join(["anna", "bela", "cora", "dita", "edda", "fina", "gala", "hana"] * 200) + "\n"


def _names_run(tmp_path: Path) -> tuple[Path, Path]:
    """A names list and an items model of it (train config `items`)."""
    corpus = tmp_path / "names.txt"
    corpus.write_text(NAMES, encoding="utf-8")
    vocab = Vocab(sorted(set(NAMES)))
    run = tmp_path / "names-run"
    meta = {"step": 3, "train": {"items": True}, "char_counts": [1] * len(vocab)}
    save_checkpoint(run, model=tiny_model("lstm", len(vocab)), vocab=vocab, meta=meta)
    return corpus, run


def _screen_text(app, widget) -> str:
    """What the screen shows inside `widget`'s region, its lines joined by spaces."""
    strips = app.screen._compositor.render_strips()
    region = widget.region
    lines = [s.text[region.x : region.right] for s in strips[region.y : region.bottom]]
    return " ".join(" ".join(line.split()) for line in lines if line.strip())


async def test_an_empty_prompt_on_an_items_model_starts_a_fresh_item(tmp_path, monkeypatch):
    from engine.decoding.generator import Generator

    contexts: list[str] = []
    original = Generator.stream

    def spy(self, prompt, *args, **kwargs):
        contexts.append(prompt)
        return original(self, prompt, *args, **kwargs)

    monkeypatch.setattr(Generator, "stream", spy)
    corpus, run = _names_run(tmp_path)
    app = CharLMApp(corpus=str(corpus), checkpoint=str(run), engine_mode="thread")
    async with app.run_test(size=(120, 36)) as pilot:
        pane = app.query_one(GenerationPane)
        await wait_until(pilot, lambda: pane.has_model, 60, "the model")
        await _loaded(pilot, "names.txt")
        await pilot.press("f4")
        app.query_one("#prompt").value = ""
        await pilot.press("enter")
        await wait_until(pilot, lambda: contexts and not pane.generating, 60, "a generation")
        assert contexts[-1] == "\n"  # the model reads a fresh line: an item's start

        app.query_one("#prompt").value = "be"  # a typed prompt is the item's start as is
        await pilot.press("enter")
        await wait_until(pilot, lambda: len(contexts) > 1 and not pane.generating, 60)
        assert contexts[-1] == "be"


async def test_f8_says_what_it_scored(tmp_path: Path) -> None:
    corpus, run = _names_run(tmp_path)
    app = CharLMApp(corpus=str(corpus), checkpoint=str(run), engine_mode="thread")
    async with app.run_test(size=(120, 36)) as pilot:
        await wait_until(pilot, lambda: app.query_one(GenerationPane).has_model, 60)
        await _loaded(pilot, "names.txt")
        await pilot.press("f3", "f8")
        said = "val is F8's score of the current model: the whole held-out split ("
        await wait_until(pilot, lambda: said in text_of(app, "#train-eta"), 60, "F8's words")
        assert text_of(app, "#train-eta").endswith(" chars)")


async def test_alt_digits_as_tmux_sends_them_switch_panes() -> None:
    from textual._ansi_sequences import ANSI_SEQUENCES_KEYS

    # tmux (and xterm) send alt+2 as esc 2, which Textual reads as "™"
    assert [ANSI_SEQUENCES_KEYS[f"\x1b{n}"] for n in "1234"] == ["¡", "™", "£", "¢"]
    app = CharLMApp(corpus="verse", engine_mode="thread")
    async with app.run_test(size=(120, 36)) as pilot:
        await _loaded(pilot, "verse")
        tabs = app.query_one("#tabs")
        app.query_one("#corpus-list").focus()
        for key, tab in [("trade_mark_sign", "training"), ("pound_sign", "generate")]:
            await pilot.press("escape", key)
            assert tabs.active == tab
        await pilot.press("escape", "cent_sign")
        assert tabs.active == "inspect"
        await pilot.press("inverted_exclamation_mark")
        assert tabs.active == "corpus"
        # in a text field the character types, as any character does
        path = app.query_one("#corpus-path")
        path.focus()
        await pilot.pause()
        app._driver.send_message(events.Key("pound_sign", "£"))  # as the terminal sends it
        await pilot.pause()
        assert tabs.active == "corpus" and path.value == "£"


async def test_a_finished_run_at_80_columns_is_whole_and_says_what_next() -> None:
    app = CharLMApp(corpus="markov", engine_mode="thread")
    async with app.run_test(size=(80, 24)) as pilot:
        await _loaded(pilot, "markov")
        await _train(pilot, "30")
        await pilot.pause(0.2)
        state = app.query_one("#train-state")
        said = " ".join(text_of(app, "#train-state").split())
        assert "F5: continue this run or start a new one (asks) · F4: write with it" in said
        assert _screen_text(app, state) == said  # wrapped, nothing cut
        assert state.size.height > 1


async def test_no_footer_is_cut_at_80_columns() -> None:
    app = CharLMApp(corpus="markov", engine_mode="thread")
    async with app.run_test(size=(80, 24)) as pilot:
        await _loaded(pilot, "markov")
        for key in ("f2", "f3", "f4", "escape", "f10"):
            await pilot.press(key)
            await pilot.pause(0.2)
            footer = app.screen._compositor.render_strips()[-1].text
            assert "f1 Help" in footer and "^p palette" in footer, (key, footer)


async def test_a_path_typed_on_the_corpus_list_goes_to_the_path_field() -> None:
    app = CharLMApp(corpus="verse", engine_mode="thread")
    async with app.run_test(size=(120, 36)) as pilot:
        await _loaded(pilot, "verse")
        corpus_list = app.query_one("#corpus-list")
        corpus_list.focus()
        await pilot.press("/", "t", "m", "p")
        path = app.query_one("#corpus-path")
        assert app.focused is path and path.value == "/tmp"
        # a relative name begins with a letter: it arrives whole ('names.txt' reached the
        # field as '.txt' when only '/', '~' and '.' began a path)
        corpus_list.focus()
        await pilot.press(*"names.txt")
        assert app.focused is path and path.value == "names.txt"
        # a space begins nothing, and '?' on the list still opens the help
        corpus_list.focus()
        await pilot.press("space", "question_mark")
        await wait_until(pilot, lambda: isinstance(app.screen, HelpScreen), 5, "the help")
        assert path.value == "names.txt"


async def test_a_path_typed_faster_than_focus_moves_arrives_whole(tmp_path: Path) -> None:
    """Keys that reach the list before the path field takes focus (a fast typist, a paste
    without bracketed paste, tmux send-keys) belong to the path. They were dropped, and
    each later '/' or '.' started the path afresh: '/tmp/x/names.txt' + Enter loaded '.',
    the working directory, 3 MB of it."""
    names = tmp_path / "dir.x" / "names.txt"
    names.parent.mkdir()
    names.write_text("ann\nbob\ncid\n" * 200, encoding="utf-8")
    app = CharLMApp(corpus="verse", engine_mode="thread")
    async with app.run_test(size=(120, 36)) as pilot:
        await _loaded(pilot, "verse")
        app.query_one("#corpus-list").focus()
        await pilot.pause()
        for char in str(names):  # queued at once, as a terminal delivers a burst
            app.post_message(events.Key(char, char))
        app.post_message(events.Key("enter", None))
        path = app.query_one("#corpus-path")
        await wait_until(pilot, lambda: app.focused is path, 10, "the path field's focus")
        await _loaded(pilot, "names.txt")
        assert path.value == str(names)


async def test_a_path_pasted_on_the_corpus_list_goes_to_the_path_field() -> None:
    """A terminal with bracketed paste sends a pasted path as one Paste event, which the
    list dropped without a word."""
    app = CharLMApp(corpus="verse", engine_mode="thread")
    async with app.run_test(size=(120, 36)) as pilot:
        await _loaded(pilot, "verse")
        corpus_list = app.query_one("#corpus-list")
        corpus_list.focus()
        await pilot.pause()
        corpus_list.post_message(events.Paste("  /tmp/some/names.txt\n"))
        path = app.query_one("#corpus-path")
        await wait_until(pilot, lambda: app.focused is path, 10, "the path field's focus")
        assert path.value == "/tmp/some/names.txt"
        assert path.cursor_position == len(path.value)


@pytest.mark.parametrize(
    ("typed", "said"),
    [
        ("~charlm_no_such_user_zq/names.txt", "no user 'charlm_no_such_user_zq'"),
        ("/tmp/" + "b" * 300 + "/names.txt", "too long"),
    ],
    ids=["unknown-user", "name-too-long"],
)
async def test_a_path_the_disk_cannot_answer_for_is_refused_not_a_crash(
    typed: str, said: str
) -> None:
    """Asking the disk about `~bob/...` (no such user) or a 300-char name raises instead
    of answering no: the app crashed as the path field checked it."""
    app = CharLMApp(corpus="verse", engine_mode="thread")
    async with app.run_test(size=(120, 36)) as pilot:
        await _loaded(pilot, "verse")
        path = app.query_one("#corpus-path")
        path.focus()
        path.value = typed
        await pilot.press("enter")
        error = app.query_one("#corpus-error")
        await wait_until(pilot, lambda: error.display, 10, "the path's error")
        assert said in text_of(app, "#corpus-error")
        assert app.is_running
