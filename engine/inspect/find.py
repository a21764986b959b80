"""Find a unit: correlate every unit with "this character lies inside a regex match".

The indicator of a text is 1 at every character covered by a (non-empty)
match of the pattern and 0 elsewhere; the score of a unit is the Pearson
correlation r of its activations with that indicator over the text. A unit
that never varies has no correlation and scores 0. A pattern that is not a
valid regular expression, or that covers no character or every character (no
variance: r is undefined), is a user error.

Patterns are Python regular expressions; flags go inline (`(?m)^.{0,10}` marks
the first ten characters of every line, `(?s)` lets `.` cross newlines).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from engine.errors import UserError
from engine.inspect.activations import Activations


def match_indicator(text: str, pattern: str) -> np.ndarray:
    """(len(text),) bool: True where a character lies inside a match of `pattern`."""
    try:
        compiled = re.compile(pattern)
    except re.error as exc:
        raise UserError(f"invalid regular expression {pattern!r}: {exc}") from None
    inside = np.zeros(len(text), dtype=bool)
    for match in compiled.finditer(text):
        inside[match.start() : match.end()] = True
    covered = int(inside.sum())
    if covered == 0:
        raise UserError(f"the pattern {pattern!r} matches no character of the text")
    if covered == len(text):
        raise UserError(
            f"the pattern {pattern!r} matches every character of the text (nothing to contrast)"
        )
    return inside


def pearson_with(values: np.ndarray, target: np.ndarray) -> np.ndarray:
    """(units,) Pearson r of each column of `values` (characters, units) with `target`.

    Computed in float64; a column with zero variance gets r = 0.
    """
    a = np.asarray(values, dtype=np.float64)
    y = np.asarray(target, dtype=np.float64)
    if a.ndim != 2 or y.shape != (a.shape[0],):
        raise ValueError(f"shapes do not line up: values {a.shape}, target {y.shape}")
    a = a - a.mean(axis=0)
    y = y - y.mean()
    y_norm = np.sqrt((y * y).sum())
    a_norm = np.sqrt((a * a).sum(axis=0))
    denom = a_norm * y_norm
    numerator = a.T @ y
    r = np.zeros(a.shape[1], dtype=np.float64)
    ok = denom > 1e-12 * max(1.0, float(denom.max(initial=0.0)))
    r[ok] = numerator[ok] / denom[ok]
    return np.clip(r, -1.0, 1.0)


@dataclass
class UnitMatch:
    label: str
    r: float

    def as_dict(self) -> dict:
        return {"unit": self.label, "r": self.r}


@dataclass
class FindResult:
    """Top units for a pattern, strongest |r| first, and how much of the text it covers."""

    pattern: str
    covered: int
    chars: int
    top: list[UnitMatch]

    def as_dict(self) -> dict:
        return {
            "pattern": self.pattern,
            "covered_chars": self.covered,
            "chars": self.chars,
            "top": [m.as_dict() for m in self.top],
        }


def find_units(activations: Activations, pattern: str, top: int = 10) -> FindResult:
    """The `top` units whose activation best tracks the pattern's indicator (by |r|)."""
    if top < 1:
        raise UserError(f"--top must be at least 1, got {top}")
    inside = match_indicator(activations.text, pattern)
    r = pearson_with(activations.matrix(), inside)
    labels = activations.labels()
    order = np.argsort(-np.abs(r), kind="stable")[:top]
    return FindResult(
        pattern=pattern,
        covered=int(inside.sum()),
        chars=len(activations.text),
        top=[UnitMatch(labels[i], float(r[i])) for i in order],
    )
