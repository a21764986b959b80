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


async def train_tiny(pilot: Pilot, max_steps: str, timeout: float = 120.0):
    """F3, the tiny preset for `max_steps` steps, F5, and wait for the run to end: the
    training pane, done or failed (the caller asserts which)."""
    from charlm_tui.panes.training import TrainingPane

    app = pilot.app
    await pilot.press("f3")
    app.query_one("#preset").value = "tiny"
    await pilot.pause()
    app.query_one("#f-max_steps").value = max_steps
    await pilot.press("f5")
    pane = app.query_one(TrainingPane)
    await wait_until(pilot, lambda: pane.state in ("done", "failed"), timeout, "training to end")
    return pane


async def start_choice_shown(pilot: Pilot, timeout: float = 10.0) -> None:
    """Wait for F5's continue / new-run question to be on screen with its buttons: a key
    pressed while the screen is still being mounted can come before it is ready."""
    app = pilot.app

    def ready() -> bool:
        screen = app.screen
        return type(screen).__name__ == "StartChoiceScreen" and bool(
            screen.is_mounted and screen.query("#choice-new")
        )

    await wait_until(pilot, ready, timeout, "F5's question")
    await pilot.pause()
