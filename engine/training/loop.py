"""The training loop's state for one `Trainer.run()`, and the small pure steps it uses.

What the loop changes as it goes (the losses waiting to be read back, this run's
counts, the budget's plan) lives in one `LoopState`, made when the run starts;
what outlives the run (step, tokens, history) stays on the Trainer and goes into
checkpoints.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import torch

from engine.config.train import TrainConfig
from engine.errors import TrainingDiverged
from engine.machine.threads import ThreadGovernor
from engine.training.budget import TimeBudget

# A loss above this (nats/char) is divergence, not learning: uniform guessing over the
# whole of Unicode costs 14.
DIVERGED_LOSS = 1e3


@dataclass
class LoopState:
    """Everything one run of the loop reads and changes besides the trainer's records."""

    budget: TimeBudget
    step_seconds: float  # the budget's plan for the next step
    sync_every: int  # steps between reading the loss back (and, under DDP, agreeing)
    first_step: int  # where this process started (a resumed run's checkpoint step)
    stopped_by: str = "max_steps"
    last_loss: float = math.nan  # the mean loss of the last read-back
    loss_ema: float | None = None  # the result's train_loss
    pending: list[torch.Tensor] = field(default_factory=list)  # losses not read back yet
    pending_norms: list[torch.Tensor] = field(default_factory=list)
    tokens: int = 0  # this run's tokens, all ranks
    text_chars: int = 0  # this run's characters of text, all ranks
    train_seconds: float = 0.0  # this run's time in training steps
    paused_s: float = 0.0  # time spent paused (added to a budget's deadline)
    fit_checked: bool = False  # the data fit, checked at the first evaluation (refit.py)

    def read_back_due(self, step: int, eval_interval: int) -> bool:
        """Every `sync_every` steps, and at each evaluation (whose point shows the loss)."""
        return len(self.pending) >= self.sync_every or step % eval_interval == 0

    def read_back(self, world_size: int) -> float:
        """The mean loss of the pending steps into `last_loss` (and the EMA); returns their
        mean gradient norm. One device sync; under DDP the loss of the global batch."""
        mean_loss = torch.stack(self.pending).mean()
        if world_size > 1:
            from engine.machine.ddp import mean_over_ranks

            mean_loss = mean_over_ranks(mean_loss)
        self.last_loss = float(mean_loss)
        grad_norm = float(torch.stack(self.pending_norms).float().mean())
        self.pending.clear()
        self.pending_norms.clear()
        last = self.last_loss
        self.loss_ema = last if self.loss_ema is None else 0.9 * self.loss_ema + 0.1 * last
        return grad_norm

    def chars_per_s(self) -> float:
        """Characters of text per training second (tokens per second for a char model)."""
        return self.text_chars / max(self.train_seconds, 1e-9)


def loss_diverged(loss: float) -> bool:
    return not math.isfinite(loss) or loss > DIVERGED_LOSS


def diverged(step: int, what: str, out_dir: Path | None) -> TrainingDiverged:
    """The error that stops a run without saving: `last` keeps naming the last checkpoint
    with finite weights."""
    where = ""
    if out_dir is not None:
        kept = (out_dir / "last").exists()
        where = (
            f"; the last good checkpoint stays in {out_dir}"
            if kept
            else "; no checkpoint was saved"
        )
    return TrainingDiverged(
        f"training diverged at step {step}: {what} (lower the learning rate){where}"
    )


def detach_state(state: object) -> object:
    """A recurrent state cut from the graph (stateful batching carries it on)."""
    if state is None:
        return None
    if isinstance(state, tuple):
        return tuple(s.detach() for s in state)
    return state.detach()  # type: ignore[attr-defined]


def thread_governor(config: TrainConfig, device: torch.device, world_size: int) -> ThreadGovernor:
    """On one CPU process with no pinned count (`threads`), a governor that adapts it."""
    adaptive = config.threads is None and device.type == "cpu" and world_size == 1
    return ThreadGovernor(config.threads or torch.get_num_threads(), enabled=adaptive)


def training_label(precision_label: str, governor: ThreadGovernor) -> str:
    """The precision, and the thread count when the governor moved it off the default."""
    label = precision_label
    if governor.choices:
        last = governor.choices[-1]
        label += f"; {governor.current} of {governor.max_threads} threads ({last.reason})"
    return label


def tags_for_latest(history: list[dict]) -> tuple[str, ...]:
    """The tags a save takes now: `best` too when the latest evaluation is the best."""
    latest = history[-1] if history else None
    if latest and latest.get("best"):
        return ("last", "best")
    return ("last",)
