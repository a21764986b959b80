"""How one character is drawn in one cell, everywhere in the app and the CLI.

A character-level model decides newlines, tabs and control characters like any
other character, so they must be visible (and colourable) where text is shown:
the same glyphs in the generation pane, the inspect pane and `inspect` output.
"""

from __future__ import annotations

NEWLINE_GLYPH = "↵"
TAB_GLYPH = "⇥"


def visible(char: str) -> str:
    """One cell for a character: newline and tab get glyphs, other controls a dot."""
    if char == "\n":
        return NEWLINE_GLYPH
    if char == "\t":
        return TAB_GLYPH
    return char if char.isprintable() else "·"
