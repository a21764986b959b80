"""The Inspect pane: see inside the current model (a snapshot while it trains) or a checkpoint.

Four views of one text: `units` (the text coloured by one unit's activation,
up/down move between units, a sparkline of the unit over the text), `attention`
(a Transformer's attention from the character under the cursor, up/down pick
the layer and head), `saliency` (how much each earlier character mattered for
the one under the cursor, any model) and `map` (the character map: embeddings in
2-D, neighbours of the character under the cursor). `v` cycles the views, `/`
types a regex whose best-tracking units are listed at the side (then up/down walk
that ranked list; an empty search goes back to every unit; the list and the
sparkline show in the units view only); `e` takes an
excerpt of the held-out split, `g` the generation pane's text, `p` opens a box
for any pasted or typed text (the app opens screens/paste.py), `u` recomputes
with the latest weights. Everything comes from the engine through the worker
queue (engine.worker.inspect_jobs), as plain numbers; inspect_events.py takes
the engine's answers, inspect_lines.py words the status line and detail panel.
"""

from __future__ import annotations

from typing import ClassVar

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.content import Content
from textual.message import Message
from textual.timer import Timer
from textual.widgets import ContentSwitcher, Input, OptionList, Sparkline, Static
from textual.widgets.option_list import Option

from charlm_tui.messages import EngineCommand, EngineEventHandler
from charlm_tui.panes.inspect_events import InspectEvents
from charlm_tui.panes.inspect_lines import detail_lines, status_line
from charlm_tui.widgets.char_map import CharMapPlot
from charlm_tui.widgets.inspect_render import window_values
from charlm_tui.widgets.token_view import TokenView
from charlm_tui.widgets.value_text import ValueText, value_legend
from engine.worker import protocol as p

VIEWS = ("units", "attention", "saliency", "map")
EXCERPT_CHARS = 2000
FOLLOW_CURSOR_S = 0.12  # attention/saliency follow the cursor after this pause


