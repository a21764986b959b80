"""Commands reach their handlers through the server's table (engine/worker/server.py
HANDLERS), checked against protocol.COMMANDS at import: a command without a handler,
or a handler filed under the wrong command, fails here instead of being dropped."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from engine.worker import protocol as p
from engine.worker.server import HANDLERS, EngineServer, check_handlers


class _Sent:
    """An outbox that keeps what the server sends."""

    def __init__(self) -> None:
        self.events: list[object] = []

    def send(self, event: object) -> None:
        self.events.append(event)


def test_every_command_but_shutdown_has_its_own_handler() -> None:
    assert set(HANDLERS) == set(p.COMMANDS) - {p.Shutdown}
    for command, handler in HANDLERS.items():
        assert handler.__name__ == f"on_{command.__name__}"
        assert getattr(EngineServer, handler.__name__) is handler


def test_a_table_missing_a_command_or_naming_a_stranger_fails() -> None:
    check_handlers(HANDLERS, p.COMMANDS)
    fewer = {c: h for c, h in HANDLERS.items() if c is not p.Pause}
    with pytest.raises(TypeError, match=r"missing \[.Pause.\]"):
        check_handlers(fewer, p.COMMANDS)

    @dataclass
    class Unheard:
        req: int = 0

    with pytest.raises(TypeError, match=r"not commands \[.Unheard.\]"):
        check_handlers({**HANDLERS, Unheard: EngineServer.on_Pause}, p.COMMANDS)


def test_an_unknown_command_is_answered_with_an_error() -> None:
    @dataclass
    class Unheard:
        req: int = 0

    sent = _Sent()
    server = EngineServer(sent)  # type: ignore[arg-type]
    assert server.handle(Unheard(req=7)) is True
    [error] = sent.events
    assert isinstance(error, p.ErrorEvent)
    assert error.message == "unknown command Unheard" and error.command == "Unheard"
    assert error.req == 7


def test_a_command_goes_to_its_handler_and_shutdown_ends_the_loop() -> None:
    sent = _Sent()
    server = EngineServer(sent)  # type: ignore[arg-type]
    assert server.handle(p.Stop()) is True  # on_Stop: nothing is training
    [error] = sent.events
    assert isinstance(error, p.ErrorEvent) and error.message == "nothing is training"
    assert error.command == "Stop"
    assert server.handle(p.Shutdown()) is False
