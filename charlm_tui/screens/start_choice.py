"""F5 over a model: continue that run, start a new one, or cancel.

A real choice instead of "press F5 again": the question is on screen until it is
answered, and nothing is left armed once it is dismissed. The screen answers
"continue", "new" or None (cancelled); the training pane acts on it.
"""

from __future__ import annotations

from typing import ClassVar

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Static

from charlm_tui.messages import CONTINUE, NEW


class StartChoiceScreen(ModalScreen[str | None]):
    """c continues the run, n starts a new run from step 0, esc cancels."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("c", "choose('continue')", "Continue", show=False),
        Binding("n", "choose('new')", "New run", show=False),
        Binding("escape", "choose('')", "Cancel", show=False),
        Binding("left,up", "app.focus_previous", show=False),
        Binding("right,down", "app.focus_next", show=False),
    ]

    def __init__(self, question: str, continue_label: str | None, new_label: str) -> None:
        """`continue_label` None: this model cannot be continued (only a new run or cancel)."""
        super().__init__()
        self.question = question
        self.continue_label = continue_label
        self.new_label = new_label

    def compose(self) -> ComposeResult:
        with Vertical(id="choice-box"):
            yield Static(self.question, id="choice-question", markup=False)
            with Horizontal(id="choice-buttons"):
                if self.continue_label is not None:
                    yield Button(
                        f"c {self.continue_label}", id="choice-continue", variant="primary"
                    )
                yield Button(f"n {self.new_label}", id="choice-new", variant="warning")
                yield Button("esc Cancel", id="choice-cancel")

    def on_mount(self) -> None:
        box = self.query_one("#choice-box")
        box.border_title = "Train"
        first = "#choice-continue" if self.continue_label is not None else "#choice-cancel"
        self.query_one(first, Button).focus()

    def action_choose(self, answer: str) -> None:
        if answer == CONTINUE and self.continue_label is None:
            return
        self.dismiss(answer or None)

    @on(Button.Pressed)
    def _pressed(self, event: Button.Pressed) -> None:
        event.stop()
        answers = {"choice-continue": CONTINUE, "choice-new": NEW, "choice-cancel": ""}
        self.action_choose(answers.get(event.button.id or "", ""))
