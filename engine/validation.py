"""One home for checking values that come from users and files: types, ranges, finiteness.

Settings reach the engine from flags (`--set lr=1e999`), from the TUI's knobs
and from `state.json` files that anyone may have edited. Every check says what
was wrong in one line (a `ConfigError`, which the CLI prints without a
traceback), so the training config, the sampling parameters, the model configs
and the checkpoint schema all phrase the same mistake the same way.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable

from engine.errors import ConfigError


def is_int(value: object) -> bool:
    """A whole number, and not a bool (True is an int in Python, never a size here)."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def is_number(value: object) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _bounds(low: float | None, high: float | None, low_open: bool, high_open: bool) -> str:
    left = "(" if low_open else "["
    right = ")" if high_open else "]"
    lo = "-inf" if low is None else f"{low:g}"
    hi = "inf" if high is None else f"{high:g}"
    return f"in {left}{lo}, {hi}{right}"


def _in_range(
    value: float, low: float | None, high: float | None, low_open: bool, high_open: bool
) -> bool:
    if low is not None and (value < low or (low_open and value == low)):
        return False
    return not (high is not None and (value > high or (high_open and value == high)))


def check_int(name: str, value: object, low: int | None = None, high: int | None = None) -> int:
    """`value` as an int in [low, high], or a ConfigError naming `name` and the bounds."""
    if not is_int(value):
        raise ConfigError(f"{name} must be a whole number, got {value!r}")
    if not _in_range(int(value), low, high, False, False):  # type: ignore[arg-type]
        raise ConfigError(
            f"{name} must be a whole number {_bounds(low, high, False, False)}, got {value}"
        )
    return int(value)  # type: ignore[arg-type]


def check_number(
    name: str,
    value: object,
    low: float | None = None,
    high: float | None = None,
    *,
    low_open: bool = False,
    high_open: bool = False,
) -> float:
    """`value` as a finite float within the bounds (open ends exclude the bound itself)."""
    if not is_number(value):
        raise ConfigError(f"{name} must be a number, got {value!r}")
    number = float(value)  # type: ignore[arg-type]
    if not math.isfinite(number):
        raise ConfigError(f"{name} must be finite, got {value}")
    if not _in_range(number, low, high, low_open, high_open):
        raise ConfigError(f"{name} must be {_bounds(low, high, low_open, high_open)}, got {value}")
    return number


def check_bool(name: str, value: object) -> bool:
    if not isinstance(value, bool):
        raise ConfigError(f"{name} must be true or false, got {value!r}")
    return value


def check_choice(name: str, value: object, choices: Iterable[str]) -> str:
    options = tuple(choices)
    if not isinstance(value, str) or value not in options:
        raise ConfigError(f"{name} must be one of {', '.join(options)}, got {value!r}")
    return value


def check_str(name: str, value: object, max_length: int = 4096) -> str:
    if not isinstance(value, str):
        raise ConfigError(f"{name} must be text, got {type(value).__name__}")
    if len(value) > max_length:
        raise ConfigError(f"{name} is longer than {max_length:,} characters")
    return value


def check_list(name: str, value: object, max_length: int) -> list:
    if not isinstance(value, list):
        raise ConfigError(f"{name} must be a list, got {type(value).__name__}")
    if len(value) > max_length:
        raise ConfigError(f"{name} has more than {max_length:,} entries")
    return value


def check_dict(name: str, value: object) -> dict:
    if not isinstance(value, dict):
        raise ConfigError(f"{name} must be an object, got {type(value).__name__}")
    return value
