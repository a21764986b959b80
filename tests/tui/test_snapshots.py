"""Snapshots of the main screens (regenerate with `pytest tests/tui --snapshot-update`).

Everything shown is deterministic: the engine runs in a thread on a shipped
corpus, waits are on content (never on time), and the generation pane is fed
a fixed generation instead of a model's.
"""

from __future__ import annotations

import math

import pytest

from charlm_tui.app import CharLMApp
from charlm_tui.messages import EngineEvent
from charlm_tui.panes.corpus import CorpusPane
from charlm_tui.panes.generation import GenerationPane
from charlm_tui.panes.inspect import InspectPane
from charlm_tui.widgets.token_view import TokenView
from engine.decoding.params import SamplingParams
from engine.worker import protocol as p
from tests.tui.waiting import wait_until

TEXT = (
    "The keeper climbs at half past four\nwith oil can, rag and flint,\n"
    "and every step along the stair\nis worn into a dint.\n"
)


@pytest.fixture(autouse=True)
def _cpu_engine(monkeypatch: pytest.MonkeyPatch) -> None:
    """The goldens show the engine's device: pin it to the CPU on machines with a GPU too."""
    import torch

    monkeypatch.setattr("engine.device.resolve_device", lambda name="auto": torch.device("cpu"))


def _app() -> CharLMApp:
    return CharLMApp(corpus="verse", engine_mode="thread")


async def _ready(pilot) -> None:
    app = pilot.app
    await wait_until(pilot, lambda: app.query_one(CorpusPane).loaded_name == "verse")
    await wait_until(pilot, lambda: app.query_one("#runs").option_count > 0)
    await wait_until(pilot, lambda: app.engine_state == "ready")
    await pilot.pause()


def _distribution(chosen: str, prob: float) -> list[tuple[str, float]]:
    """The top 5 of a made-up next-char distribution, shaped as the engine sends it: the
    chosen character at `prob`, the rest of the mass over other characters, sorted by
    probability, no character twice."""
    others = [c for c in "eat o" if c != chosen][:4]
    rest = 1.0 - prob
    entries = [(chosen, prob)] + [
        (c, rest * share) for c, share in zip(others, (0.5, 0.25, 0.15, 0.1), strict=False)
    ]
    return sorted(entries, key=lambda entry: -entry[1])[:5]


def _fake_generation(pane: GenerationPane) -> None:
    """A fixed 'generation' with made-up but varied probabilities (sampled at T=1, so the
    sampling and model probabilities agree)."""
    pane.req = 424242
    pane.has_model = True
    pane.model_info = "lstm checkpoint, step 500"
    chars = list(TEXT)
    probs = [((i * 37) % 100) / 100 + 0.005 for i in range(len(chars))]
    tops = [_distribution(c, q) for c, q in zip(chars, probs, strict=True)]
    for event in (
        p.GenerationStarted("The keeper", SamplingParams(), req=424242),
        p.GenerationChunk(TEXT, probs, probs, tops, req=424242),
        p.GenerationDone(TEXT, len(TEXT), 0.25, len(TEXT) / 0.25, req=424242),
    ):
        pane.post_message(EngineEvent(event))


def test_fake_generation_is_shaped_as_the_engine_sends_it() -> None:
    for index, char in enumerate(TEXT):
        prob = ((index * 37) % 100) / 100 + 0.005
        top = _distribution(char, prob)
        values = [q for _, q in top]
        assert values == sorted(values, reverse=True)
        assert len({c for c, _ in top}) == len(top) and sum(values) <= 1.0 + 1e-9


def test_corpus_pane_on_startup(snap_compare) -> None:
    assert snap_compare(_app(), terminal_size=(100, 30), run_before=_ready)


def test_corpus_pane_80x24(snap_compare) -> None:
    assert snap_compare(_app(), terminal_size=(80, 24), run_before=_ready)


def test_training_pane(snap_compare) -> None:
    async def run_before(pilot) -> None:
        await _ready(pilot)
        await pilot.press("f3")
        await pilot.pause()

    assert snap_compare(_app(), terminal_size=(100, 30), run_before=run_before)


def test_generation_pane(snap_compare) -> None:
    async def run_before(pilot) -> None:
        await _ready(pilot)
        await pilot.press("f4")
        app = pilot.app
        pane = app.query_one(GenerationPane)
        app.query_one("#prompt").value = "The keeper"
        _fake_generation(pane)
        view = app.query_one(TokenView)
        await wait_until(pilot, lambda: len(view.data) == len(TEXT))
        view.focus()
        await pilot.press("a", "T", "home", "right", "right", "right")
        await pilot.pause()

    assert snap_compare(_app(), terminal_size=(100, 30), run_before=run_before)


def test_generation_pane_80x24(snap_compare) -> None:
    async def run_before(pilot) -> None:
        await _ready(pilot)
        await pilot.press("f4")
        _fake_generation(pilot.app.query_one(GenerationPane))
        view = pilot.app.query_one(TokenView)
        await wait_until(pilot, lambda: len(view.data) == len(TEXT))
        view.focus()
        await pilot.pause()

    assert snap_compare(_app(), terminal_size=(80, 24), run_before=run_before)


def test_help_screen(snap_compare) -> None:
    async def run_before(pilot) -> None:
        await _ready(pilot)
        await pilot.press("f1")
        await pilot.pause()

    assert snap_compare(_app(), terminal_size=(100, 34), run_before=run_before)


def _fake_inspection(pane: InspectPane) -> None:
    """Fixed activations and a fixed unit search, as the engine would send them."""
    pane.has_model = True
    pane.model_info = "lstm checkpoint, step 500"
    pane.source = "given text"
    pane.reqs.update(text=515151, find=525252)
    values = [
        (1.0 if c == "\n" else -0.2) + 0.6 * math.sin(i / 5) * (1 - (c == " "))
        for i, c in enumerate(TEXT)
    ]
    top = [["L0.cell.7", 0.81], ["L0.hidden.7", 0.64], ["L0.cell.30", -0.52], ["L0.hidden.2", 0.31]]
    for event in (
        p.InspectReady(
            TEXT, "lstm", [["L0.cell", 64], ["L0.hidden", 64]], "L0.cell.7", values, req=515151
        ),
        p.UnitsFound("\\n", top, TEXT.count("\n"), len(TEXT), req=525252),
    ):
        pane.post_message(EngineEvent(event))


async def _inspect_before(pilot) -> None:
    await _ready(pilot)
    pane = pilot.app.query_one(InspectPane)
    _fake_inspection(pane)
    await pilot.press("f10")
    await wait_until(pilot, lambda: pane.found and pane.text)
    await pilot.press("home", "right", "right", "right", "right", "right")
    await pilot.pause()


def test_inspect_pane(snap_compare) -> None:
    assert snap_compare(_app(), terminal_size=(120, 40), run_before=_inspect_before)


def test_inspect_pane_80x24(snap_compare) -> None:
    assert snap_compare(_app(), terminal_size=(80, 24), run_before=_inspect_before)
