"""The generation pane: a prompt, the knobs, the coloured output and what the model thought.

Keys: the prompt Input takes every printable key while it has focus (Enter
generates and hands focus to the output); the knob keys (t/T, k/K, ...) act
when the output has focus. With "auto" on, a knob change regenerates after a
short pause with the same seed, so the effect of one knob is all that changes.

Writing with the model: on any generated character, `1`..`9` put the model's
alternative of that rank there and continue from it with the current knobs (a
branch); every generation and branch is kept in a `BranchTree`
(charlm_tui/state/branches.py): `[` `]` move between siblings, `u` up to the
parent, `y` back down. `x` writes the text, `X` the whole tree as JSON, to the
working directory (`ctrl+s` writes the text too).

The knob keys are in knob_actions.py, the branch keys in branch_actions.py (mixins).
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
from charlm_tui.panes.branch_actions import BranchActions
from charlm_tui.panes.knob_actions import KnobActions
from charlm_tui.state.branches import Branch, BranchTree
from charlm_tui.widgets.knobs import (
    CONDITION_KEY,
    GUIDANCE_KNOB,
    KnobBar,
    condition_of,
    default_values,
    knob_bindings,
    sampling_params,
)
from charlm_tui.widgets.next_char import NextCharPanel
from charlm_tui.widgets.prompt_input import PROMPT_MAX_CHARS, PromptInput
from charlm_tui.widgets.token_view import TokenView, prob_hex
from engine.worker import protocol as p


class GenerationPane(KnobActions, BranchActions, EngineEventHandler, Vertical):
    """Prompt, knobs, streamed output coloured by probability, next-character panel."""

    class CompareRequested(Message):
        """Open the strategy comparison for a prompt."""

        def __init__(
            self,
            prompt: str,
            length: int,
            seed: int,
            by_label: bool = False,
            condition: str | None = None,
            guidance: float | None = None,
        ) -> None:
            super().__init__()
            self.prompt = prompt
            self.length = length
            self.seed = seed
            self.by_label = by_label  # rows are the model's labels instead of strategies
            self.condition = condition
            self.guidance = guidance

    class BlendRequested(Message):
        """Pick a run to add to the generation blend."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("enter", "generate", "Generate"),
        Binding("r", "regenerate", "New seed"),
        Binding("s", "cycle_strategy", "Strategy", show=False),  # the knob bar shows it
        *knob_bindings(),
        Binding("d", "seed(-1)", "seed down", show=False),
        Binding("D", "seed(1)", "seed up", show=False),
        Binding("a", "toggle_auto", "Auto regenerate", show=False),
        Binding("c", "compare", "Compare"),
        Binding("C", "compare(True)", "Compare labels", show=False),
        Binding(CONDITION_KEY, "cycle_condition", "Label", show=False),
        Binding(GUIDANCE_KNOB.down, "guidance(-1)", "guidance down", show=False),
        Binding(GUIDANCE_KNOB.up, "guidance(1)", "guidance up", show=False),
        Binding("plus", "add_to_blend", "Add model to blend", show=False, key_display="+"),
        Binding("minus", "clear_blend", "Clear blend", show=False, key_display="-"),
        Binding("slash", "focus_prompt", "Prompt", key_display="/", show=False),
        Binding("escape", "escape", "Stop/leave prompt", show=False),
        *[Binding(str(n), f"pick({n})", f"alternative {n}", show=False) for n in range(1, 10)],
        Binding("left_square_bracket", "sibling(-1)", "prev branch", show=False),
        Binding("right_square_bracket", "sibling(1)", "Branch", key_display="[ ]"),
        Binding("u", "parent", "parent branch", show=False),
        Binding("y", "child", "back to child branch", show=False),
        Binding("x", "export('text')", "Export", key_display="x"),  # X: the tree (help)
        Binding("X", "export('tree')", "export tree", show=False),
        Binding("ctrl+s", "export('text')", "save text", show=False),
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
        self.branches = BranchTree()
        self.vocab_size = 0  # of the model (or else the corpus): top-k starts below it
        self._streaming: int | None = None  # the branch the running request writes into
        self.labels: tuple[str, ...] = ()
        self.blend = ""  # the blend's description ("" when the current model generates alone)

    def compose(self) -> ComposeResult:
        yield Static(id="gen-header")
        yield PromptInput(
            placeholder="Prompt: Enter generates (empty: start from a random character; "
            f"at most {PROMPT_MAX_CHARS:,} characters)",
            select_on_focus=False,
            max_length=PROMPT_MAX_CHARS,
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
        self.query_one("#gen-header", Static).display = False
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
        if self.branches.current is not None:
            parts.append(self.branches.where())
        if self.has_model and self.blend:
            parts.append(f"blend: {self.blend}")
        if self.generating:
            parts.append("generating… (Esc stops)")
        elif self.last_summary:
            parts.append(self.last_summary)
        if note:
            parts.append(note)
        self.query_one("#gen-status", Static).update(Content("  ·  ".join(parts)))

    # ----- actions -------------------------------------------------------------------

    def action_generate(self) -> None:
        """A new generation from the prompt: a new root of the branch tree."""
        prompt = self.query_one("#prompt", Input).value
        self._start(self.branches.new_root(prompt, sampling_params(self.values)))

    def _start(self, branch: Branch) -> None:
        """Show `branch` as it is and ask the engine to continue it with the branch's own
        parameters (the knobs', built when the branch was made: one object, checked once)."""
        self._stop_running()
        self.req = p.new_request_id()
        self.generating = True
        self._streaming = branch.id
        self._show_branch(branch, cursor=False)
        condition, guidance = condition_of(self.values)
        command = p.Generate(
            branch.prompt,
            branch.params,
            self.req,
            branch.text,
            condition=condition,
            guidance=guidance,
        )
        self.post_message(EngineCommand(command))
        self._show_status()

    def _stop_running(self) -> None:
        if self.generating and self.req:
            self.post_message(EngineCommand(p.Cancel(self.req)))
            running = self.branches.get(self._streaming)
            if running is not None:
                running.stopped = True
        self.generating = False
        self._streaming = None

    @on(NextCharPanel.Picked)
    def _picked(self, event: NextCharPanel.Picked) -> None:
        event.stop()
        self.action_pick(event.rank)
        self.query_one(TokenView).focus()

    def action_regenerate(self) -> None:
        self.values["seed"] = random.randrange(1, 100_000)
        self._knobs_changed("seed", regenerate=False)
        self._rerun()

    def _rerun(self) -> None:
        """Generate again with the knobs as they are now: a sibling of the current branch
        (same fork, same chosen character), or a new generation from the prompt."""
        current = self.branches.get()
        if current is None or current.parent is None:
            self.action_generate()
            return
        chosen = current.text[current.fork_at]
        self._start(
            self.branches.fork(
                current.parent, current.fork_at, chosen, sampling_params(self.values)
            )
        )

    def action_compare(self, by_label: bool = False) -> None:
        if by_label and not self.labels:
            self.app.bell()
            self._show_status("comparing labels needs a model trained with labels")
            return
        condition, guidance = condition_of(self.values)
        if by_label:  # each label's row is generated with the guidance set on the knob
            guidance = float(self.values.get("guidance", 1.0))
            guidance = None if guidance == 1.0 else guidance
        self.post_message(
            self.CompareRequested(
                self.query_one("#prompt", Input).value,
                min(int(self.values["length"]), 400),
                int(self.values["seed"]),
                by_label,
                None if by_label else condition,
                guidance if by_label or condition else None,
            )
        )

    def action_add_to_blend(self) -> None:
        self.post_message(self.BlendRequested())

    def action_clear_blend(self) -> None:
        if self.blend:
            self.post_message(EngineCommand(p.ClearBlend()))

    def action_focus_prompt(self) -> None:
        self.query_one("#prompt", Input).focus()

    def action_escape(self) -> None:
        if self.generating:
            self._stop_running()
            self._show_status()
        else:
            self.query_one(TokenView).focus()

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
        branch = self.branches.get(self._streaming)
        if branch is not None:
            branch.params = event.params  # with the seed the engine chose, if it chose one
        else:  # a generation this pane did not start (tests feed them): a root of its own
            self._streaming = self.branches.new_root(event.prompt, event.params).id
            self._show_branch(self.branches.branches[self._streaming], cursor=False)
        self.query_one(NextCharPanel).show(-1, None)

    def _got_GenerationChunk(self, event: p.GenerationChunk) -> None:
        if event.req == self.req and self._streaming is not None:
            self.branches.append(
                self._streaming, event.text, event.probs, event.model_probs, event.tops
            )
            if self.branches.current == self._streaming:
                self.query_one(TokenView).append(
                    event.text, event.probs, event.model_probs, event.tops
                )

    def _got_GenerationDone(self, event: p.GenerationDone) -> None:
        if event.req != self.req:
            return
        self.generating = False
        branch = self.branches.get(self._streaming)
        if branch is not None:
            branch.stopped = event.cancelled
        self._streaming = None
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
            self._streaming = None
            self.last_summary = ""
            self._show_status(f"error: {event.message}")

    def _got_TrainStarted(self, event: p.TrainStarted) -> None:
        self.has_model = True
        self.model_info = f"{event.model_type} in training (latest weights)"
        self.set_labels(tuple(event.labels))
        self._show_status()

    def _got_TrainFinished(self, event: p.TrainFinished) -> None:
        result = event.result
        self.model_info = (
            f"{result.get('model', {}).get('model_type', '')} trained "
            f"{result.get('steps', 0)} steps, val {result.get('val_loss', float('nan')):.3f}"
        )
        self._show_status()

    def _got_CorpusLoaded(self, event: p.CorpusLoaded) -> None:
        if not self.has_model:
            self.vocab_size = int(event.stats.get("vocab_size", 0))

    def _got_CheckpointLoaded(self, event: p.CheckpointLoaded) -> None:
        self.vocab_size = event.vocab_size
        self.has_model = True
        self.model_info = f"{event.model_type} checkpoint, step {event.step}"
        self.set_labels(tuple(event.labels))
        self._show_status()

    def _got_BlendChanged(self, event: p.BlendChanged) -> None:
        self.blend = event.description
        header = self.query_one("#gen-header", Static)
        header.display = bool(self.blend)
        header.update(Content.assemble(("blend: ", "bold"), self.blend, ("  (- clears)", "dim")))
        self._show_status()

    def _got_EngineDied(self, event: p.EngineDied) -> None:
        self.has_model = False
        self.generating = False
        self._streaming = None
        self._show_status()
