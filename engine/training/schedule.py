"""The learning-rate schedule: a pure function of where the run is, as nanoGPT's get_lr.

Linear warmup over `warmup_steps`, then cosine decay from `lr` to
`lr * min_lr_ratio` as progress goes from 0 to 1. Progress is the further along
of steps / max_steps and time / time budget, so a time-budgeted run always
finishes its decay.
"""

from __future__ import annotations

import math


def lr_at(
    step: int, progress: float, *, lr: float, warmup_steps: int, min_lr_ratio: float
) -> float:
    """The learning rate for `step` at `progress` (0..1) of the run."""
    if step < warmup_steps:
        return lr * (step + 1) / warmup_steps
    min_lr = lr * min_lr_ratio
    return min_lr + 0.5 * (lr - min_lr) * (1 + math.cos(math.pi * progress))


def time_progress(now: float, started: float, deadline: float | None, offset: float) -> float:
    """Progress by time: what earlier processes reached (`offset`), then this budget's
    share of the rest."""
    if deadline is None:
        return offset
    span = max(deadline - started, 1e-9)
    return offset + (1.0 - offset) * (now - started) / span
