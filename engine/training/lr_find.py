"""The learning-rate range test (Leslie Smith; fastai's lr_find): a rate to start from.

A fresh model trains for at most `steps` steps while the learning rate grows
exponentially from `min_lr` to `max_lr`. The loss is smoothed with a
bias-corrected exponential moving average; the test stops early when the
smoothed loss exceeds `diverge_factor` times its minimum, climbs back above
where it started, or stops being a number: beyond that the curve says nothing more.

The suggestion is the rate at the minimum of the smoothed curve divided by ten
(the classic rule: the loss still falls fast there, and training is stable),
reported with the rate of steepest descent, which fastai also shows.

It works on a throwaway Trainer without a run directory: nothing is written,
so an existing run is never touched.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace

from engine.config.train import TrainConfig
from engine.data.corpus import Corpus
from engine.errors import ConfigError
from engine.models import ModelConfig
from engine.training.trainer import Trainer

PointCallback = Callable[[int, float, float, float], None]  # step, lr, loss, smoothed


@dataclass
class LRFindResult:
    lrs: list[float]
    losses: list[float]
    smoothed: list[float]
    suggestion: float | None
    steepest: float | None
    min_loss_lr: float | None
    stopped_by: str  # "diverged" or "end"
    min_lr: float
    max_lr: float

    def as_dict(self) -> dict:
        return asdict(self)


def check_range(min_lr: float, max_lr: float, steps: int) -> None:
    if not (math.isfinite(min_lr) and min_lr > 0):
        raise ConfigError("--min-lr must be a positive number")
    if not (math.isfinite(max_lr) and max_lr > 0):
        raise ConfigError("--max-lr must be a positive number")
    if max_lr <= min_lr:
        raise ConfigError(
            f"the learning-rate range is empty or reversed: --min-lr {min_lr:g} must be "
            f"below --max-lr {max_lr:g}"
        )
    if steps < 5:
        raise ConfigError("--steps must be at least 5 for a range test")


def lr_schedule(min_lr: float, max_lr: float, steps: int) -> list[float]:
    """`steps` rates from min_lr to max_lr, evenly spaced on a log scale."""
    ratio = max_lr / min_lr
    return [min_lr * ratio ** (i / (steps - 1)) for i in range(steps)]


def smooth(losses: list[float], beta: float = 0.9) -> list[float]:
    """Bias-corrected exponential moving average (early points are not pulled to 0)."""
    out, average = [], 0.0
    for i, loss in enumerate(losses):
        average = beta * average + (1 - beta) * loss
        out.append(average / (1 - beta ** (i + 1)))
    return out


def suggest(
    lrs: list[float], smoothed: list[float]
) -> tuple[float | None, float | None, float | None]:
    """(suggestion, steepest, lr at the minimum) from a smoothed curve."""
    finite = [(lr, s) for lr, s in zip(lrs, smoothed, strict=True) if math.isfinite(s)]
    if len(finite) < 3:
        return None, None, None
    best = min(range(len(finite)), key=lambda i: finite[i][1])
    min_loss_lr = finite[best][0]
    # Steepest descent on a log-lr axis, before the minimum (after it the loss rises).
    slopes = [
        (finite[i + 1][1] - finite[i][1]) / math.log(finite[i + 1][0] / finite[i][0])
        for i in range(max(best, 1))
    ]
    steepest = finite[min(range(len(slopes)), key=slopes.__getitem__)][0] if slopes else None
    suggestion = max(min_loss_lr / 10.0, lrs[0])
    return suggestion, steepest, min_loss_lr


def lr_find(
    corpus: Corpus,
    model_config: ModelConfig,
    config: TrainConfig,
    *,
    min_lr: float = 1e-5,
    max_lr: float = 1.0,
    steps: int = 100,
    diverge_factor: float = 4.0,
    beta: float = 0.9,
    on_point: PointCallback | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> LRFindResult:
    """Run the range test on a fresh model built from `model_config` (see the module doc)."""
    check_range(min_lr, max_lr, steps)
    if diverge_factor <= 1:
        raise ConfigError("the divergence factor must be above 1")
    # No time budget, no final evaluation, no run directory: a throwaway trainer.
    config = replace(config, max_steps=steps, time_budget=None, final_eval=False, patience=None)
    trainer = Trainer(corpus, replace(model_config), config, out_dir=None)
    trainer.model.train()
    lrs, losses, smoothed = [], [], []
    stopped_by = "end"
    average, lowest = 0.0, math.inf
    for i, lr in enumerate(lr_schedule(min_lr, max_lr, steps)):
        if should_stop is not None and should_stop():
            stopped_by = "stopped"
            break
        inputs, targets, reset = trainer.batches.next()
        loss = float(trainer.train_step(inputs, targets, reset, lr))
        if not math.isfinite(loss):
            stopped_by = "diverged"
            break
        average = beta * average + (1 - beta) * loss
        value = average / (1 - beta ** (i + 1))
        lrs.append(lr)
        losses.append(loss)
        smoothed.append(value)
        if on_point is not None:
            on_point(i + 1, lr, loss, value)
        lowest = min(lowest, value)
        if i > 0 and (value > diverge_factor * lowest or value > smoothed[0] > lowest):
            stopped_by = "diverged"
            break
    suggestion, steepest, min_loss_lr = suggest(lrs, smoothed)
    return LRFindResult(
        lrs=lrs,
        losses=losses,
        smoothed=smoothed,
        suggestion=suggestion,
        steepest=steepest,
        min_loss_lr=min_loss_lr,
        stopped_by=stopped_by,
        min_lr=min_lr,
        max_lr=max_lr,
    )
