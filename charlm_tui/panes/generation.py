"""The generation pane: a prompt, the knobs, the coloured output and what the model thought.

Keys: the prompt Input takes every printable key while it has focus (Enter
generates and hands focus to the output); the knob keys (t/T, k/K, ...) act
when the output has focus. With "auto" on, a knob change regenerates after a
short pause with the same seed, so the effect of one knob is all that changes.
"""

from __future__ import annotations

import random
from typing import ClassVar

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.content import Content
from textual.message import Message
from textual.timer import Timer
from textual.widgets import Input, Static

from charlm_tui.messages import EngineCommand, EngineEventHandler
from charlm_tui.widgets.knobs import KNOB_BY_NAME, STRATEGIES, KnobBar, default_values, to_params
from charlm_tui.widgets.next_char import NextCharPanel
from charlm_tui.widgets.token_view import TokenView, prob_hex
from engine.worker import protocol as p

AUTO_REGENERATE_S = 0.3


def _knob_bindings() -> list[Binding]:
    """Two keys per knob; only temperature is in the footer (the knob bar shows the rest)."""
    bindings = []
    for knob in KNOB_BY_NAME.values():
        temp = knob.name == "temperature"
        bindings.append(
            Binding(
                knob.down,
                f"knob('{knob.name}', -1)",
                "temp" if temp else f"{knob.label} down",
                show=temp,
                key_display=f"{knob.down}/{knob.up}" if temp else None,
            )
        )
        bindings.append(Binding(knob.up, f"knob('{knob.name}', 1)", f"{knob.label} up", show=False))
    return bindings


