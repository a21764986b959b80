"""A text with a number per character, shown as the character's background colour.

Two scales: "diverging" (unit activations: blue below 0, red above, pale near 0,
symmetric around 0 so the sign reads at a glance) and "weights" (attention and
saliency: from clear to amber as the share grows; characters outside the
window have no value and stay plain). A cursor walks the characters; moving it
posts `ValueText.CursorMoved`. Up and down are left to the pane (they move
between units there); page up/down move the cursor by a line.
"""

from __future__ import annotations

from typing import ClassVar

from rich.color import Color as RichColor
from rich.segment import Segment
from rich.style import Style
from textual.binding import Binding, BindingType
from textual.content import Content
from textual.strip import Strip

from charlm_tui.widgets.cursor_text import CursorText
from charlm_tui.widgets.glyphs import visible

_BUCKETS = 12
_NEGATIVE = (70, 110, 230)
_POSITIVE = (220, 60, 60)
_WEIGHT = (235, 165, 40)


def value_rgb(value: float | None, scale: float, mode: str) -> tuple[int, int, int] | None:
    """The background for a value (None: no colour), bucketed so styles can be cached."""
    if value is None or scale <= 0:
        return None
    t = max(-1.0, min(1.0, value / scale))
    t = round(t * _BUCKETS) / _BUCKETS
    if mode == "weights":
        t = max(0.0, t)
        target = _WEIGHT
    else:
        target = _POSITIVE if t >= 0 else _NEGATIVE
    strength = abs(t)
    if strength == 0:
        return None
    base = 40  # blend from a dark cell, so the character stays readable in white
    return tuple(round(base + (c - base) * strength) for c in target)  # type: ignore[return-value]


def value_legend(mode: str | None, scale: float) -> Content:
    """What the colours mean for a mode, with the ends of its scale (empty for None)."""

    def swatch(value: float) -> tuple[str, str]:
        rgb = value_rgb(value, scale, mode or "") or (128, 128, 128)
        return ("■", "#{:02x}{:02x}{:02x}".format(*rgb))

    if mode == "diverging":
        return Content.assemble(
            swatch(-scale), (f" -{scale:.2f}  0  ", "dim"), swatch(scale), (f" +{scale:.2f}", "dim")
        )
    if mode == "weights":
        return Content.assemble(("0 ", "dim"), swatch(scale), (f" {scale:.2f}", "dim"))
    return Content("")


class ValueText(CursorText, inherit_bindings=False):
    """Characters coloured by a value each, wrapped at any character, with a cursor."""

    DEFAULT_CSS = """
    ValueText {
        overflow-x: hidden;
        overflow-y: auto;
    }
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("left", "move(-1)", "Prev char", show=False),
        Binding("right", "move(1)", "Next char", show=False),
        Binding("home", "jump(0)", "First char", show=False),
        Binding("end", "jump(-1)", "Last char", show=False),
        Binding("pageup", "line(-1)", "Line up", show=False),
        Binding("pagedown", "line(1)", "Line down", show=False),
    ]

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self.text = ""
        self.values: list[float | None] = []
        self.mode = "diverging"
        self.scale = 1.0
        self._styles: dict[tuple[int, int, int] | None, Style] = {}

    # ----- content -------------------------------------------------------------------

    def set_text(self, text: str) -> None:
        self.text = text
        self.values = [None] * len(text)
        self.cursor = min(max(self.cursor, 0), len(text) - 1) if text else -1
        self._relayout()

    def set_values(self, values: list[float | None], mode: str = "diverging") -> None:
        """Values per character (None: none); the scale is the largest magnitude."""
        self.values = list(values) + [None] * (len(self.text) - len(values))
        self.mode = mode
        present = [abs(v) for v in self.values if v is not None]
        self.scale = max(present, default=0.0) or 1.0
        self.refresh()

    def value_at(self, index: int) -> float | None:
        return self.values[index] if 0 <= index < len(self.values) else None

    # ----- layout (CursorText) ----------------------------------------------------

    def _char_at(self, position: int) -> str:
        return self.text[position]

    def _laid_count(self) -> int:
        return len(self.text)

    # ----- drawing -------------------------------------------------------------------

    def _style(self, value: float | None) -> Style:
        rgb = value_rgb(value, self.scale, self.mode)
        style = self._styles.get(rgb)
        if style is None:
            style = Style(bgcolor=RichColor.from_rgb(*rgb), color="white") if rgb else Style()
            self._styles[rgb] = style
        return style

    def render_line(self, y: int) -> Strip:
        width = self.scrollable_content_region.width
        base = self.rich_style
        index = y + int(self.scroll_offset.y)
        if index >= len(self._lines):
            return Strip.blank(width, base)
        start, end = self._lines[index]
        cursor_style = Style(reverse=True) if self.has_focus else Style(underline=True, bold=True)
        segments = []
        for position in range(start, end):
            char = self.text[position]
            style = base + self._style(self.values[position])
            if char == "\n":
                style += Style(dim=True)
            if position == self.cursor:
                style += cursor_style
            segments.append(Segment(visible(char), style))
        return Strip(segments).adjust_cell_length(width, base)
