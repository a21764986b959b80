"""What `charlm-tui train` says on stderr: progress while it runs, the result at the end.

Split from cli_train.py, which sets up and runs the training: this module only
words what the trainer reports (engine/training/events.py), as a live Rich bar
in a terminal or a line per evaluation otherwise, then the run's final figures.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from charlm_tui.cli_common import stderr

if TYPE_CHECKING:
    from engine.training.events import TrainResult


class TrainDisplay:
    """Progress on stderr: a live Rich bar in a terminal, a line per evaluation otherwise."""

    def __init__(self, quiet: bool, reasons: list[str] | None = None) -> None:
        self.quiet = quiet
        self.progress = None
        self.task = None
        self.val = ""
        self.said = ""
        # The resolution's reasons (engine/training/request.py), said with the run's first
        # event: once the set-up has succeeded, one line each, as the app shows them.
        self.reasons = list(reasons or [])

    def say_reasons(self) -> None:
        reasons, self.reasons = self.reasons, []
        if not self.quiet:
            for reason in reasons:
                stderr.print(reason, markup=False, soft_wrap=True)

    def __enter__(self) -> TrainDisplay:
        if not self.quiet and stderr.is_terminal:
            from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

            self.progress = Progress(
                TextColumn("[bold]train"),
                BarColumn(),
                TextColumn("{task.percentage:>3.0f}%"),
                TimeRemainingColumn(),
                TextColumn("{task.fields[info]}"),
                console=stderr,
                transient=True,
            )
            self.progress.start()
            self.task = self.progress.add_task("train", total=1.0, info="starting")
        return self

    def __call__(self, event: object) -> None:
        self.say_reasons()
        kind = getattr(event, "kind", "")
        if kind == "step" and self.progress is not None:
            info = (
                f"step {event.step}  loss {event.loss:.3f}  "
                f"{event.chars_per_s / 1000:.1f}k chars/s{self.val}"
            )
            self.progress.update(self.task, completed=event.progress, info=info)
        elif kind == "eval":
            self.val = f"  val {event.val_loss:.3f}"
            if self.progress is None and not self.quiet:
                train = f"train {event.train_loss:.4f}  " if event.train_loss is not None else ""
                left = getattr(event, "evals_left", None)
                patience = "" if left is None else f", {left} evaluations left"
                stderr.print(
                    f"step {event.step:>6}  {train}val {event.val_loss:.4f} "
                    f"({event.val_bpc:.3f} bpc, {event.val_chars} chars{patience})"
                )
        elif kind == "status" and event.message and not self.quiet:
            # The precision label comes with every "training" status (the TUI shows it
            # there); here once is enough.
            precision = event.state == "training" and not event.note
            line = f"precision {event.message}" if precision else event.message
            if line != self.said:
                stderr.print(line)
                self.said = line

    def __exit__(self, *exc: object) -> bool:
        if self.progress is not None:
            self.progress.stop()
        return False


def print_result(result: TrainResult, out: Path) -> None:
    """The finished run in words (`--json` prints `result.as_dict()` instead); `out` is
    the run directory, where the last and best checkpoints are."""
    stderr.print(
        f"val_loss {result.val_loss:.4f} nats/char ({result.val_bpc:.3f} bpc, "
        f"perplexity {result.val_perplexity:.2f}) on {result.val_chars:,} chars"
        + (
            f" of {result.val_split_chars:,} (time budget: partial evaluation); "
            if result.partial_eval
            else " (the whole held-out split); "
        )
        + f"{result.steps} steps in {result.elapsed_s:.1f}s, "
        f"{result.chars_per_s:,.0f} chars/s in {result.precision} ({result.precision_reason}); "
        f"checkpoint {result.checkpoint}"
    )
    if result.tokens == "word" and result.val_loss_per_token is not None:
        stderr.print(
            f"word tokens ({result.vocab_size:,} in the vocabulary): "
            f"{result.val_loss_per_token:.4f} nats/token on {result.val_tokens:,} tokens; "
            "the losses above are per character of text"
        )
    if result.stop_note:  # early_stop (patience) or overfitting (the default stop)
        stderr.print(f"stopped at step {result.steps:,}: {result.stop_note}", markup=False)
    if result.reported == "best":
        stderr.print(
            f"the result is the best model (best at step {result.best_step:,}, "
            f"{result.best_checkpoint or out / 'best'}): val_loss above is its figure, "
            "and generate / eval load it; the last weights (step "
            f"{result.steps:,}, val estimate {result.last_val_loss:.4f}) stay in "
            f"{out / 'last'} for --resume",
            markup=False,
        )
