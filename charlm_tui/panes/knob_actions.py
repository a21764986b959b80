"""The generation pane's knob keys: step a knob, cycle the strategy and the label, move
the seed, toggle auto regeneration; and the knob values a session starts from.

A mixin of charlm_tui.panes.generation.GenerationPane (it uses the pane's knob
values, knob bar and status line). The knobs are one concern of the pane, as the
branch tree (branch_actions.py) is another; the pane keeps the prompt, the
requests it sends and the engine's generation events.
"""

from __future__ import annotations

from typing import Any

from textual.timer import Timer
from textual.widgets import Input

from charlm_tui.widgets.knobs import (
    GUIDANCE_KNOB,
    KNOB_BY_NAME,
    KnobBar,
    condition_cycle,
    default_values,
)
from engine.decoding.params import SEED_LIMIT, STRATEGIES

# With "auto" on, a knob change regenerates after this pause (a run of key presses: once).
AUTO_REGENERATE_S = 0.3


class KnobActions:
    """Knob keys (t/T, k/K, ..., s, d/D, a, n, g/G), the model's labels, the saved knobs."""

    # Provided by GenerationPane.
    values: dict
    vocab_size: int
    labels: tuple[str, ...]
    has_model: bool
    req: int
    _regen: Timer | None
    app: Any
    query_one: Any
    set_timer: Any
    _rerun: Any

    def restore(self, knobs: dict, prompt: str) -> None:
        """Knob values and the prompt saved by the last session (wrong types are skipped).

        A value off its knob's ladder, or a seed outside [0, SEED_LIMIT] (an Infinity
        too: JSON allows it), is skipped as well: the knobs must always make a valid
        SamplingParams (knobs.sampling_params), which the pane builds without a check.
        """
        for name, default in default_values().items():
            value = knobs.get(name)
            if name == "strategy":
                if value in STRATEGIES:
                    self.values[name] = value
            elif isinstance(value, (int, float)) and not isinstance(value, bool):
                knob = KNOB_BY_NAME.get(name)
                if knob is not None:
                    valid = value in knob.ladder
                else:
                    valid = value >= 0 and (name != "seed" or value <= SEED_LIMIT)
                if valid:
                    self.values[name] = type(default)(value)
        self.query_one(KnobBar).values = dict(self.values)
        self.query_one("#prompt", Input).value = prompt

    def set_labels(self, labels: tuple[str, ...]) -> None:
        """The current model's labels: the condition knobs show only when there are some."""
        self.labels = labels
        if str(self.values.get("condition") or "") not in condition_cycle(labels):
            self.values["condition"] = ""
        bar = self.query_one(KnobBar)
        bar.labels = labels
        bar.values = dict(self.values)

    def action_cycle_strategy(self) -> None:
        index = STRATEGIES.index(str(self.values["strategy"]))
        self.values["strategy"] = STRATEGIES[(index + 1) % len(STRATEGIES)]
        self._knobs_changed("strategy")

    def action_knob(self, name: str, direction: int) -> None:
        knob = KNOB_BY_NAME[name]
        value = knob.step(self.values[name], direction, self.vocab_size)
        if value == self.values[name]:
            self.app.bell()
            return
        self.values[name] = value
        self._knobs_changed(name)

    def action_seed(self, delta: int) -> None:
        self.values["seed"] = min(SEED_LIMIT, max(0, int(self.values["seed"]) + delta))
        self._knobs_changed("seed")

    def action_toggle_auto(self) -> None:
        bar = self.query_one(KnobBar)
        bar.auto = not bar.auto
        bar.changed = "auto"

    def action_cycle_condition(self) -> None:
        """None, each label, an even mix of all: the knob bar shows which."""
        if not self.labels:
            self.app.bell()
            return
        steps = condition_cycle(self.labels)
        current = str(self.values.get("condition") or "")
        index = steps.index(current) if current in steps else 0
        self.values["condition"] = steps[(index + 1) % len(steps)]
        self._knobs_changed("condition")

    def action_guidance(self, direction: int) -> None:
        if not self.labels:
            self.app.bell()
            return
        value = GUIDANCE_KNOB.step(float(self.values["guidance"]), direction)
        if value == self.values["guidance"]:
            self.app.bell()
            return
        self.values["guidance"] = value
        self._knobs_changed("guidance", regenerate=bool(self.values.get("condition")))

    def _knobs_changed(self, name: str, regenerate: bool = True) -> None:
        bar = self.query_one(KnobBar)
        bar.changed = name
        bar.values = dict(self.values)
        if regenerate and bar.auto and self.has_model and self.req:
            if self._regen is not None:
                self._regen.stop()
            self._regen = self.set_timer(AUTO_REGENERATE_S, self._rerun)
