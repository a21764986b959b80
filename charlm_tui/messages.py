"""The app-wide messages between the panes and the engine, and the one way the UI reads engine events.

Panes never talk to the engine: they post `EngineCommand` with a protocol
command and the app forwards it; the app turns whatever the engine says into
`EngineEvent` messages for the panes and screens. UI-to-UI messages live in the
widget that posts them (`TokenView.CursorMoved`, `CorpusPane.OpenFileRequested`, ...).

Engine events are dispatched by name, as the engine server dispatches commands:
an event class `CorpusLoaded` goes to a method `_got_CorpusLoaded(event)`; a class
without such a method ignores that event. The app and every pane and screen use
`dispatch_engine_event` (panes and screens through `EngineEventHandler`), so there
is one place to look for who reacts to an event.
"""

from __future__ import annotations

from textual.message import Message

# What the user was doing when a command failed, for the error's title.
FAILED = {
    "LoadCorpus": "Could not open the corpus",
    "Train": "Could not start training",
    "Evaluate": "Could not evaluate",
    "Generate": "Could not generate",
    "SetSampling": "Could not use these sampling settings",
    "LoadCheckpoint": "Could not load the checkpoint",
    "SaveCheckpoint": "Could not save the checkpoint",
    "Compare": "Could not compare strategies",
    "ListRuns": "Could not list the saved runs",
    "Pause": "Could not pause",
    "Resume": "Could not resume",
    "Stop": "Could not stop training",
}
# How the app words the settings engine errors name (engine/wording.py): the control that
# sets each here, never a CLI flag. A setting not listed reads as its name.
SETTING_WORDS = {
    "guidance": "guidance (g/G)",
    "condition": "a label (n)",
    "conditional": "the form's conditional switch",
    "force": "only the command line (charlm-tui train --resume --force)",
    "max_steps": "max steps",
    "time_budget": "the time limit",
    "tokens": "word tokens",
    "items": "“one item per line”",
    "resume": "“continue this run”",
}
# Commands that need the engine up and the corpus loaded: pressed during start-up they wait.
NEED_CORPUS = ("Train", "Evaluate", "Generate", "Compare")


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


def dispatch_engine_event(receiver: object, event: object) -> None:
    """Call `receiver._got_{EventClass}(event)` when the receiver has one."""
    handler = getattr(receiver, f"_got_{type(event).__name__}", None)
    if handler is not None:
        handler(event)


class EngineEventHandler:
    """Mixin for a widget or screen that reacts to engine events by `_got_{EventClass}` methods."""

    def on_engine_event(self, message: EngineEvent) -> None:
        dispatch_engine_event(self, message.event)


# The answers of the start-choice screen (F5 over a model); None cancels.
CONTINUE, NEW = "continue", "new"
