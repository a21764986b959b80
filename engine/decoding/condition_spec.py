"""How a condition is written and read back: `name` or `a=0.7,b=0.3`, and its one-line description.

Torch-free on purpose: the CLI checks a `--condition` before loading a model,
and the TUI's knob bar describes the label it will ask for with the same words
the engine's headers use (engine.decoding.conditioned applies the condition).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from engine.errors import ConfigError


def parse_condition(spec: str, labels: Sequence[str]) -> dict[str, float]:
    """`name` or `name=w,name=w` as {label: weight} normalised to sum 1; bad input is a ConfigError.

    `none` names the no-label condition (so `none` alone is an unconditional sample).
    """
    known = list(labels)
    if not known:
        raise ConfigError(
            "this checkpoint was trained without labels: --condition needs a model "
            "trained with --conditional"
        )
    spec = spec.strip()
    if not spec:
        raise ConfigError("--condition is empty: name a label (" + ", ".join(known) + ")")
    weights: dict[str, float] = {}
    for part in spec.split(","):
        name, sep, raw = part.partition("=")
        name = name.strip()
        if name not in known and name != "none":
            raise ConfigError(f"unknown label '{name}': the model knows {', '.join(known)}")
        if name in weights:
            raise ConfigError(f"label '{name}' is named twice in --condition")
        if sep:
            try:
                weight = float(raw)
            except ValueError:
                raise ConfigError(f"the weight of '{name}' is not a number: {raw!r}") from None
        else:
            if len(spec.split(",")) > 1:
                raise ConfigError(f"give every label of a blend a weight ({name}=...)")
            weight = 1.0
        if not math.isfinite(weight) or weight < 0:
            raise ConfigError(f"the weight of '{name}' must be a finite number >= 0, got {raw}")
        weights[name] = weight
    total = sum(weights.values())
    if total <= 0:
        raise ConfigError("--condition weights are all zero")
    return {name: w / total for name, w in weights.items()}


def describe_condition(weights: dict[str, float] | None) -> str:
    """`shakespeare`, `shakespeare 70% + code 30%`, or `none`: for headers and knob bars."""
    if not weights:
        return "none"
    if len(weights) == 1:
        return next(iter(weights))
    return " + ".join(f"{name} {weight:.0%}" for name, weight in weights.items())
