"""A text box for inspecting any text: pasted, typed, or edited from what is there.

The inspect pane shows units, attention and saliency over a text; the held-out
excerpt and the generation pane's output are two sources, and this is the
third: whatever the user brings (a paragraph with quotes to find a quote unit,
code to find a bracket unit). A multi-line TextArea, because the interesting
features (line position, indentation) need newlines that a one-line Input drops.
"""

from __future__ import annotations

from typing import ClassVar

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Static, TextArea

from engine.worker.protocol import INSPECT_MAX_CHARS as MAX_TEXT_CHARS


class PasteScreen(ModalScreen[str | None]):
    """ctrl+s (or the button) inspects the text; esc cancels."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "cancel", "Cancel"),
        Binding("ctrl+s", "inspect", "Inspect"),
    ]

    def __init__(self, text: str = "") -> None:
        super().__init__()
        self.text = text

    def compose(self) -> ComposeResult:
        with Vertical(id="paste-box"):
            yield TextArea(self.text, id="paste-text", soft_wrap=True, show_line_numbers=False)
            yield Static(id="paste-count")
            with Horizontal(id="paste-buttons"):
                yield Button("Inspect (ctrl+s)", id="paste-go", compact=True, variant="primary")
                yield Button("Cancel (esc)", id="paste-cancel", compact=True)

    def on_mount(self) -> None:
        box = self.query_one("#paste-box")
        box.border_title = "Inspect this text"
        box.border_subtitle = "paste or type · ctrl+s inspects · esc cancels"
        self.query_one(TextArea).focus()
        self._count()

    @on(TextArea.Changed)
    def _count(self) -> None:
        chars = len(self.query_one(TextArea).text)
        over = chars > MAX_TEXT_CHARS
        colour = "red" if over else "dim"
        tail = f" · over the {MAX_TEXT_CHARS:,} limit: the first {MAX_TEXT_CHARS:,} are used" * over
        self.query_one("#paste-count", Static).update(f"[{colour}]{chars:,} characters{tail}[/]")

    def action_inspect(self) -> None:
        text = self.query_one(TextArea).text
        if not text.strip():
            self.notify("nothing to inspect: paste or type some text", severity="warning")
            return
        self.dismiss(text[:MAX_TEXT_CHARS])

    def action_cancel(self) -> None:
        self.dismiss(None)

    @on(Button.Pressed, "#paste-go")
    def _go(self) -> None:
        self.action_inspect()

    @on(Button.Pressed, "#paste-cancel")
    def _cancel(self) -> None:
        self.action_cancel()
