"""The strategy comparison: one prompt, one seed, several strategies side by side.

The table holds the statistics of each strategy (engine/decoding/compare.py, the seed
notebook's Part 6 plus distinct-n, repetition, self-perplexity and novelty);
below it each strategy's samples (all of them: a line-per-item model's items one a
line) sit in a card of their own. Rows arrive one by one as the engine finishes
them. The cards share the width in as many rows as leave each a readable height
(all eight and the true text fit at 160x48); where they do not, they scroll
sideways: up/down pick a strategy and bring its card into view, pageup/pagedown
scroll the picked card. When the true continuation of the prompt is known (`h`
cuts the prompt from the held-out split; a typed prompt found there works too) a
chrF column scores each strategy against it, and the true text gets its own card
(engine/decoding/references.py); without the optional sacrebleu the prompt and the
true text still show, and the title says chrF needs it.
"""

from __future__ import annotations

import math
from typing import ClassVar

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import HorizontalScroll, Vertical, VerticalScroll
from textual.content import Content
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Static

from charlm_tui.messages import EngineCommand, EngineEventHandler
from engine.worker import protocol as p

COLUMNS = (
    ("strategy", "strategy"),
    ("entropy", "entropy"),
    ("bigram_diversity", "bigram div"),
    ("distinct_1", "dist-1"),
    ("distinct_2", "dist-2"),
    ("distinct_3", "dist-3"),
    ("repetition_4", "rep-4"),
    ("perplexity", "self-ppl"),
    ("novelty", "novel words"),
    ("chars_per_s", "chars/s"),
)
# Line-per-item models: shares of generated items not in the training items / in neither set.
ITEM_COLUMNS = (("novel_vs_train", "new items"), ("novel_vs_all", "new vs held-out too"))
CHRF_COLUMN = ("chrf", "chrF")


MIN_CARD = 24  # columns: a sample card narrower than this is hard to read
MIN_CARD_LINES = 8  # lines: cards go in rows only while each keeps this height


def _cell(key: str, value: object) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        if not math.isfinite(value):
            return "–"
        if key == "chars_per_s":
            return f"{value:,.0f}"
        if key == "chrf":
            return f"{value:.1f}"
        return f"{value:.3f}"
    return str(value)


