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


def test_first_line_keeps_a_path_with_a_line_break_whole():
    error = CheckpointError("/tmp/runs/a\nb/state.json: damaged\nTraceback (most recent call last)")
    assert first_line(error) == "/tmp/runs/a\\nb/state.json: damaged"
    assert first_line(CheckpointError("bad header\nat byte 8")) == "bad header"
    # only our own messages: a library's text is cut at its first line as before
    assert first_line(RuntimeError("/tmp/a\nb: boom")) == "/tmp/a"
