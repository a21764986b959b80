"""One line out of any error: what the CLI, the worker and the trainer show."""

from __future__ import annotations

from engine.errors import CheckpointError, first_line


def test_first_line_of_a_message_or_an_exception():
    assert first_line("\n  weights do not load\nTraceback (most recent call last):\n") == (
        "weights do not load"
    )
    assert first_line(CheckpointError("bad header\nat byte 8")) == "bad header"
    # An empty message: the caller's default (the exception's type name, "error", or "").
    assert first_line(RuntimeError(), "RuntimeError") == "RuntimeError"
    assert first_line("   \n ") == ""
