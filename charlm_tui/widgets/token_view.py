"""The generated text, each character coloured by the probability the model gave it.

A Line API widget: it lays the text out itself, wrapping at any character (this
is a character-level model: every character is a decision worth seeing), so the
cursor can move exactly by character and by visual line however long the text
grows. Newlines show as a dim `↵` so they can be coloured and selected too.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import ClassVar

from rich.cells import cell_len
from rich.color import Color as RichColor
from rich.segment import Segment
from rich.style import Style
from textual import events
from textual.binding import Binding, BindingType
from textual.geometry import Region, Size
from textual.message import Message
from textual.reactive import reactive
from textual.scroll_view import ScrollView
from textual.strip import Strip

# Low probability is red, middling amber, high green; a log scale from 1/1000 to 1.
_LOW = (224, 82, 82)
_MID = (224, 184, 72)
_HIGH = (110, 200, 120)
_BUCKETS = 24


def prob_rgb(prob: float) -> tuple[int, int, int]:
    """The colour for a probability (NaN, unknown, is grey)."""
    if prob is None or not math.isfinite(prob):
        return (150, 150, 150)
    t = min(1.0, max(0.0, (math.log10(max(prob, 1e-12)) + 3.0) / 3.0))
    t = round(t * _BUCKETS) / _BUCKETS
    a, b, u = (_LOW, _MID, t * 2) if t < 0.5 else (_MID, _HIGH, t * 2 - 1)
    return (
        round(a[0] + (b[0] - a[0]) * u),
        round(a[1] + (b[1] - a[1]) * u),
        round(a[2] + (b[2] - a[2]) * u),
    )


def prob_hex(prob: float) -> str:
    return "#{:02x}{:02x}{:02x}".format(*prob_rgb(prob))


def visible(char: str) -> str:
    """How a character is drawn: whitespace and control characters made visible."""
    if char == "\n":
        return "↵"
    if char == "\t":
        return "⇥"
    if char == " ":
        return " "
    if not char.isprintable():
        return "·"
    return char


@dataclass
class Generated:
    """What the engine told us about each generated character."""

    text: list[str] = field(default_factory=list)
    probs: list[float] = field(default_factory=list)
    model_probs: list[float] = field(default_factory=list)
    tops: list[list] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.text)


class TokenView(ScrollView, can_focus=True):
    """Prompt (dim) then generated characters, coloured; a cursor walks the generated ones."""

    class CursorMoved(Message):
        """The cursor in the generated text moved to character `index` (-1: nothing there)."""

        def __init__(self, index: int) -> None:
            super().__init__()
            self.index = index

    DEFAULT_CSS = """
    TokenView {
        overflow-x: hidden;
        overflow-y: auto;
    }
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("left", "move(-1)", "Prev char", show=False),
        Binding("right", "move(1)", "Next char", show=False),
        Binding("up", "line(-1)", "Line up", show=False),
        Binding("down", "line(1)", "Line down", show=False),
        Binding("home", "jump(0)", "First char", show=False),
        Binding("end", "jump(-1)", "Last char", show=False),
        Binding("pageup", "line(-10)", show=False),
        Binding("pagedown", "line(10)", show=False),
    ]

    cursor: reactive[int] = reactive(-1, init=False)

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self.prompt = ""
        self.data = Generated()
        self.follow = True  # the cursor rides the end while text streams in
        self._lines: list[tuple[int, int]] = []
        self._laid_width = 0
        self._style_cache: dict[tuple[int, int, int, bool], Style] = {}

    # ----- content -------------------------------------------------------------------

    @property
    def text(self) -> str:
        return "".join(self.data.text)

    def reset(self, prompt: str) -> None:
        self.prompt = prompt
        self.data = Generated()
        self.follow = True
        self.cursor = -1
        self._relayout()

    def append(self, text: str, probs: list, model_probs: list, tops: list) -> None:
        self.data.text.extend(text)
        self.data.probs.extend(probs)
        self.data.model_probs.extend(model_probs)
        self.data.tops.extend(tops)
        self._relayout(incremental=True)
        if self.follow and len(self.data):
            self.cursor = len(self.data) - 1

    def entry(self, index: int) -> tuple[str, float, float, list] | None:
        data = self.data
        if not 0 <= index < len(data):
            return None
        return data.text[index], data.probs[index], data.model_probs[index], data.tops[index]

    # ----- layout --------------------------------------------------------------------

    def _char_at(self, position: int) -> str:
        prompt = self.prompt
        return (
            prompt[position] if position < len(prompt) else self.data.text[position - len(prompt)]
        )

    def _relayout(self, incremental: bool = False) -> None:
        width = max(1, self.scrollable_content_region.width or self.size.width or 80)
        total = len(self.prompt) + len(self.data)
        if incremental and self._lines and width == self._laid_width:
            start = self._lines[-1][0]
            self._lines.pop()
        else:
            start = 0
            self._lines = []
        self._laid_width = width
        line_start, used = start, 0
        position = start
        while position < total:
            char = self._char_at(position)
            cells = max(1, cell_len(visible(char)))
            if used + cells > width and position > line_start:
                self._lines.append((line_start, position))
                line_start, used = position, 0
            used += cells
            position += 1
            if char == "\n":
                self._lines.append((line_start, position))
                line_start, used = position, 0
        if line_start < total or not self._lines:
            self._lines.append((line_start, total))
        self.virtual_size = Size(width, len(self._lines))
        self.refresh()

    def on_resize(self, event: events.Resize) -> None:
        self._relayout()
        self._scroll_to_cursor()

    def _line_of(self, position: int) -> int:
        lo, hi = 0, len(self._lines) - 1
        while lo < hi:
            mid = (lo + hi + 1) // 2
            if self._lines[mid][0] <= position:
                lo = mid
            else:
                hi = mid - 1
        return lo

    # ----- drawing -------------------------------------------------------------------

    def _style(self, prob: float, whitespace: bool) -> Style:
        rgb = prob_rgb(prob)
        key = (*rgb, whitespace)
        style = self._style_cache.get(key)
        if style is None:
            color = RichColor.from_rgb(*rgb)
            if whitespace and math.isfinite(prob) and prob < 0.3:
                # An unlikely space or newline is worth seeing: tint its cell.
                dim = RichColor.from_rgb(*(c // 3 for c in rgb))
                style = Style(color=color, bgcolor=dim)
            else:
                style = Style(color=color)
            self._style_cache[key] = style
        return style

    def render_line(self, y: int) -> Strip:
        width = self.scrollable_content_region.width
        base = self.rich_style
        index = y + int(self.scroll_offset.y)
        if index >= len(self._lines):
            return Strip.blank(width, base)
        start, end = self._lines[index]
        prompt_len = len(self.prompt)
        prompt_style = base + Style(dim=True, italic=True)
        cursor_at = prompt_len + self.cursor if self.cursor >= 0 else -1
        cursor_style = Style(reverse=True) if self.has_focus else Style(underline=True, bold=True)
        segments = []
        for position in range(start, end):
            char = self._char_at(position)
            shown = visible(char)
            if position < prompt_len:
                style = prompt_style
            else:
                i = position - prompt_len
                style = base + self._style(self.data.model_probs[i], char in " \n\t")
                if char == "\n":
                    style += Style(dim=True)
                if position == cursor_at:
                    style += cursor_style
            segments.append(Segment(shown, style))
        return Strip(segments).adjust_cell_length(width, base)

    # ----- cursor --------------------------------------------------------------------

    def watch_cursor(self, old: int, new: int) -> None:
        self.refresh()
        self._scroll_to_cursor()
        self.post_message(self.CursorMoved(new))

    def _on_focus(self, event: events.Focus) -> None:
        self.refresh()

    def _on_blur(self, event: events.Blur) -> None:
        self.refresh()

    def _scroll_to_cursor(self) -> None:
        if self.cursor < 0 or not self._lines:
            return
        line = self._line_of(len(self.prompt) + self.cursor)
        self.scroll_to_region(Region(0, line, 1, 1), animate=False, immediate=False)

    def _set_cursor(self, index: int) -> None:
        count = len(self.data)
        if count == 0:
            return
        index = min(max(index, 0), count - 1)
        self.follow = index == count - 1
        self.cursor = index

    def action_move(self, delta: int) -> None:
        self._set_cursor((self.cursor if self.cursor >= 0 else 0) + delta)

    def action_jump(self, where: int) -> None:
        self._set_cursor(where if where >= 0 else len(self.data) - 1)

    def action_line(self, delta: int) -> None:
        if not len(self.data):
            return
        prompt_len = len(self.prompt)
        position = prompt_len + max(self.cursor, 0)
        line = self._line_of(position)
        column = position - self._lines[line][0]
        target = min(max(line + delta, 0), len(self._lines) - 1)
        start, end = self._lines[target]
        self._set_cursor(min(start + column, max(end - 1, start)) - prompt_len)

    def on_click(self, event: events.Click) -> None:
        offset = event.get_content_offset(self)
        if offset is None or not self._lines:
            return
        line = min(offset.y + int(self.scroll_offset.y), len(self._lines) - 1)
        start, end = self._lines[line]
        used = 0
        for position in range(start, end):
            used += max(1, cell_len(visible(self._char_at(position))))
            if used > offset.x:
                break
        else:
            position = max(end - 1, start)
        if position >= len(self.prompt):
            self._set_cursor(position - len(self.prompt))
