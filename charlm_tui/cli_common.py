"""What every subcommand shares: JSON on stdout, people on stderr, errors as one line.

The contract (README, "Headless CLI"): with `--json`, stdout carries exactly one JSON object
(or one per line for streams) and everything for humans goes to stderr; bad
input exits with code 2 and one line on stderr, never a traceback.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import json
import math
import os
import sys
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import typer
from rich.console import Console

F = TypeVar("F", bound=Callable[..., Any])

stderr = Console(stderr=True, highlight=False)
# Data a user asked for in human form (`corpus list`, `corpus info`): it can be piped.
stdout = Console(highlight=False)


def one_line(message: object) -> str:
    """The message's first line, with any argument of this command that holds a newline
    (a path, a name) written escaped first, so such a path is never cut short (and a
    UserError keeps any path it quotes whole: engine.errors.first_line)."""
    from engine.errors import UserError, first_line, user_message_line
    from engine.files import show_path
    from engine.wording import in_cli_words

    text = in_cli_words(str(message))  # settings the engine names are flags here
    for arg in sorted(set(sys.argv[1:]), key=len, reverse=True):
        if arg and not arg.isprintable() and arg in text:
            text = text.replace(arg, show_path(arg))
    if isinstance(message, UserError):
        return user_message_line(text.strip()) or "error"
    return first_line(text, "error")


def fail(message: object, code: int = 2) -> NoReturn:
    """Print one line to stderr and exit (2: the user's input was bad)."""
    sys.stderr.write(f"charlm-tui: error: {one_line(message)}\n")
    sys.stderr.flush()
    raise typer.Exit(code)


def _clean(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    return value


def emit_json(payload: dict, *, line: bool = True) -> None:
    """One JSON object on stdout (NaN/inf become null so every parser accepts it)."""
    sys.stdout.write(json.dumps(_clean(payload), ensure_ascii=False) + ("\n" if line else ""))
    sys.stdout.flush()


def user_errors(func: F) -> F:
    """Turn the engine's UserError (and Ctrl-C) into the CLI's exit codes."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from engine.errors import UserError

        try:
            return func(*args, **kwargs)
        except UserError as exc:
            fail(exc)
        except OSError as exc:
            if exc.errno != errno.ENAMETOOLONG:
                raise
            from engine.files import show_path

            name = exc.filename if exc.filename is not None else "a path given"
            fail(f"file name too long for the file system: {show_path(name)}")
        except KeyboardInterrupt:
            sys.stderr.write("charlm-tui: interrupted\n")
            raise typer.Exit(130) from None

    return wrapper  # type: ignore[return-value]


def pipe_may_close(func: F) -> F:
    """A reader that stops early (`| head -2`) ends the output, not in an error: the
    command stops there and exits 0 quietly (stdout then points at /dev/null, so the
    interpreter's last flush finds no broken pipe either)."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except BrokenPipeError:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            os.close(devnull)
            return None

    return wrapper  # type: ignore[return-value]


def checkpoint_paths(specs: Iterable[str | os.PathLike[str]]) -> list[Path]:
    """Every `--checkpoint` as a path: a path that exists, else a saved run's name (the
    names `runs list` shows), else a one-line error naming both places looked in."""
    from engine.runs.listing import checkpoint_spec

    return [checkpoint_spec(spec) for spec in specs]


@contextlib.contextmanager
def task_progress(description: str) -> Iterator[Callable[[int, int], None]]:
    """A Rich progress bar on stderr for a long step (an evaluation, a comparison); it
    disappears when done, and draws nothing when stderr is not a terminal."""
    from rich.progress import Progress

    with Progress(*Progress.get_default_columns(), console=stderr, transient=True) as bar:
        task = bar.add_task(description, total=None)

        def update(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        yield update
