"""The app-wide messages between the panes and the engine, and the one way the UI reads engine events.

Panes never talk to the engine: they post `EngineCommand` with a protocol
command and the app forwards it; the app turns whatever the engine says into
`EngineEvent` messages for the panes and screens. UI-to-UI messages live in the
widget that posts them (`TokenView.CursorMoved`, `CorpusPane.OpenFileRequested`, ...).

Engine events are dispatched through a table per receiving class, from event class
to handler: a method `_got_CorpusLoaded(event)` handles `CorpusLoaded`. The table is
built when the class is defined (`EngineEventReceiver`), and a `_got_` method that
names no event of `protocol.EVENTS` fails there, so a misspelt handler cannot drop
events silently; a class without a handler for an event ignores it. The app and every
pane and screen use `dispatch_engine_event` (panes and screens through
`EngineEventHandler`), so there is one place to look for who reacts to an event.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

from textual.message import Message

from engine.worker import protocol as p

# What the user was doing when a command failed, for the error's title.
FAILED = {
    "LoadCorpus": "Could not open the corpus",
    "Train": "Could not start training",
    "Evaluate": "Could not evaluate",
    "Generate": "Could not generate",
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


HANDLER_PREFIX = "_got_"
_EVENTS_BY_NAME = {event.__name__: event for event in p.EVENTS}


def event_handlers(cls: type) -> dict[type, Callable[[Any, Any], None]]:
    """`cls`'s table from event class to its `_got_{EventClass}` method (inherited ones
    included); a `_got_` method naming no engine event is an error."""
    table: dict[type, Callable[[Any, Any], None]] = {}
    for name in dir(cls):
        if not name.startswith(HANDLER_PREFIX):
            continue
        event = _EVENTS_BY_NAME.get(name.removeprefix(HANDLER_PREFIX))
        if event is None:
            raise TypeError(f"{cls.__qualname__}.{name} handles no engine event (protocol.EVENTS)")
        table[event] = getattr(cls, name)
    return table


class EngineEventReceiver:
    """Mixin for a class that reacts to engine events: its handler table is built,
    and checked, when the class is defined."""

    ENGINE_HANDLERS: ClassVar[dict[type, Callable[[Any, Any], None]]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls.ENGINE_HANDLERS = event_handlers(cls)


def dispatch_engine_event(receiver: EngineEventReceiver, event: object) -> None:
    """Hand `event` to the receiver's handler for its class, when it has one."""
    handler = receiver.ENGINE_HANDLERS.get(type(event))
    if handler is not None:
        handler(receiver, event)


class EngineEventHandler(EngineEventReceiver):
    """Mixin for a widget or screen that gets engine events as `EngineEvent` messages."""

    def on_engine_event(self, message: EngineEvent) -> None:
        dispatch_engine_event(self, message.event)


# The answers of the start-choice screen (F5 over a model); None cancels.
CONTINUE, NEW = "continue", "new"
