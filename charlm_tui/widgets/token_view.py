"""The generated text, each character coloured by the probability the model gave it.

A CursorText (widgets/cursor_text.py: laid out and walked character by
character): the prompt is shown dim and italic before the generated characters,
which the cursor walks; while text streams in the cursor rides its end.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import ClassVar

from rich.color import Color as RichColor
from rich.segment import Segment
from rich.style import Style
from textual.binding import Binding, BindingType
from textual.strip import Strip

from charlm_tui.widgets.cursor_text import CursorText
from charlm_tui.widgets.glyphs import visible

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


@dataclass
class Generated:
    """What the engine told us about each generated character."""

    text: list[str] = field(default_factory=list)
    probs: list[float] = field(default_factory=list)
    model_probs: list[float] = field(default_factory=list)
    tops: list[list] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.text)


class TokenView(CursorText):
    """Prompt (dim) then generated characters, coloured; a cursor walks the generated ones."""

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

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self.prompt = ""
        self.data = Generated()
        self.follow = True  # the cursor rides the end while text streams in
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

    # ----- layout (CursorText) ----------------------------------------------------

    def _char_at(self, position: int) -> str:
        prompt = self.prompt
        return (
            prompt[position] if position < len(prompt) else self.data.text[position - len(prompt)]
        )

    def _laid_count(self) -> int:
        return len(self.prompt) + len(self.data)

    def _lead(self) -> int:
        return len(self.prompt)

    def _cursor_set(self, index: int, count: int) -> None:
        self.follow = index == count - 1

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
