"""A checkbox whose state shows in its glyph, not only in its colour: ✓ ticked, blank not.

Textual's Checkbox draws the same X either way and tells the states apart by colour
alone, which a monochrome terminal, a colour-blind user or a quick glance misses.
"""

from __future__ import annotations

from textual.content import Content
from textual.widgets import Checkbox


class TickBox(Checkbox):
    @property
    def _button(self) -> Content:
        self.BUTTON_INNER = "✓" if self.value else " "
        return super()._button
