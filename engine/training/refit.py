"""The data fit checked once against the speed training really runs at.

A budgeted run's regularisation is chosen at its start from the width probe's rate
(engine/config/sizing.py): the epochs it will read decide dropout, weight decay and
weight drop. The probe lasts about a second, so anything else busy on the cores then
makes it read slow. On the 2-core EPYC a probe that read under half the real rate put
tinyshakespeare in 600 s (17 epochs) under the 8-epoch tier: the 512-wide model
trained with no regularisation, overfit and stopped early at 1.528 nats/char, where
the same command otherwise reaches 1.41.

So at the run's first evaluation, the fit is computed again from the characters per
second measured over the steps so far, and any floor it raises is raised in the live
model and optimizer. Only raised, never lowered: an under-regularised run overfits and
loses the budget, an over-regularised one only learns a little slower, and a fit that
could go both ways would flip at a tier's edge.
"""

from __future__ import annotations

from typing import Any

from engine.config.sizing import chars_by_steps, fit_to_data
from engine.training.events import StatusEvent
from engine.training.loop import LoopState

Trainer = Any  # passed in, never imported (trainer.py imports this module)


def _regularisation(trainer: Trainer) -> tuple[float, float, float]:
    model = trainer.model_config
    return model.dropout, trainer.config.weight_decay, getattr(model, "weight_drop", 0.0)


def refit_to_measured_speed(trainer: Trainer, loop: LoopState) -> str | None:
    """Raise the run's regularisation if the measured speed reads more epochs than the
    start's probe did; returns the line that says so (also sent as a note), else None.
    Runs whose fit was not made from a probe (a fixed width, no data fit) are left."""
    choice, cfg = trainer.width_choice, trainer.config
    if choice is None or not cfg.fit_data or loop.train_seconds <= 0:
        return None
    rate = loop.chars_per_s()
    fit = fit_to_data(len(trainer.train_ids), choice.seconds, rate, chars_by_steps(cfg))
    before = _regularisation(trainer)
    reason = fit.apply(trainer.model_config, cfg)
    if _regularisation(trainer) == before:
        return None
    dropout, weight_decay, _ = _regularisation(trainer)
    model = trainer.model
    model.drop.p = dropout
    if trainer.model_config.num_layers > 1:
        model.rnn.dropout = dropout
    trainer.optimizer.param_groups[0]["weight_decay"] = weight_decay  # the matrices' group
    line = (
        f"regularisation raised at step {trainer.step:,}: training runs at "
        f"{rate / 1e3:.0f}k chars/s, faster than the start's probe read. {reason}"
    )
    trainer.emit(StatusEvent("training", line, note=True))
    return line