class InspectPane(InspectEvents, EngineEventHandler, Vertical):
    """Units, unit search, attention, saliency and the character map of the current model."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("up", "unit(-1)", "Prev unit", show=False),
        Binding("down", "unit(1)", "Next unit", show=False),
        Binding("v", "cycle_view", "View"),
        Binding("slash", "focus_find", "Find unit", key_display="/"),
        Binding("e", "excerpt", "Excerpt"),
        Binding("g", "use_generated", "Generated"),
        Binding("p", "paste", "Paste"),
        Binding("u", "refresh", "Latest weights", show=False),
        Binding("escape", "leave_find", show=False),
        Binding("left", "cursor(-1)", show=False),
        Binding("right", "cursor(1)", show=False),
    ]

    class PasteRequested(Message):
        """Open a text box for the user's own text, starting with `text`."""

        def __init__(self, text: str) -> None:
            super().__init__()
            self.text = text

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.view = "units"
        self.has_model = False
        self.has_corpus = False  # an excerpt needs the corpus, which may load after the model
        self.is_front = False
        self.model_type = ""
        self.training_type = ""  # the model type of the run in training, once it started
        self.model_info = "no model yet"
        self.source = ""
        self.text = ""
        self.groups: list[tuple[str, int]] = []
        self.unit = ""
        self.values: list[float] = []
        self.found: list[tuple[str, float]] = []
        self.pattern = ""
        self.attention: tuple[int, int, list] | None = None  # (position, start, weights)
        self.head = 0  # index into (layer, head) pairs
        self.saliency: tuple[int, int, list, float] | None = None
        self.char_map: p.CharMapReady | None = None
        self.reqs: dict[str, int] = {}
        self.note = ""
        self._follow: Timer | None = None

    def compose(self) -> ComposeResult:
        with Horizontal(id="inspect-bar"):
            yield Static(id="inspect-views")
            yield Input(placeholder='/ regex: find units, e.g. "[^"\\n]*"', id="inspect-find")
        yield Static(id="inspect-status")
        yield Sparkline([], id="inspect-spark")
        with Horizontal(id="inspect-body"):
            with ContentSwitcher(initial="inspect-text", id="inspect-switch"):
                yield ValueText(id="inspect-text")
                yield CharMapPlot(id="inspect-map")
            with Vertical(id="inspect-side"):
                yield Static("top units (r)", classes="section", id="inspect-units-title")
                yield OptionList(id="inspect-units")
                yield Static(id="inspect-detail")
                yield Static(id="inspect-legend")

    def on_mount(self) -> None:
        self._show()

    # ----- units as labels -----------------------------------------------------------

    def labels(self) -> list[str]:
        return [f"{name}.{i}" for name, size in self.groups for i in range(size)]

    def ranked_units(self) -> list[str]:
        """After a regex search, the units ↑↓ walk: its ranked list (while the unit is in it)."""
        ranked = [unit for unit, _ in self.found]
        return ranked if self.unit in ranked else []

    def heads(self) -> list[tuple[int, int]]:
        if self.attention is None:
            return []
        weights = self.attention[2]
        return [(layer, head) for layer in range(len(weights)) for head in range(len(weights[0]))]

    # ----- commands ------------------------------------------------------------------

    def _request(self, kind: str, factory) -> None:
        req = p.new_request_id()
        self.reqs[kind] = req
        self.post_message(EngineCommand(factory(req)))

    def inspect_text(self, source: str, text: str = "") -> None:
        """Inspect `text` (source "text") or a held-out excerpt (source "excerpt")."""
        self.source = "excerpt of the held-out split" if source == "excerpt" else "given text"
        unit = self.unit
        self.note = "computing activations…"
        self._request(
            "text",
            lambda req: p.InspectText(source, text, EXCERPT_CHARS, unit=unit, req=req),
        )
        self._show()

    def activated(self, focus: bool = True) -> None:
        """The tab came to the front: inspect something if there is a model and no text yet."""
        self.is_front = True
        self._excerpt_if_ready()
        if focus:
            self.query_one(ValueText).focus()

    def deactivated(self) -> None:
        self.is_front = False

    def _excerpt_if_ready(self) -> None:
        """The first excerpt waits for both a model and the corpus, whichever arrives last."""
        ready = self.has_model and self.has_corpus
        if ready and self.is_front and not self.text and "text" not in self.reqs:
            self.inspect_text("excerpt")

    # ----- actions -------------------------------------------------------------------

    def action_unit(self, delta: int) -> None:
        if self.view == "attention":
            heads = self.heads()
            if heads:
                self.head = (self.head + delta) % len(heads)
                self._paint()
            return
        labels = self.ranked_units() or self.labels()
        if not labels:
            return
        index = labels.index(self.unit) if self.unit in labels else 0
        self.select_unit(labels[(index + delta) % len(labels)])

    def select_unit(self, unit: str) -> None:
        self.unit = unit
        ranked = self.ranked_units()
        if ranked:
            self.query_one("#inspect-units", OptionList).highlighted = ranked.index(unit)
        if self.view != "units":
            self.view = "units"
            self._switch()
        self._request("unit", lambda req: p.InspectUnit(unit, req=req))
        self._show()

    def action_cycle_view(self) -> None:
        self.view = VIEWS[(VIEWS.index(self.view) + 1) % len(VIEWS)]
        self._switch()
        self._after_cursor()
        self._paint()
        self._show()

    def action_cursor(self, delta: int) -> None:
        """Left/right when the text is not focused (the map view): walk the text's characters."""
        self.query_one(ValueText).action_move(delta)

    def _switch(self) -> None:
        on_map = self.view == "map"
        for selector in ("#inspect-spark", "#inspect-units-title", "#inspect-units"):
            self.query_one(selector).display = self.view == "units"
        self.query_one(ContentSwitcher).current = "inspect-map" if on_map else "inspect-text"
        if not self.query_one("#inspect-find", Input).has_focus:
            (self.query_one(CharMapPlot) if on_map else self.query_one(ValueText)).focus()
        if self.view == "map" and self.char_map is None and self.has_model:
            self._request("map", lambda req: p.InspectEmbeddings(req=req))

    def action_focus_find(self) -> None:
        self.query_one("#inspect-find", Input).focus()

    def action_leave_find(self) -> None:
        self.query_one(ValueText).focus()

    def action_excerpt(self) -> None:
        self.inspect_text("excerpt")

    def action_use_generated(self) -> None:
        views = list(self.app.query("#output").results(TokenView))
        text = (views[0].prompt + views[0].text) if views else ""
        if not text:
            self.note = "nothing generated yet (Generate tab)"
            self._show()
            return
        self.inspect_text("text", text)

    def action_paste(self) -> None:
        """A text box for any text (the app opens screens/paste.py), from the text shown now."""
        self.post_message(self.PasteRequested(self.text if self.source == "given text" else ""))

    def pasted(self, text: str | None) -> None:
        """What the text box returned: inspect it (None: cancelled)."""
        if text:
            self.inspect_text("text", text)
            self.query_one(ValueText).focus()

    def action_refresh(self) -> None:
        if self.text:
            self.inspect_text("text", self.text)
            self.char_map = None
            if self.view == "map":
                self._switch()

    # ----- widgets -------------------------------------------------------------------

    @on(Input.Submitted, "#inspect-find")
    def _find(self, event: Input.Submitted) -> None:
        event.stop()
        pattern = event.value
        if not pattern:  # an empty search: ↑↓ walk every unit again
            self.found, self.pattern, self.note = [], "", ""
            self._show_found()
            self._show()
        if not pattern or not self.text:
            return
        self.pattern = pattern
        self.note = f"finding units for {pattern!r}…"
        self._request("find", lambda req: p.FindUnits(pattern, 10, req=req))
        self._show()

    @on(OptionList.OptionSelected, "#inspect-units")
    def _unit_chosen(self, event: OptionList.OptionSelected) -> None:
        event.stop()
        if event.option.id:
            self.select_unit(event.option.id)
            self.query_one(ValueText).focus()

    @on(ValueText.CursorMoved)
    def _cursor_moved(self, event: ValueText.CursorMoved) -> None:
        event.stop()
        if self._follow is not None:
            self._follow.stop()
        self._follow = self.set_timer(FOLLOW_CURSOR_S, self._after_cursor)
        if self.view == "map" and self.char_map is not None:
            self.query_one(CharMapPlot).select(self._cursor_char())
        self._show_detail()

    def _cursor_char(self) -> str | None:
        cursor = self.query_one(ValueText).cursor
        return self.text[cursor] if 0 <= cursor < len(self.text) else None

    def _after_cursor(self) -> None:
        cursor = self.query_one(ValueText).cursor
        if not self.text or cursor < 0:
            return
        if self.view == "attention" and self.model_type == "transformer":
            self._request("attention", lambda req: p.InspectAttention(cursor, req=req))
        elif self.view == "saliency" and cursor >= 1:
            self._request("saliency", lambda req: p.InspectSaliency(cursor, req=req))
        elif self.view == "map":
            self.query_one(CharMapPlot).select(self._cursor_char())
            self._show_detail()

    # ----- painting ------------------------------------------------------------------

    def _paint(self) -> None:
        """Colour the text for the current view."""
        view = self.query_one(ValueText)
        spark = self.query_one(Sparkline)
        if self.view == "units":
            view.set_values(self.values, "diverging")
            spark.data = self.values or [0.0]
        elif self.view == "attention":
            heads = self.heads()
            row: list[float] = []
            start = 0
            if self.attention is not None and heads:
                _, start, weights = self.attention
                layer, head = heads[self.head % len(heads)]
                row = weights[layer][head]
            view.set_values(window_values(len(self.text), start, row), "weights")
        elif self.view == "saliency":
            start, scores = self.saliency[1:3] if self.saliency is not None else (0, [])
            view.set_values(window_values(len(self.text), start, scores), "weights")
        self._show()

    def _show(self) -> None:
        tabs = []
        for name in VIEWS:
            tabs.append((f" {name} ", "reverse bold" if name == self.view else "dim"))
        self.query_one("#inspect-views", Static).update(Content.assemble(*tabs, (" v", "dim")))
        self.query_one("#inspect-status", Static).update(Content(status_line(self)))
        view = self.query_one(ValueText)
        mode = {"units": "diverging", "attention": "weights", "saliency": "weights"}.get(self.view)
        self.query_one("#inspect-legend", Static).update(value_legend(mode, view.scale))
        self._show_detail()

    def _show_detail(self) -> None:
        detail = self.query_one("#inspect-detail", Static)
        view = self.query_one(ValueText)
        if self._cursor_char() is None:
            detail.update("")
            return
        detail.update(
            Content("\n".join(detail_lines(self, view.cursor, view.value_at(view.cursor))))
        )

    def _show_found(self) -> None:
        options = self.query_one("#inspect-units", OptionList)
        options.clear_options()
        options.add_options([Option(f"{unit:<12} {r:+.2f}", id=unit) for unit, r in self.found])
