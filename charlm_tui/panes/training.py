"""The training pane: the form on the left, the live run on the right.

Everything on the right is driven by engine events: step events (about ten a
second) move the progress bar and numbers, evaluations add val points, and a
sample of what the model writes now arrives every few seconds. Saved runs are
listed under the form; choosing one loads it (model and loss history). What the
pane says (status line, a finished run's line, the runs list) is worded in
training_words.py.
"""

from __future__ import annotations

import math
from typing import ClassVar

from textual import events, on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.widgets import Button, Label, OptionList, ProgressBar, Static
from textual.widgets.option_list import Option

from charlm_tui.messages import EngineCommand, EngineEventHandler
from charlm_tui.panes.lr_find import LRFindControls
from charlm_tui.panes.run_choice import RunChoice
from charlm_tui.panes.training_form import TrainForm
from charlm_tui.panes.training_words import escape, finished, loaded_hint, run_entry, state_line
from charlm_tui.state.run_memory import run_note, same_corpus
from charlm_tui.widgets.metrics import LossPlot, MetricsRow, fmt_duration, fmt_loss, fmt_rate
from engine.worker import protocol as p

RUNNING = ("starting", "training", "paused", "evaluating", "saving")


class TrainingPane(RunChoice, LRFindControls, EngineEventHandler, Horizontal):
    """Form, controls and saved runs on the left; status, metrics, plot and sample on the right."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("f5", "train", "Train"),
        Binding("f6", "pause_resume", "Pause/Resume"),
        Binding("f7", "stop", "Stop"),
        Binding("ctrl+s", "save", "Save"),
        Binding("f8", "evaluate", "Evaluate", show=False),
        Binding("f9", "lr_find", "LR find"),
    ]

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.state = "idle"
        self.corpus = ""
        self.max_steps: int | None = None
        self.run_dir = ""
        self.last_val: float | None = None
        self.loaded_run = ""
        self.runs: list[dict] = []
        self.lr_req = 0  # the learning-rate range test running now (0: none)
        self.lr_points: list[tuple[float, float]] = []
        self.lr_suggestion: float | None = None
        self.has_model = False  # Save needs one
        self._eval_req = 0  # the Evaluate whose progress the bar shows

    def compose(self) -> ComposeResult:
        with Vertical(id="train-side"):
            yield Static(id="train-corpus")
            yield TrainForm(id="train-form")
            with Horizontal(id="train-buttons"):
                yield Button("Train", id="train", variant="primary", compact=True)
                yield Button("Pause", id="pause", compact=True)
                yield Button("Stop", id="stop", variant="error", compact=True)
                yield Button("Save", id="save", compact=True)
            with Horizontal(id="lr-buttons", classes="button-row"):
                yield Button("LR find", id="lr-find", compact=True)
                yield Button("Use lr", id="use-lr", variant="success", compact=True)
            yield Label("saved runs · ^l · ⏎ loads", id="runs-label")
            yield OptionList(id="runs")
        with Vertical(id="train-main"):
            yield Static(id="train-state")
            with Horizontal(id="train-status-row"):
                yield ProgressBar(total=1.0, show_eta=False, id="train-progress")
                yield Static(id="train-eta")
            yield MetricsRow(id="metrics")
            yield LossPlot(id="loss-plot")
            yield Static(id="train-sample")

    def on_mount(self) -> None:
        self.query_one("#use-lr", Button).display = False
        self._set_state("idle")
        self.query_one("#train-sample", Static).update(
            "[dim]Press F5 (or the Train button) to train on the loaded corpus. "
            "Every few seconds the model's own writing appears here.[/]"
        )
        self.query_one("#train-corpus", Static).update("[dim]corpus: loading…[/]")

    # ----- state ---------------------------------------------------------------------

    def _set_state(self, state: str, message: str = "") -> None:
        self.state = state
        self.query_one("#train-state", Static).update(state_line(state, message))
        running = state in RUNNING
        busy = running or state == "lr-find"
        self.query_one("#train", Button).disabled = busy
        self.query_one("#lr-find", Button).disabled = busy
        self.query_one("#pause", Button).disabled = not running
        self.query_one("#stop", Button).disabled = not busy
        self.query_one("#pause", Button).label = "Resume" if state == "paused" else "Pause"
        self.query_one("#save", Button).disabled = not self.has_model
        self.refresh_bindings()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        running = self.state in RUNNING
        if action in ("train", "lr_find"):
            return None if running or self.state == "lr-find" else True
        if action == "stop":
            return True if running or self.state == "lr-find" else None
        if action == "pause_resume":
            return True if running else None
        if action in ("save", "evaluate"):
            return True if self.has_model else None
        return True

    # ----- actions -------------------------------------------------------------------

    def action_train(self) -> None:
        self._start_training()

    def _start_training(self, new_run_confirmed: bool = False) -> None:
        """Train as the form says; over a model, a new run is asked about first (RunChoice)."""
        if self.state in RUNNING or self.state == "lr-find":
            return
        command = self.query_one(TrainForm).command()
        if isinstance(command, str):
            self.query_one(TrainForm).show_error(f"[red]{command}[/]")
            self.notify(command, severity="error", title="Training")
            return
        if self.has_model and not command.resume and not new_run_confirmed:
            self.ask_how_to_start()
            return
        self.query_one(TrainForm).show_error("")
        self.max_steps = command.train.get("max_steps")
        self._set_state("starting", "starting…")
        self.post_message(EngineCommand(command))

    def action_pause_resume(self) -> None:
        if self.state == "paused":
            self.post_message(EngineCommand(p.Resume()))
        elif self.state in RUNNING:
            self.post_message(EngineCommand(p.Pause()))

    def action_stop(self) -> None:
        if self.state == "lr-find" and self.lr_req:
            self.post_message(EngineCommand(p.Cancel(self.lr_req)))
            return
        if self.state in RUNNING:
            self._set_state(self.state, "stopping: final evaluation and save…")
            self.post_message(EngineCommand(p.Stop()))

    def action_save(self) -> None:
        if not self.has_model:
            self.notify("No model to save yet: train one (F5) or load a run.", title="Save")
            return
        self.post_message(EngineCommand(p.SaveCheckpoint(req=p.new_request_id())))

    def action_evaluate(self) -> None:
        self._eval_req = p.new_request_id()
        self.query_one("#train-eta", Static).update("[dim]evaluating on the held-out split…[/]")
        self.post_message(EngineCommand(p.Evaluate(req=self._eval_req)))

    @on(Button.Pressed)
    def _button(self, event: Button.Pressed) -> None:
        event.stop()
        actions = {
            "train": self.action_train,
            "pause": self.action_pause_resume,
            "stop": self.action_stop,
            "save": self.action_save,
            "lr-find": self.action_lr_find,
            "use-lr": self.action_use_lr,
        }
        if event.button.id in actions:
            actions[event.button.id]()

    def on_descendant_focus(self, event: events.DescendantFocus) -> None:
        runs = self.query_one("#runs", OptionList)
        if event.widget is runs and runs.highlighted is None and runs.option_count:
            runs.highlighted = 0  # Enter loads the first run at once

    @on(OptionList.OptionSelected, "#runs")
    def _run_chosen(self, event: OptionList.OptionSelected) -> None:
        event.stop()
        if event.option.id:
            self.load_run(event.option.id)

    def load_run(self, run_dir: str) -> None:
        if self.state in RUNNING:
            self.notify("Stop training before loading a checkpoint.", severity="warning")
            return
        self._set_state(self.state, "loading the checkpoint…")
        self.post_message(EngineCommand(p.LoadCheckpoint(run_dir, req=p.new_request_id())))

    # ----- engine events -------------------------------------------------------------

    def _metrics(self) -> MetricsRow:
        return self.query_one(MetricsRow)

    def _got_CorpusLoaded(self, event: p.CorpusLoaded) -> None:
        self.corpus = event.name
        self.model_on_corpus = False  # a loaded run on it says so when it is loaded again
        stats = event.stats
        self.query_one(TrainForm).show_conditional(list(stats.get("labels") or []))
        self.query_one("#train-corpus", Static).update(
            f"[b]{escape(event.name)}[/] [dim]· {fmt_rate(stats.get('chars', 0))} chars[/]"
            + (" [dim]· one item per line[/]" if stats.get("items") else "")
        )
        self.query_one(TrainForm).set_items(bool(stats.get("items")))

    def _got_TrainStarted(self, event: p.TrainStarted) -> None:
        self.has_model = True
        self.run_dir = self.model_run = event.run_dir
        self.model_on_corpus = True
        self.max_steps = event.train.get("max_steps")
        self._set_state("training", f"{event.model_type} · {event.parameters:,} params")
        self.query_one(LossPlot).reset(event.history, event.metrics)
        self._metrics().clear()
        self._metrics().set(step=f"{event.step:,}")
        self.query_one("#train-progress", ProgressBar).update(progress=0.0)
        self.query_one("#train-eta", Static).update("")
        self.query_one(TrainForm).show_resume(False)
        self.query_one(TrainForm).show_reasons(event.reasons)

    def _got_StepEvent(self, event: p.StepEvent) -> None:
        self.model_step = event.step
        total = f"/{event.max_steps:,}" if event.max_steps else ""
        self._metrics().set(
            step=f"{event.step:,}{total}",
            train=fmt_loss(event.loss),
            speed=fmt_rate(event.chars_per_s),
            lr=f"{event.lr:.2e}",
        )
        self.query_one("#train-progress", ProgressBar).update(progress=event.progress)
        eta = f"ETA {fmt_duration(event.eta_s)}" if event.eta_s is not None else ""
        self.query_one("#train-eta", Static).update(
            f"{eta} [dim]({fmt_duration(event.elapsed_s)} in)[/]"
        )
        self.query_one(LossPlot).add_train(event.step, event.loss)

    def _got_EvalEvent(self, event: p.EvalEvent) -> None:
        self.last_val = event.val_loss
        self._metrics().set(
            val=fmt_loss(event.val_loss) + (" ★" if event.best else ""),
            bpc=f"{event.val_bpc:.3f}",
            ppl=f"{event.val_perplexity:.2f}",
        )
        if event.evals_left is not None:
            self._metrics().set(left=f"{event.evals_left} evals left")
        self.query_one(LossPlot).add_val(event.step, event.val_loss)

    def _got_StatusEvent(self, event: p.StatusEvent) -> None:
        if event.note:  # a change in the running run: said once, the state stays
            self.app.notify(event.message, title="training", timeout=15)
            return
        self._set_state(event.state, event.message)
        if event.state in ("done", "stopped", "failed"):
            self.post_message(EngineCommand(p.ListRuns()))

    def _got_CheckpointEvent(self, event: p.CheckpointEvent) -> None:
        self.query_one("#runs-label", Label).update(
            f"saved runs · ^l [dim]· saved step {event.step:,}[/]"
        )
        self.post_message(EngineCommand(p.ListRuns()))

    def _got_TrainSample(self, event: p.TrainSample) -> None:
        self.query_one("#train-sample", Static).update(
            f"[dim]the model writes now (step {event.step:,}):[/]\n" + escape(event.text)
        )

    def _got_TrainFinished(self, event: p.TrainFinished) -> None:
        result = event.result
        loss = result.get("val_loss")
        if loss is not None and math.isfinite(loss):
            self._metrics().set(
                val=fmt_loss(loss),
                bpc=f"{result.get('val_bpc', float('nan')):.3f}",
                ppl=f"{result.get('val_perplexity', float('nan')):.2f}",
            )
        self._set_state(*finished(result))
        if result.get("stopped_by") != "stop":
            self.query_one("#train-progress", ProgressBar).update(progress=1.0)
        self.query_one("#train-eta", Static).update(
            f"[dim]{result.get('steps', 0):,} steps in {fmt_duration(result.get('elapsed_s'))}[/]"
        )

    def _got_CheckpointLoaded(self, event: p.CheckpointLoaded) -> None:
        self.has_model = True
        self.loaded_run = self.model_run = event.run_dir
        self.model_on_corpus = event.vocab_matches_corpus
        listed = [r.get("step", 0) for r in self.runs if str(r.get("run_dir")) == event.run_dir]
        self.model_step = max([event.step, *listed])  # the run continues from its last save
        self.query_one(LossPlot).reset(event.history, event.metrics)
        self._metrics().clear()
        self._metrics().set(step=f"{event.step:,}")
        last = event.history[-1] if event.history else {}
        if last.get("val_loss") is not None:
            val = float(last["val_loss"])
            self._metrics().set(
                val=fmt_loss(val),
                train=fmt_loss(last.get("train_loss")),
                bpc=f"{val / math.log(2):.3f}",
                ppl=f"{math.exp(min(val, 700)):.2f}",
            )
        form = self.query_one(TrainForm)
        note = run_note(event.run_dir)
        form.fill_from_checkpoint(
            event.model_type, event.model, event.train, note.get("preset", "")
        )
        form.show_resume(event.vocab_matches_corpus)
        room = ""
        if event.vocab_matches_corpus:
            room = self._room_to_continue(form, self.model_step, event.train)
        self._set_state(
            "idle", f"loaded a checkpoint: step {event.step:,}, {event.parameters:,} params"
        )
        run_spec = note.get("corpus", "")
        file_changed = bool(run_spec) and same_corpus(run_spec, self.app.corpus_spec)  # type: ignore[attr-defined]
        hint = loaded_hint(
            event.run_dir, event.vocab_matches_corpus, event.corpus, self.corpus, room, file_changed
        )
        self.query_one("#train-sample", Static).update(f"[dim]{hint}[/]")
        self._loaded_to_continue(event.run_dir, event.vocab_matches_corpus)

    def _got_RunsListed(self, event: p.RunsListed) -> None:
        self.runs = list(event.runs)
        runs = self.query_one("#runs", OptionList)
        kept = runs.highlighted  # a refresh must not leave Enter with nothing to load
        runs.clear_options()
        options = []
        for run in event.runs:
            options.append(Option(run_entry(run), id=str(run["run_dir"])))
        if not options:
            options.append(Option("[dim]no saved runs yet[/]", disabled=True))
        runs.add_options(options)
        if event.runs and (kept is not None or runs.has_focus):
            runs.highlighted = min(kept or 0, len(event.runs) - 1)

    def _got_CheckpointSaved(self, event: p.CheckpointSaved) -> None:
        self.notify(f"Saved {event.path}", title="Checkpoint")
        self.post_message(EngineCommand(p.ListRuns()))

    def _got_EvalProgressEvent(self, event: p.EvalProgressEvent) -> None:
        """The end-of-run evaluation: how much of the held-out split is scored so far."""
        if event.total:
            share = event.done / event.total
            self.query_one("#train-eta", Static).update(
                f"[dim]final evaluation: {event.done:,}/{event.total:,} {event.unit} "
                f"({share:.0%})[/]"
            )

    def _got_EvaluateProgress(self, event: p.EvaluateProgress) -> None:
        if event.req == self._eval_req and self.state not in RUNNING and event.total:
            self.query_one("#train-progress", ProgressBar).update(
                total=1.0, progress=event.done / event.total
            )
            self.query_one("#train-eta", Static).update(
                f"[dim]evaluating: {event.done:,}/{event.total:,} chars[/]"
            )

    def _got_Evaluated(self, event: p.Evaluated) -> None:
        self._eval_req = 0
        self.query_one("#train-progress", ProgressBar).update(total=1.0, progress=1.0)
        self.query_one("#train-eta", Static).update(
            f"[dim]val is F8's score of the current model: the whole held-out split "
            f"({event.chars:,} chars)[/]"
        )
        self._metrics().set(
            val=fmt_loss(event.loss), bpc=f"{event.bpc:.3f}", ppl=f"{event.perplexity:.2f}"
        )
        self.notify(
            f"held-out split: {event.loss:.4f} nats/char, {event.bpc:.3f} bits/char, "
            f"perplexity {event.perplexity:.2f} ({event.chars:,} chars)",
            title="Evaluation",
        )

    def _got_ErrorEvent(self, event: p.ErrorEvent) -> None:
        if event.command == "LRFind" and event.req == self.lr_req:
            self.lr_req = 0
            self.query_one(TrainForm).show_error(f"[red]{escape(event.message)}[/]")
            self._set_state("idle", "range test failed")
            return
        if event.command in ("Train", "Pause", "Resume", "Stop"):
            self.query_one(TrainForm).show_error(f"[red]{escape(event.message)}[/]")
            if event.command == "Train" and self.state == "starting":
                self._set_state("failed")

    def _got_EngineDied(self, event: p.EngineDied) -> None:
        if self.state in RUNNING:
            self._set_state("failed", "the engine died; the last saved checkpoint is in the list")
        else:
            self._set_state(self.state)
