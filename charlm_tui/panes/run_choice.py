"""F5 over a model asks: continue its run, start a new one, or cancel (a mixin of TrainingPane).

The current model is the run trained last or the run loaded last. Continuing a run
that was loaded on its own corpus is the form's "continue this run"; continuing the
run just trained here loads it first (the engine continues loaded runs), then starts.
A run already at its max steps gets its max steps raised by as many again when it is
loaded, so that F5 has steps to take; the pane says so. Continuing the run trained here
keeps what the form says (a time limit typed before F5): the load fills the form from
the checkpoint, and the typed fields are put back over it before the run starts.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from textual.message import Message
from textual.widgets import Checkbox, Input

from charlm_tui.messages import CONTINUE, NEW
from charlm_tui.panes.training_form import TrainForm


class StartChoiceAsked(Message):
    """The pane needs a continue / new run / cancel answer: the app shows the screen.

    Panes never push screens themselves (the layering keeps panes and screens apart).
    """

    def __init__(
        self,
        question: str,
        continue_label: str | None,
        new_label: str,
        answered: Callable[[str | None], None],
    ) -> None:
        super().__init__()
        self.question = question
        self.continue_label = continue_label
        self.new_label = new_label
        self.answered = answered


def _same_run(a: str, b: str) -> bool:
    return bool(a and b) and Path(a).resolve() == Path(b).resolve()


class RunChoice:
    """Asks how to start when F5 would otherwise start over a model."""

    model_run: str = ""  # the run of the current model ("" when none)
    model_step: int = 0
    model_on_corpus: bool = False  # the current model's run can continue on the loaded corpus
    _continue_after_load: str = ""  # a run being loaded to be continued at once
    _typed_before_load: dict | None = None  # the form's fields when "continue" was chosen

    def ask_how_to_start(self) -> None:
        run = Path(self.model_run).name if self.model_run else ""
        where = f" on {self.corpus}" if self.corpus else ""  # type: ignore[attr-defined]
        can_continue = bool(self.model_run) and self.model_on_corpus
        if can_continue:
            question = (
                f"There is a model: run {run} at step {self.model_step:,}. Continue that run "
                f"(same settings, from its last save), or start a new run from step 0{where}?"
            )
        else:
            question = (
                "The model here was trained on other text (another corpus, or this file "
                "before it changed), so it cannot continue on this one. Start a new run from "
                f"step 0{where}? (The old run stays in the list.)"
            )
        self.post_message(  # type: ignore[attr-defined]
            StartChoiceAsked(
                question,
                "Continue the run" if can_continue else None,
                "New run from step 0",
                self._chosen,
            )
        )

    def _chosen(self, answer: str | None) -> None:
        form = self.query_one(TrainForm)  # type: ignore[attr-defined]
        resume = form.query_one("#resume", Checkbox)
        if answer == NEW:
            resume.value = False
            self._start_training(new_run_confirmed=True)  # type: ignore[attr-defined]
        elif answer == CONTINUE:
            if resume.display:  # a loaded run on its corpus: the form continues it
                resume.value = True
                self._start_training()  # type: ignore[attr-defined]
            else:  # the run trained here: load it, then continue (see _loaded_to_continue)
                self._continue_after_load = self.model_run
                self._typed_before_load = form.values()
                self.load_run(self.model_run)  # type: ignore[attr-defined]
        else:
            self._set_state(self.state, "cancelled: nothing started")  # type: ignore[attr-defined]

    def _loaded_to_continue(self, run_dir: str, matches: bool) -> None:
        """After a load: continue it now if that is what the load was for."""
        pending, self._continue_after_load = self._continue_after_load, ""
        typed, self._typed_before_load = self._typed_before_load, None
        if pending and _same_run(pending, run_dir) and matches:
            form = self.query_one(TrainForm)  # type: ignore[attr-defined]
            if typed is not None:
                form.restore_fields(typed)
                self._room_to_continue(form, self.model_step, {"max_steps": form.max_steps()})
            self._start_training()  # type: ignore[attr-defined]

    def _room_to_continue(self, form: TrainForm, step: int, train: dict) -> str:
        """Raise max steps above a loaded run's step (it would have nothing to do); says how."""
        max_steps = train.get("max_steps")
        if not isinstance(max_steps, int) or max_steps <= 0 or step < max_steps:
            return ""
        raised = step + max_steps
        form.query_one("#f-max_steps", Input).value = str(raised)
        return f" Max steps was {max_steps:,} (reached): raised to {raised:,} to continue."
