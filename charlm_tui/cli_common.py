"""What every subcommand shares: JSON on stdout, people on stderr, errors as one line.

The contract (README, "Headless CLI"): with `--json`, stdout carries exactly one JSON object
(or one per line for streams) and everything for humans goes to stderr; bad
input exits with code 2 and one line on stderr, never a traceback.
"""

from __future__ import annotations

import contextlib
import functools
import json
import math
import sys
from collections.abc import Callable, Iterator
from typing import Any, NoReturn, TypeVar

import typer
from rich.console import Console

F = TypeVar("F", bound=Callable[..., Any])

stderr = Console(stderr=True, highlight=False)
# Data a user asked for in human form (`corpus list`, `corpus info`): it can be piped.
stdout = Console(highlight=False)


def fail(message: str, code: int = 2) -> NoReturn:
    """Print one line to stderr and exit (2: the user's input was bad)."""
    from engine.errors import first_line

    sys.stderr.write(f"charlm-tui: error: {first_line(message, 'error')}\n")
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
            fail(str(exc))
        except KeyboardInterrupt:
            sys.stderr.write("charlm-tui: interrupted\n")
            raise typer.Exit(130) from None

    return wrapper  # type: ignore[return-value]


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
