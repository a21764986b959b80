"""Snapshots of the generation pane (knob bar, branch status) and the compare view at
80x24 and 200x60: the knob bar wraps between knobs, the compare cards fill the width and
the table shows every strategy (at 200x60 with a chrF column and the true text's card). Regenerate with `pytest tests/tui --snapshot-update`."""

from __future__ import annotations

from charlm_tui.messages import EngineEvent
from charlm_tui.panes.generation import GenerationPane
from charlm_tui.widgets.token_view import TokenView
from engine.worker import protocol as p
from tests.tui.test_snapshots import TEXT, _app, _fake_generation, _ready
from tests.tui.waiting import wait_until

STRATEGIES = (
    "greedy",
    "temperature 0.5",
    "temperature 1.0",
    "temperature 1.5",
    "top-k 10",
    "top-p 0.9",
    "min-p 0.1",
    "beam 5",
)


def _rows() -> list[dict]:
    return [
        {
            "strategy": name,
            "entropy": 3.0 + i / 10,
            "bigram_diversity": 0.5 + i / 40,
            "distinct_1": 0.3,
            "distinct_2": 0.6,
            "distinct_3": 0.8,
            "repetition_4": 0.1 * i,
            "perplexity": 4.0 + i,
            "novelty": 0.05 * i,
            "chars_per_s": 4000.0 + 100 * i,
            "samples": [TEXT[i * 7 :] + TEXT[: i * 7]],
        }
        for i, name in enumerate(STRATEGIES)
    ]


async def _generation(pilot) -> None:
    await _ready(pilot)
    await pilot.press("f4")
    pilot.app.query_one("#prompt").value = "The keeper"
    _fake_generation(pilot.app.query_one(GenerationPane))
    view = pilot.app.query_one(TokenView)
    await wait_until(pilot, lambda: len(view.data) == len(TEXT))
    view.focus()
    await pilot.press("home", "right", "right")
    await pilot.pause()


async def _compare(pilot, reference: str | None = None) -> None:
    from charlm_tui.screens.compare import CompareScreen

    await _ready(pilot)
    app = pilot.app
    screen = CompareScreen("The keeper", 200, 1)
    await app.push_screen(screen)
    await pilot.pause()
    # the engine has no model here: wait for it to say so, then show made-up rows
    await wait_until(pilot, lambda: any("compare" in n.title for n in app._notifications))
    app.clear_notifications()
    screen.req = 777_777
    rows = _rows()
    if reference is not None:  # a held-out prompt: a chrF column and the true text's card
        for i, row in enumerate(rows):
            row["chrf"] = 20.0 + 3 * i
    result = p.CompareResult("The keeper", rows, True, 777_777, reference, 1234)
    screen.post_message(EngineEvent(result))
    cards = 8 if reference is None else 9
    await wait_until(pilot, lambda: screen.done and len(screen.query(".compare-column")) == cards)
    screen._title()
    await pilot.pause()


def test_generation_knobs_80x24(snap_compare) -> None:
    assert snap_compare(_app(), terminal_size=(80, 24), run_before=_generation)


def test_generation_knobs_200x60(snap_compare) -> None:
    assert snap_compare(_app(), terminal_size=(200, 60), run_before=_generation)


def test_compare_80x24(snap_compare) -> None:
    assert snap_compare(_app(), terminal_size=(80, 24), run_before=_compare)


async def _compare_with_reference(pilot) -> None:
    await _compare(pilot, reference=TEXT[:200])


def test_compare_200x60(snap_compare) -> None:
    assert snap_compare(_app(), terminal_size=(200, 60), run_before=_compare_with_reference)