class CompareScreen(EngineEventHandler, Screen[None]):
    """Statistics table on top, samples side by side below; esc goes back."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "close", "Back"),
        Binding("r", "rerun", "New seed"),
        Binding("h", "held_out", "Held-out prompt"),
        # before the table's own page keys: it holds eight rows, the cards hold the text
        Binding("pagedown", "scroll_card(1)", "Scroll card", show=False, priority=True),
        Binding("pageup", "scroll_card(-1)", show=False, priority=True),
    ]

    def __init__(
        self,
        prompt: str,
        length: int,
        seed: int,
        *,
        by_label: bool = False,
        condition: str | None = None,
        guidance: float | None = None,
    ) -> None:
        super().__init__()
        self.prompt = prompt
        self.length = length
        self.seed = seed
        self.by_label = by_label  # rows: "none" and each label (temperature 1), not strategies
        self.condition = condition
        self.guidance = guidance
        self.req = 0
        self.done = False
        self.held_out = False  # the prompt comes from the held-out split, for chrF
        self.typed_prompt = prompt
        self.reference: str | None = None
        self.reference_offset = -1
        self.note = ""
        self.items = False  # a line-per-item model: samples are whole items
        self.sample_count = 3  # samples per strategy, as the engine made them

    def compose(self) -> ComposeResult:
        with Vertical(id="compare-box"):
            yield Static(id="compare-title")
            yield DataTable(id="compare-table", cursor_type="row", zebra_stripes=True)
            yield HorizontalScroll(id="compare-samples")
        yield Footer()

    def on_mount(self) -> None:
        table = self.query_one(DataTable)
        for key, label in COLUMNS:
            table.add_column("label" if self.by_label and key == "strategy" else label, key=key)
        self.run_compare()

    def run_compare(self) -> None:
        self.req = p.new_request_id()
        self.done = False
        self.reference, self.reference_offset, self.note = None, -1, ""
        self.query_one(DataTable).clear()
        self.query_one("#compare-samples").remove_children()
        self._title()
        self.post_message(
            EngineCommand(
                p.Compare(
                    self.prompt,
                    self.length,
                    3,
                    self.seed,
                    req=self.req,
                    by_label=self.by_label,
                    condition=self.condition,
                    guidance=self.guidance,
                    held_out=self.held_out,
                )
            )
        )

    def _title(self, note: str = "") -> None:
        prompt = repr(self.prompt) if self.prompt else "(empty: a random first character)"
        if self.held_out and self.reference is None and not self.note:
            prompt = "from the held-out split"
        state = "" if self.done else " · [yellow]generating…[/]"
        warning = f" · [yellow]{_escape(self.note)}[/]" if self.note else ""
        if self.reference is not None:
            where = f"held-out split, char {self.reference_offset:,}"
            scored = "chrF against the true continuation" if not self.note else "true continuation"
            note = f" · {scored} ({where}){warning}{note}"
        else:
            note = f"{warning}{note}"
        plural = "s" if self.sample_count != 1 else ""
        made = f"{self.sample_count} sample{plural} × {self.length} chars"
        if self.items:
            made = f"{self.sample_count} items per strategy (beam: its width)"
        self.query_one("#compare-title", Static).update(
            f"[b]{'Compare labels' if self.by_label else 'Compare strategies'}[/]"
            f"{_escape(self._condition_note())} · prompt {_escape(prompt)} · seed {self.seed} · "
            f"{made}{state}{note}"
        )

    def _condition_note(self) -> str:
        if self.by_label:
            guidance = self.guidance if self.guidance is not None else 1.0
            return f" (sampled at temperature 1, guidance {guidance:g})"
        if self.condition:
            return f" · label {self.condition}" + (
                f" (guidance {self.guidance:g})" if self.guidance is not None else ""
            )
        return ""

    def action_close(self) -> None:
        if not self.done:
            self.post_message(EngineCommand(p.Cancel(self.req)))
        self.dismiss()

    def action_rerun(self) -> None:
        if not self.done:
            self.post_message(EngineCommand(p.Cancel(self.req)))
        self.seed += 1
        self.run_compare()

    def action_held_out(self) -> None:
        """Toggle a prompt cut from the held-out split (new place per seed) and its chrF."""
        if self.by_label:
            self.notify("chrF compares strategies: not available for labels", timeout=4)
            return
        if self.items:
            self.notify(
                "a line-per-item model starts each item afresh: no held-out prompt to continue "
                "(the 'new items' columns compare with the training and held-out items)",
                timeout=6,
            )
            return
        if not self.done:
            self.post_message(EngineCommand(p.Cancel(self.req)))
        self.held_out = not self.held_out
        self.prompt = "" if self.held_out else self.typed_prompt
        self.run_compare()

    def _got_CompareResult(self, event: p.CompareResult) -> None:
        if event.req == self.req:
            self.prompt = event.prompt
            self.reference, self.reference_offset = event.reference, event.reference_offset
            self.note = event.note
            self.items = event.items
            counts = [len(row.get("samples") or []) for row in event.rows]
            self.sample_count = max(counts, default=self.sample_count)
            self._show(event.rows)
            self.done = event.done
            if self.done and self.reference is not None:
                self._reference_card(self.reference)
            self._title()

    def _got_ErrorEvent(self, event: p.ErrorEvent) -> None:
        if event.req == self.req:
            self.done = True
            self._title(f" · [red]{_escape(event.message)}[/]")

    def _show(self, rows: list[dict]) -> None:
        table = self.query_one(DataTable)
        samples = self.query_one("#compare-samples", HorizontalScroll)
        with_items = any(r.get("item_novelty") for r in rows)
        if with_items and ITEM_COLUMNS[0][0] not in table.columns:
            for key, label in ITEM_COLUMNS:
                table.add_column(label, key=key)
        with_chrf = any(r.get("chrf") is not None for r in rows)
        if with_chrf and CHRF_COLUMN[0] not in table.columns:
            table.add_column(CHRF_COLUMN[1], key=CHRF_COLUMN[0])
        for row in rows[table.row_count :]:
            cells = [_cell(key, row.get(key)) for key, _ in COLUMNS]
            if ITEM_COLUMNS[0][0] in table.columns:
                novelty = row.get("item_novelty") or {}
                cells += [_cell(key, novelty.get(key)) for key, _ in ITEM_COLUMNS]
            if CHRF_COLUMN[0] in table.columns:
                cells.append(_cell(CHRF_COLUMN[0], row.get(CHRF_COLUMN[0])))
            table.add_row(*cells, key=row["strategy"])
            column = VerticalScroll(
                Static(_card_text(row.get("samples") or [], self.items)), classes="compare-column"
            )
            column.border_title = row["strategy"]
            column.set_class(table.row_count - 1 == table.cursor_row, "-highlight")
            samples.mount(column)
        self.call_after_refresh(self._fit_columns)

    def _reference_card(self, text: str) -> None:
        """The true continuation, last in the row of sample cards."""
        card = VerticalScroll(Static(text, markup=False), classes="compare-column -reference")
        card.border_title = "true continuation"
        self.query_one("#compare-samples", HorizontalScroll).mount(card)
        self.call_after_refresh(self._fit_columns)

    def on_resize(self) -> None:
        self.call_after_refresh(self._fit_columns)

    def _fit_columns(self) -> None:
        """Cards share the width, in rows while each keeps MIN_CARD_LINES; where even that
        leaves them narrower than MIN_CARD columns, one row scrolls sideways."""
        columns = list(self.query(".compare-column"))
        if not columns:
            return
        box = self.query_one("#compare-samples")
        width, height = box.size
        across = max(1, min(len(columns), width // MIN_CARD))
        rows = -(-len(columns) // across)
        if rows > 1 and height // rows >= MIN_CARD_LINES:
            across = -(-len(columns) // rows)  # as even as the rows allow
            box.styles.layout = "grid"
            box.styles.grid_size_columns, box.styles.grid_size_rows = across, rows
            for column in columns:
                column.styles.width = "1fr"
            return
        box.styles.layout = "horizontal"
        for column in columns:
            column.styles.width = max(MIN_CARD, width // across)

    def _picked_card(self) -> VerticalScroll | None:
        cards = list(self.query(".compare-column").results(VerticalScroll))
        row = self.query_one(DataTable).cursor_row
        return cards[row] if 0 <= row < len(cards) else None

    def action_scroll_card(self, pages: int) -> None:
        """Page the picked strategy's card (its samples), the table keeping its row."""
        card = self._picked_card()
        if card is not None:
            (card.scroll_page_down if pages > 0 else card.scroll_page_up)()

    @on(DataTable.RowHighlighted)
    def _highlighted(self, event: DataTable.RowHighlighted) -> None:
        columns = list(self.query(".compare-column"))
        for index, column in enumerate(columns):
            column.set_class(index == event.cursor_row, "-highlight")
        if 0 <= event.cursor_row < len(columns):
            self.query_one("#compare-samples").scroll_to_widget(columns[event.cursor_row])


def _card_text(samples: list[str], items: bool) -> Content:
    """A card's text: every item on its own line, or every sample under a dim rule."""
    if items:
        return Content("\n".join(samples))
    parts: list[Content] = []
    for index, sample in enumerate(samples):
        if index:
            parts.append(Content.styled(f"\n── sample {index + 1} ──\n", "dim"))
        parts.append(Content(sample))
    return Content.assemble(*parts)


def _escape(text: str) -> str:
    from textual.markup import escape

    return escape(text)
