"""Pilot tests of the compare view's cards (issue 22, item 9): every sample or item the
title counts is in its card; at 160x48 all cards are on screen; at 80x24 the keyboard
brings each card into view and pages through it; `h` shows the held-out prompt and
the true continuation, and says when chrF needs the optional extra."""

from __future__ import annotations

from pathlib import Path

import pytest

from charlm_tui.app import CharLMApp
from charlm_tui.messages import EngineEvent
from charlm_tui.panes.corpus import CorpusPane
from charlm_tui.panes.generation import GenerationPane
from charlm_tui.screens.compare import MIN_CARD, CompareScreen
from engine.worker import protocol as p
from tests.tui.test_snapshots_writing import STRATEGIES
from tests.tui.waiting import text_of, wait_until

NAMES = ["Anna", "Bela", "Cora", "Dita", "Edda", "Fina", "Gala", "Hana", "Ilsa", "Jana"] * 2


def _rows(samples: list[str], beam: int | None = None) -> list[dict]:
    rows = []
    for name in STRATEGIES:
        made = samples[:beam] if beam and name.startswith("beam") else samples
        rows.append({"strategy": name, "entropy": 3.0, "samples": list(made)})
    return rows


async def _screen(pilot, rows: list[dict], items: bool, reference: str | None = None):
    """The compare view with made-up rows (the engine here has no model)."""
    app = pilot.app
    await wait_until(pilot, lambda: bool(app.query_one(CorpusPane).loaded_name), 60)
    screen = CompareScreen("", 200, 1)
    await app.push_screen(screen)
    await wait_until(pilot, lambda: any("compare" in n.title for n in app._notifications))
    screen.req = 4242
    result = p.CompareResult("", rows, True, 4242, reference, 7 if reference else -1, items=items)
    screen.post_message(EngineEvent(result))
    cards = len(rows) + (reference is not None)
    await wait_until(pilot, lambda: screen.done and len(screen.query(".compare-column")) == cards)
    await pilot.pause(0.2)
    return screen


def _card_text(card) -> str:
    return str(card.query_one("Static").visual.plain)


async def test_an_items_model_shows_every_item_it_counts() -> None:
    app = CharLMApp(corpus="verse", engine_mode="thread")
    async with app.run_test(size=(160, 48)) as pilot:
        screen = await _screen(pilot, _rows(NAMES, beam=5), items=True)
        assert "20 items per strategy (beam: its width)" in text_of(screen, "#compare-title")
        cards = list(screen.query(".compare-column"))
        assert _card_text(cards[0]).split("\n") == NAMES
        assert _card_text(cards[-1]).split("\n") == NAMES[:5]  # beam 5


async def test_a_text_model_shows_every_sample_it_counts() -> None:
    samples = ["first sample text", "second sample text", "third sample text"]
    app = CharLMApp(corpus="verse", engine_mode="thread")
    async with app.run_test(size=(160, 48)) as pilot:
        screen = await _screen(pilot, _rows(samples), items=False)
        assert "3 samples × 200 chars" in text_of(screen, "#compare-title")
        text = _card_text(screen.query(".compare-column").first())
        assert (
            text
            == "first sample text\n── sample 2 ──\nsecond sample text\n── sample 3 ──\nthird sample text"
        )


async def test_every_card_is_on_screen_at_160_columns() -> None:
    app = CharLMApp(corpus="verse", engine_mode="thread")
    async with app.run_test(size=(160, 48)) as pilot:
        screen = await _screen(pilot, _rows(["x" * 200] * 3), items=False, reference="y" * 200)
        box = screen.query_one("#compare-samples")
        cards = list(screen.query(".compare-column"))
        assert len(cards) == 9
        for card in cards:  # whole, inside the visible box, readable
            assert box.region.contains_region(card.region), card.border_title
            assert card.region.width >= MIN_CARD and card.region.height >= 8
        assert box.scroll_x == 0 and box.max_scroll_x == 0


async def test_the_keyboard_reaches_every_card_at_80_columns() -> None:
    long = "\n".join(f"line {i}" for i in range(60))
    app = CharLMApp(corpus="verse", engine_mode="thread")
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await _screen(pilot, _rows([long] * 3), items=False)
        box = screen.query_one("#compare-samples")
        cards = list(screen.query(".compare-column"))
        assert not box.region.contains_region(cards[-1].region)  # off to the right at first
        for index in range(1, len(cards)):
            await pilot.press("down")
            card = cards[index]  # scrolled into view (an animation: waited for, not slept on)
            in_view = lambda card=card: box.region.contains_region(card.region)  # noqa: E731
            await wait_until(pilot, in_view, 10, card.border_title)
            assert card.has_class("-highlight")
        last = cards[-1]
        assert last.scroll_y == 0
        await pilot.press("pagedown")
        await wait_until(pilot, lambda: last.scroll_y > 0, 10, "the picked card to page on")
        await pilot.press("pageup")
        await pilot.pause(0.1)
        assert last.scroll_y == 0


@pytest.fixture
def text_run(tmp_path: Path) -> tuple[Path, Path]:
    from engine.data.corpus import Vocab
    from engine.runs.checkpoint import save_checkpoint
    from tests.helpers import quoted_text, tiny_model

    corpus = tmp_path / "quoted.txt"
    corpus.write_text(quoted_text(20_000, seed=2), encoding="utf-8")
    vocab = Vocab(sorted(set(corpus.read_text(encoding="utf-8"))))
    run = tmp_path / "run"
    save_checkpoint(run, model=tiny_model("lstm", len(vocab)), vocab=vocab, meta={"step": 3})
    return corpus, run


async def test_held_out_prompt_without_sacrebleu(text_run, monkeypatch) -> None:
    """h with chrF unavailable: the prompt and the true continuation still show, and the
    title says chrF needs the optional extra."""
    import engine.decoding.quality as quality
    from engine.errors import ConfigError

    def missing():
        raise ConfigError(f"text quality needs the sacrebleu package: {quality.INSTALL_HINT}")

    monkeypatch.setattr(quality, "_sacrebleu", missing)
    corpus, run = text_run
    app = CharLMApp(corpus=str(corpus), checkpoint=str(run), engine_mode="thread")
    async with app.run_test(size=(160, 48)) as pilot:
        await wait_until(pilot, lambda: app.query_one(GenerationPane).has_model, 60, "the model")
        await wait_until(pilot, lambda: bool(app.query_one(CorpusPane).loaded_name), 60)
        screen = CompareScreen("", 30, 1)
        await app.push_screen(screen)
        await wait_until(pilot, lambda: screen.done, 90, "the comparison")
        await pilot.press("h")
        await wait_until(pilot, lambda: screen.done and screen.reference, 90, "the held-out text")
        title = text_of(screen, "#compare-title")
        assert screen.prompt and repr(screen.prompt) in title
        assert "true continuation (held-out split, char" in title
        assert "no chrF: text quality needs the sacrebleu package" in title
        assert "pip install 'charlm-tui[quality]'" in title
        cards = list(screen.query(".compare-column"))
        assert cards[-1].border_title == "true continuation"
        assert _card_text(cards[-1]) == screen.reference
        assert "chrf" not in screen.query_one("#compare-table").columns


async def test_h_on_an_items_model_says_why_there_is_no_held_out_prompt() -> None:
    app = CharLMApp(corpus="verse", engine_mode="thread")
    async with app.run_test(size=(120, 36)) as pilot:
        screen = await _screen(pilot, _rows(NAMES), items=True)
        app.clear_notifications()
        await pilot.press("h")
        assert not screen.held_out
        assert any("starts each item afresh" in n.message for n in app._notifications)
