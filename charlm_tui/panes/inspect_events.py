"""The Inspect pane's side of the engine's answers: activations, units found, attention,
saliency, the character map, errors, and the model arriving, changing or going.

A mixin of charlm_tui.panes.inspect.InspectPane (it fills the pane's state and
calls its painting methods). The pane sends a request per kind (`reqs`: text,
unit, find, attention, saliency, map) and keeps the latest id of each; an answer
is taken only when it answers the latest request of its kind, so a slow answer
to a request the user has moved past never paints over a newer one.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from charlm_tui.panes.inspect_lines import finished_info
from charlm_tui.widgets.char_map import CharMapPlot
from charlm_tui.widgets.value_text import ValueText
from engine.worker import protocol as p


class InspectEvents:
    """`_got_*` handlers of InspectPane (charlm_tui.messages dispatches engine events to them)."""

    # Provided by InspectPane.
    reqs: dict[str, int]
    has_model: bool
    has_corpus: bool
    model_type: str
    training_type: str
    model_info: str
    text: str
    groups: list[tuple[str, int]]
    unit: str
    values: list[float]
    found: list[tuple[str, float]]
    pattern: str
    attention: tuple[int, int, list] | None
    saliency: tuple[int, int, list, float] | None
    char_map: p.CharMapReady | None
    note: str
    query_one: Any
    _request: Callable[[str, Callable[[int], object]], None]
    inspect_text: Callable[..., None]
    select_unit: Callable[[str], None]
    _excerpt_if_ready: Callable[[], None]
    _after_cursor: Callable[[], None]
    _cursor_char: Callable[[], str | None]
    _paint: Callable[[], None]
    _show: Callable[[], None]
    _show_detail: Callable[[], None]
    _show_found: Callable[[], None]

    def _current(self, kind: str, req: int) -> bool:
        return req != 0 and self.reqs.get(kind) == req

    def _got_InspectReady(self, event: p.InspectReady) -> None:
        if not self._current("text", event.req):
            return
        self.text = event.text
        self.model_type = event.model_type
        self.groups = [(str(name), int(size)) for name, size in event.groups]
        self.unit = event.unit
        self.values = list(event.values)
        self.attention = self.saliency = None
        self.note = f"dropped {event.dropped!r} (not in the vocabulary)" if event.dropped else ""
        self.query_one(ValueText).set_text(self.text)
        self._paint()
        self._after_cursor()
        if self.pattern:  # the ranked list is of this text
            pattern = self.pattern
            self._request("find", lambda req: p.FindUnits(pattern, 10, req=req))

    def _got_UnitValues(self, event: p.UnitValues) -> None:
        if self._current("unit", event.req):
            self.unit = event.unit
            self.values = list(event.values)
            self._paint()

    def _got_UnitsFound(self, event: p.UnitsFound) -> None:
        if not self._current("find", event.req):
            return
        self.found = [(str(unit), float(r)) for unit, r in event.top]
        self.note = f"{event.covered:,} of {event.chars:,} chars match {event.pattern!r}"
        self._show_found()
        if self.found and self.found[0][0] != self.unit:
            self.select_unit(self.found[0][0])

    def _got_AttentionWeights(self, event: p.AttentionWeights) -> None:
        if self._current("attention", event.req):
            self.attention = (event.position, event.start, event.weights)
            self._paint()

    def _got_SaliencyScores(self, event: p.SaliencyScores) -> None:
        if self._current("saliency", event.req):
            self.saliency = (event.position, event.start, event.scores, event.logprob)
            self._paint()

    def _got_CharMapReady(self, event: p.CharMapReady) -> None:
        if self._current("map", event.req):
            self.char_map = event
            plot = self.query_one(CharMapPlot)
            plot.show(event.chars, event.points, event.explained)
            plot.select(self._cursor_char())
            self._show_detail()

    def _got_ErrorEvent(self, event: p.ErrorEvent) -> None:
        if event.req and event.req in self.reqs.values():
            if self.reqs.get("text") == event.req:
                del self.reqs["text"]  # a later excerpt request may succeed
            self.note = f"error: {event.message}"
            self._show()

    def _got_CorpusLoaded(self, event: p.CorpusLoaded) -> None:
        self.has_corpus = True
        self._excerpt_if_ready()

    def _model_changed(self, info: str) -> None:
        self.has_model = True
        self.model_info = info
        self.char_map = None
        self._show()
        self._excerpt_if_ready()

    def _got_TrainStarted(self, event: p.TrainStarted) -> None:
        self.training_type = event.model_type
        self._model_changed(f"{event.model_type} in training (u: latest weights)")

    def _got_TrainFinished(self, event: p.TrainFinished) -> None:
        if self.training_type:
            self.model_info = finished_info(self.training_type, event.result)
            self._show()

    def _got_CheckpointLoaded(self, event: p.CheckpointLoaded) -> None:
        self.training_type = ""
        self._model_changed(f"{event.model_type} checkpoint, step {event.step}")
        if self.text:
            self.inspect_text("text", self.text)

    def _got_EngineDied(self, event: p.EngineDied) -> None:
        self.has_model = False
        self.reqs.clear()
        self._show()
