"""Engine events reach the app, panes and screens through per-class handler tables
(charlm_tui/messages.py), built and checked when each class is defined: a misspelt
`_got_` handler fails at import, and every event of protocol.EVENTS is handled."""

from __future__ import annotations

import pytest

from charlm_tui.app import CharLMApp
from charlm_tui.messages import EngineEventReceiver, dispatch_engine_event, event_handlers
from charlm_tui.panes.corpus import CorpusPane
from charlm_tui.panes.generation import GenerationPane
from charlm_tui.panes.inspect import InspectPane
from charlm_tui.panes.training import TrainingPane
from charlm_tui.screens.compare import CompareScreen
from engine.worker import protocol as p

RECEIVERS = (CharLMApp, CorpusPane, TrainingPane, GenerationPane, InspectPane, CompareScreen)


def test_every_engine_event_has_a_handler() -> None:
    handled = set().union(*(receiver.ENGINE_HANDLERS for receiver in RECEIVERS))
    assert handled == set(p.EVENTS)


def test_each_handler_is_the_method_named_for_its_event() -> None:
    for receiver in RECEIVERS:
        assert receiver.ENGINE_HANDLERS, receiver
        for event, handler in receiver.ENGINE_HANDLERS.items():
            assert handler is getattr(receiver, f"_got_{event.__name__}")


def test_a_misspelt_handler_fails_when_its_class_is_defined() -> None:
    with pytest.raises(TypeError, match="_got_CorpusLoadd handles no engine event"):

        class Misspelt(EngineEventReceiver):
            def _got_CorpusLoadd(self, event: object) -> None: ...

    class Plain:
        def _got_NoSuchEvent(self, event: object) -> None: ...

    with pytest.raises(TypeError, match=r"Plain\._got_NoSuchEvent"):
        event_handlers(Plain)


def test_an_event_goes_to_its_handler_and_others_are_ignored() -> None:
    class Receiver(EngineEventReceiver):
        def __init__(self) -> None:
            self.got: list[object] = []

        def _got_CorpusLoading(self, event: p.CorpusLoading) -> None:
            self.got.append(event)

    receiver = Receiver()
    loading = p.CorpusLoading("x.txt", 3)
    dispatch_engine_event(receiver, loading)
    dispatch_engine_event(receiver, p.EngineDied(1, "gone"))
    assert receiver.got == [loading]