class GenerationPane(EngineEventHandler, Vertical):
    """Prompt, knobs, streamed output coloured by probability, next-character panel."""

    class CompareRequested(Message):
        """Open the strategy comparison for a prompt."""

        def __init__(self, prompt: str, length: int, seed: int) -> None:
            super().__init__()
            self.prompt = prompt
            self.length = length
            self.seed = seed

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("enter", "generate", "Generate"),
        Binding("r", "regenerate", "New seed"),
        Binding("s", "cycle_strategy", "Strategy"),
        *_knob_bindings(),
        Binding("d", "seed(-1)", "seed down", show=False),
        Binding("D", "seed(1)", "seed up", show=False),
        Binding("a", "toggle_auto", "Auto regenerate", show=False),
        Binding("c", "compare", "Compare"),
        Binding("slash", "focus_prompt", "Prompt", key_display="/"),
        Binding("escape", "escape", "Stop/leave prompt", show=False),
    ]

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.values = default_values()
        self.req = 0
        self.generating = False
        self.has_model = False
        self.model_info = "no model yet"
        self.last_summary = ""
        self._dropped = ""
        self._regen: Timer | None = None

    def compose(self) -> ComposeResult:
        yield Input(
            placeholder="Prompt: Enter generates (empty: start from a random character)",
            select_on_focus=False,
            id="prompt",
        )
        yield KnobBar(id="knobs")
        with Horizontal(id="gen-body"):
            yield TokenView(id="output")
            with Vertical(id="gen-side"):
                yield NextCharPanel(id="next-char")
                yield Static(self._legend(), id="legend")
        yield Static(id="gen-status")

    def on_mount(self) -> None:
        self._show_status()

    @staticmethod
    def _legend() -> Content:
        cells = [("colour = model p: ", "dim")]
        for prob, label in ((0.001, "0.1%"), (0.03, "3%"), (0.3, "30%"), (0.95, "95%")):
            cells.append(("■", prob_hex(prob)))
            cells.append((f"{label} ", "dim"))
        return Content.assemble(*cells)

    # ----- status line ---------------------------------------------------------------

    def _show_status(self, note: str = "") -> None:
        model = (
            self.model_info
            if self.has_model
            else ("no model yet: train one (F3) or load a checkpoint")
        )
        parts = [f"model: {model}"]
        if self.generating:
            parts.append("generating… (Esc stops)")
        elif self.last_summary:
            parts.append(self.last_summary)
        if note:
            parts.append(note)
        self.query_one("#gen-status", Static).update(Content("  ·  ".join(parts)))

    # ----- actions -------------------------------------------------------------------

    def action_generate(self) -> None:
        prompt = self.query_one("#prompt", Input).value
        self.req = p.new_request_id()
        self.generating = True
        self.post_message(EngineCommand(p.Generate(prompt, to_params(self.values), req=self.req)))
        self._show_status()

    def action_regenerate(self) -> None:
        self.values["seed"] = random.randrange(1, 100_000)
        self._knobs_changed("seed", regenerate=False)
        self.action_generate()

    def action_cycle_strategy(self) -> None:
        index = STRATEGIES.index(str(self.values["strategy"]))
        self.values["strategy"] = STRATEGIES[(index + 1) % len(STRATEGIES)]
        self._knobs_changed("strategy")

    def action_knob(self, name: str, direction: int) -> None:
        knob = KNOB_BY_NAME[name]
        value = knob.step(self.values[name], direction)
        if value == self.values[name]:
            self.app.bell()
            return
        self.values[name] = value
        self._knobs_changed(name)

    def action_seed(self, delta: int) -> None:
        self.values["seed"] = max(0, int(self.values["seed"]) + delta)
        self._knobs_changed("seed")

    def action_toggle_auto(self) -> None:
        bar = self.query_one(KnobBar)
        bar.auto = not bar.auto
        bar.changed = "auto"

    def action_compare(self) -> None:
        self.post_message(
            self.CompareRequested(
                self.query_one("#prompt", Input).value,
                min(int(self.values["length"]), 400),
                int(self.values["seed"]),
            )
        )

    def action_focus_prompt(self) -> None:
        self.query_one("#prompt", Input).focus()

    def action_escape(self) -> None:
        if self.generating:
            self.post_message(EngineCommand(p.Cancel(self.req)))
        else:
            self.query_one(TokenView).focus()

    def _knobs_changed(self, name: str, regenerate: bool = True) -> None:
        bar = self.query_one(KnobBar)
        bar.changed = name
        bar.values = dict(self.values)
        if regenerate and bar.auto and self.has_model and self.req:
            if self._regen is not None:
                self._regen.stop()
            self._regen = self.set_timer(AUTO_REGENERATE_S, self.action_generate)

    # ----- widgets -------------------------------------------------------------------

    @on(Input.Submitted, "#prompt")
    def _prompt_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.action_generate()
        self.query_one(TokenView).focus()

    @on(TokenView.CursorMoved)
    def _cursor_moved(self, event: TokenView.CursorMoved) -> None:
        view = self.query_one(TokenView)
        self.query_one(NextCharPanel).show(event.index, view.entry(event.index))

    # ----- engine events -------------------------------------------------------------

    def _got_GenerationStarted(self, event: p.GenerationStarted) -> None:
        if event.req != self.req:
            return
        self._dropped = event.dropped
        self.query_one(TokenView).reset(event.prompt)
        self.query_one(NextCharPanel).show(-1, None)

    def _got_GenerationChunk(self, event: p.GenerationChunk) -> None:
        if event.req == self.req:
            self.query_one(TokenView).append(event.text, event.probs, event.model_probs, event.tops)

    def _got_GenerationDone(self, event: p.GenerationDone) -> None:
        if event.req != self.req:
            return
        self.generating = False
        summary = f"{event.chars} chars in {event.seconds:.2f} s ({event.chars_per_s:,.0f}/s)"
        if event.cancelled:
            summary += " (stopped)"
        if self._dropped:
            summary += f" · left out of the prompt (not in the vocabulary): {self._dropped!r}"
        if event.beams:
            scores = ", ".join(f"{b['score']:.3f}" for b in event.beams)
            summary += f" · beam scores {scores}"
        self.last_summary = summary
        self._show_status()

    def _got_ErrorEvent(self, event: p.ErrorEvent) -> None:
        if event.req == self.req and self.req:
            self.generating = False
            self.last_summary = ""
            self._show_status(f"error: {event.message}")

    def _got_TrainStarted(self, event: p.TrainStarted) -> None:
        self.has_model = True
        self.model_info = f"{event.model_type} in training (latest weights)"
        self._show_status()

    def _got_TrainFinished(self, event: p.TrainFinished) -> None:
        result = event.result
        self.model_info = (
            f"{result.get('model', {}).get('model_type', '')} trained "
            f"{result.get('steps', 0)} steps, val {result.get('val_loss', float('nan')):.3f}"
        )
        self._show_status()

    def _got_CheckpointLoaded(self, event: p.CheckpointLoaded) -> None:
        self.has_model = True
        self.model_info = f"{event.model_type} checkpoint, step {event.step}"
        self._show_status()

    def _got_EngineDied(self, event: p.EngineDied) -> None:
        self.has_model = False
        self.generating = False
        self._show_status()
