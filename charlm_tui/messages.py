"""The Textual messages the panes and the app exchange (all of them, in one place).

Panes never talk to the engine: they post `EngineCommand` with a protocol
command and the app forwards it; the app turns whatever the engine says into
`EngineEvent` messages for the panes. Everything else here is UI-to-UI.
"""

from __future__ import annotations

from textual.message import Message


class EngineCommand(Message):
    """A pane asks the app to send a command (an engine.worker.protocol dataclass) to the engine."""

    def __init__(self, command: object) -> None:
        super().__init__()
        self.command = command


class EngineEvent(Message, bubble=False):
    """The app hands a pane (or screen) an event from the engine (an engine.worker.protocol dataclass)."""

    def __init__(self, event: object) -> None:
        super().__init__()
        self.event = event


class OpenFileRequested(Message):
    """Show the file browser to pick a corpus file or directory."""


class CompareRequested(Message):
    """Open the strategy comparison for a prompt."""

    def __init__(self, prompt: str, length: int, seed: int) -> None:
        super().__init__()
        self.prompt = prompt
        self.length = length
        self.seed = seed


class KnobsChanged(Message):
    """The sampling knobs changed (posted by the knobs widget, handled by the generation pane)."""

    def __init__(self, params: dict, knob: str) -> None:
        super().__init__()
        self.params = params
        self.knob = knob


class CursorMoved(Message):
    """The cursor in the generated text moved to character `index` (-1: nothing there)."""

    def __init__(self, index: int) -> None:
        super().__init__()
        self.index = index
