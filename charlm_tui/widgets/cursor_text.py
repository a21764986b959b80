"""A text laid out character by character, with a cursor that walks its characters.

The generated text (TokenView) and the inspected text (ValueText) are both
character-level views: every character is one decision of the model, so they
wrap at any character (not at words), newlines show as a glyph that can be
coloured and selected, and the cursor moves exactly by character and by visual
line however long the text grows. This base holds that layout and the cursor;
subclasses say what each character looks like (`render_line`) and which
characters the cursor may visit (a leading part, like a prompt, may be shown
but not walked).
"""

from __future__ import annotations

from rich.cells import cell_len
from textual import events
from textual.geometry import Region, Size
from textual.message import Message
from textual.reactive import reactive
from textual.scroll_view import ScrollView

from charlm_tui.widgets.glyphs import visible


class CursorText(ScrollView, can_focus=True):
    """Lays out `_char_at(0 .. _laid_count())`; the cursor indexes the walkable part."""

    class CursorMoved(Message):
        """The cursor moved to walkable character `index` (-1: nothing there)."""

        def __init__(self, index: int) -> None:
            super().__init__()
            self.index = index

    cursor: reactive[int] = reactive(-1, init=False)

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self._lines: list[tuple[int, int]] = []  # (start, end) positions of each visual line
        self._laid_width = 0

    # ----- what subclasses provide ----------------------------------------------------

    def _char_at(self, position: int) -> str:
        raise NotImplementedError

    def _laid_count(self) -> int:
        """How many characters are laid out (the lead, then the walkable ones)."""
        raise NotImplementedError

    def _lead(self) -> int:
        """How many leading characters are shown but not walked (a prompt)."""
        return 0

    def _cursor_set(self, index: int, count: int) -> None:
        """Called before the cursor moves to `index` of `count` walkable characters."""

    # ----- layout ----------------------------------------------------------------------

    def _walkable(self) -> int:
        return self._laid_count() - self._lead()

    def _relayout(self, incremental: bool = False) -> None:
        """Wrap at any character; `incremental` re-lays only the last line (streaming)."""
        width = max(1, self.scrollable_content_region.width or self.size.width or 80)
        total = self._laid_count()
        if incremental and self._lines and width == self._laid_width:
            start = self._lines.pop()[0]
        else:
            start, self._lines = 0, []
        self._laid_width = width
        line_start, used = start, 0
        for position in range(start, total):
            char = self._char_at(position)
            cells = max(1, cell_len(visible(char)))
            if used + cells > width and position > line_start:
                self._lines.append((line_start, position))
                line_start, used = position, 0
            used += cells
            if char == "\n":
                self._lines.append((line_start, position + 1))
                line_start, used = position + 1, 0
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

    # ----- cursor ----------------------------------------------------------------------

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
        line = self._line_of(self._lead() + self.cursor)
        self.scroll_to_region(Region(0, line, 1, 1), animate=False, immediate=False)

    def _set_cursor(self, index: int) -> None:
        count = self._walkable()
        if count <= 0:
            return
        index = min(max(index, 0), count - 1)
        self._cursor_set(index, count)
        self.cursor = index

    def action_move(self, delta: int) -> None:
        self._set_cursor(max(self.cursor, 0) + delta)

    def action_jump(self, where: int) -> None:
        self._set_cursor(where if where >= 0 else self._walkable() - 1)

    def action_line(self, delta: int) -> None:
        if self._walkable() <= 0:
            return
        lead = self._lead()
        position = lead + max(self.cursor, 0)
        line = self._line_of(position)
        column = position - self._lines[line][0]
        target = min(max(line + delta, 0), len(self._lines) - 1)
        start, end = self._lines[target]
        self._set_cursor(min(start + column, max(end - 1, start)) - lead)

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
        if position >= self._lead():
            self._set_cursor(position - self._lead())
