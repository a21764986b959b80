"""The training pane's learning-rate range test: F9 sweeps, the plot shows the curve,
"Use lr" puts the suggestion into the form. Nothing is trained for keeps or saved."""

from __future__ import annotations

from textual.widgets import Button, Static

from charlm_tui.messages import EngineCommand
from charlm_tui.panes.training_form import TrainForm
from charlm_tui.widgets.metrics import LossPlot, fmt_loss
from engine.worker import protocol as p


class LRFindControls:
    """Mixin of TrainingPane (which has `state`, `_set_state`, `_metrics` and the widgets)."""

    lr_req: int = 0  # the range test running now (0: none)
    lr_points: list[tuple[float, float]]
    lr_suggestion: float | None = None

    def action_lr_find(self) -> None:
        """A learning-rate range test of the form's model on the loaded corpus (nothing saved)."""
        if not self.check_action("lr_find", ()):  # type: ignore[attr-defined]
            return  # training or a range test is running
        command = self.query_one(TrainForm).command()
        if isinstance(command, str):
            self.query_one(TrainForm).show_error(f"[red]{command}[/]")
            return
        self.query_one(TrainForm).show_error("")
        self.lr_req = p.new_request_id()
        self.lr_points = []
        self.lr_suggestion = None
        self.query_one("#use-lr", Button).display = False
        self.query_one(LossPlot).show_lr_curve([], [])
        self._set_state("lr-find", "sweeping the learning rate up from 1e-5 (F7 stops)")
        self.post_message(
            EngineCommand(
                p.LRFind(
                    command.model_type,
                    command.preset,
                    model=command.model,
                    train=command.train,
                    req=self.lr_req,
                )
            )
        )

    def action_use_lr(self) -> None:
        if self.lr_suggestion is not None:
            self.query_one(TrainForm).set_lr(self.lr_suggestion)
            self.notify(f"learning rate set to {self.lr_suggestion:.3g}", title="LR find")

    def _got_LRFindPoint(self, event: p.LRFindPoint) -> None:
        if event.req != self.lr_req:
            return
        self.lr_points.append((event.lr, event.smoothed))
        lrs, smoothed = zip(*self.lr_points, strict=True)
        self.query_one(LossPlot).show_lr_curve(list(lrs), list(smoothed))
        self._metrics().set(lr=f"{event.lr:.2e}", train=fmt_loss(event.loss))  # type: ignore[attr-defined]

    def _got_LRFindDone(self, event: p.LRFindDone) -> None:
        if event.req != self.lr_req:
            return
        self.lr_req = 0
        result = event.result
        self.lr_suggestion = result.get("suggestion")
        self.query_one(LossPlot).show_lr_curve(
            result.get("lrs", []), result.get("smoothed", []), self.lr_suggestion
        )
        if self.lr_suggestion is None:
            self._set_state("idle", "range test: no suggestion (the loss never settled)")
            return
        self.query_one("#use-lr", Button).display = True
        self._set_state(
            "idle",
            f"range test {result.get('stopped_by')}: suggested lr {self.lr_suggestion:.3g} "
            f"(lowest loss at {result.get('min_loss_lr', 0):.3g})",
        )
        self.query_one("#train-sample", Static).update(
            f"[dim]suggested learning rate[/] [b]{self.lr_suggestion:.3g}[/] [dim]— “Use lr” "
            "puts it into the form; the range test saved nothing.[/]"
        )
