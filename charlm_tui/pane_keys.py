"""The keys that switch panes, from anywhere.

F2-F4 for the first panes (F5-F9 are the training pane's actions, so Inspect takes
F10) and alt+N for the Nth pane, both working in text fields too. A new pane adds
its tab to TABS (alt+5, ...) and, for an F-key, takes F11 onwards. Where alt is
sent as esc + key (tmux, xterm), Textual reads esc+1..4 as the characters macOS
types with option+1..4 (¡ ™ £ ¢): those switch panes too, outside text fields
(in one they type, as any character does).
"""

from __future__ import annotations

from textual.binding import Binding

TABS = ("corpus", "training", "generate", "inspect")
PANE_KEYS = {"corpus": "f2", "training": "f3", "generate": "f4", "inspect": "f10"}
ESC_DIGIT_KEYS = ("inverted_exclamation_mark", "trade_mark_sign", "pound_sign", "cent_sign")


def pane_bindings() -> list[Binding]:
    """F-keys and alt+N (priority: text fields too), then esc+N's characters (not)."""
    return [
        *[
            Binding(key, f"tab('{tab}')", tab.capitalize(), show=False, priority=True)
            for tab, key in PANE_KEYS.items()
        ],
        *[
            Binding(f"alt+{n}", f"tab('{tab}')", show=False, priority=True)
            for n, tab in enumerate(TABS, start=1)
        ],
        *[
            Binding(key, f"tab('{tab}')", show=False)
            for key, tab in zip(ESC_DIGIT_KEYS, TABS, strict=False)
        ],
    ]
