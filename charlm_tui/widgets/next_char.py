"""The panel beside the output: what the model thought at the character under the cursor.

It shows the chosen character, the probability the model gave it and the one it
had after the sampling filters, and the model's top alternatives as bars: the
distribution the character was drawn from. It takes focus (tab from the output,
or a click): up/down pick an alternative and Enter branches with it, as its
number key does from anywhere in the pane.
"""

from __future__ import annotations

import math
from typing import ClassVar

from rich.cells import cell_len
from textual.binding import Binding, BindingType
from textual.content import Content
from textual.message import Message
from textual.reactive import reactive
from textual.widget import Widget

from charlm_tui.widgets.glyphs import visible
from charlm_tui.widgets.token_view import prob_hex

BLOCKS = " ▏▎▍▌▋▊▉█"


def bar(fraction: float, width: int) -> str:
    """A horizontal bar of `width` cells filled to `fraction`, in eighths."""
    fraction = min(1.0, max(0.0, fraction))
    eighths = round(fraction * width * 8)
    full, rest = divmod(eighths, 8)
    text = "█" * full + (BLOCKS[rest] if rest else "")
    return text.ljust(width)


def shown(char: str) -> str:
    return "␣" if char == " " else visible(char)


MAX_LABEL = 8  # cells of an alternative's label; a longer word token ends in "…"


def _label(token: str) -> str:
    """An alternative as shown: one character made visible, or a word cut to MAX_LABEL cells."""
    text = shown(token) if len(token) == 1 else "".join(shown(c) for c in token)
    if cell_len(text) <= MAX_LABEL:
        return text
    while cell_len(text) > MAX_LABEL - 1:
        text = text[:-1]
    return text + "…"


def _percent(prob: float) -> str:
    return "   ?  " if not math.isfinite(prob) else f"{prob * 100:5.1f}%"


class NextCharPanel(Widget):
    """Chosen character, its probabilities, and the top-5 bars, for one position."""

    DEFAULT_CSS = """
    NextCharPanel {
        width: 28;
        height: auto;
        padding: 0 1;
    }
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("up", "select(-1)", "Prev alternative", show=False),
        Binding("down", "select(1)", "Next alternative", show=False),
        Binding("enter", "branch", "Branch with it"),
    ]
    can_focus = True

    class Picked(Message):
        """Branch at the cursor with alternative `rank` (1-based)."""

        def __init__(self, rank: int) -> None:
            super().__init__()
            self.rank = rank

    entry: reactive[tuple | None] = reactive(None, layout=True)
    index: reactive[int] = reactive(-1)
    selected: reactive[int] = reactive(0)

    def show(self, index: int, entry: tuple | None) -> None:
        if index != self.index:
            self.selected = 0
        self.index = index
        self.entry = entry

    def _alternatives(self) -> int:
        return len(self.entry[3]) if self.entry is not None else 0

    def action_select(self, delta: int) -> None:
        count = self._alternatives()
        if count:
            self.selected = (self.selected + delta) % count

    def action_branch(self) -> None:
        if self._alternatives():
            self.post_message(self.Picked(self.selected + 1))
        else:
            self.app.bell()

    def on_focus(self) -> None:
        self.refresh()

    def on_blur(self) -> None:
        self.refresh()

    def render(self) -> Content:
        entry = self.entry
        if entry is None:
            return Content.from_markup(
                "[dim]Move the cursor through the output with the arrow keys to see the "
                "model's choices.[/]"
            )
        char, prob, model_prob, top = entry
        width = max(4, self.content_size.width - 12)
        lines = [
            Content.assemble(
                ("char ", "dim"),
                (f"#{self.index + 1} ", "dim"),
                (f" {shown(char)} ", f"bold reverse {prob_hex(model_prob)}"),
            ),
            Content.assemble(("model p   ", "dim"), (_percent(model_prob), prob_hex(model_prob))),
            Content.assemble(("sampled p ", "dim"), (_percent(prob), "bold")),
            Content.styled(
                "↑↓ pick · enter branches" if self.has_focus else "alternatives (1-9 branch)",
                "dim underline",
            ),
        ]
        if not top:
            lines.append(Content.styled("(not known for beam search)", "dim"))
        # A word-level model's alternatives are words: one label column as wide as the
        # widest (up to MAX_LABEL cells), so the bars and percentages stay in columns.
        labels = [_label(alt) for alt, _ in top]
        label_width = max((cell_len(label) for label in labels), default=1)
        bar_width = max(4, width + 1 - label_width)
        for rank, ((alt, alt_prob), label) in enumerate(zip(top, labels, strict=True), start=1):
            style = "bold" if alt == char else ""
            padded = label + " " * (label_width - cell_len(label) + 1)
            line = Content.assemble(
                (f"{rank} ", "$accent"),
                (padded, f"bold {prob_hex(alt_prob)}" if alt == char else "bold"),
                (bar(alt_prob, bar_width), prob_hex(alt_prob)),
                (_percent(alt_prob), style),
            )
            if self.has_focus and rank - 1 == self.selected:
                line = line.stylize("reverse")
            lines.append(line)
        return Content("\n").join(lines)
