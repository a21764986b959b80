"""Polling a running app until something shows, with a deadline instead of fixed sleeps."""

from __future__ import annotations

import time
from collections.abc import Callable

from textual.pilot import Pilot

DEFAULT_TIMEOUT = 60.0


async def wait_until(
    pilot: Pilot, condition: Callable[[], object], timeout: float = DEFAULT_TIMEOUT, what: str = ""
) -> None:
    """Let the app run until `condition()` is true; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what or condition}")
        await pilot.pause(0.05)


def text_of(app, selector: str) -> str:
    """The plain text a Static (or any widget with a visual) shows now."""
    widget = app.query_one(selector)
    visual = widget.visual if hasattr(widget, "visual") else None
    if visual is not None and hasattr(visual, "plain"):
        return str(visual.plain)
    return str(widget.render())
