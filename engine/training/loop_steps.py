"""The blocks of `Trainer._run`, one function each: start, stop-or-go, one step, after
the step, its event, the periodic evaluation and save.

`Trainer._run` reads as the flat loop; these say how each block is done. They take
the trainer and the loop's state (engine/training/loop.py) explicitly; the trainer
is passed in, never imported (trainer.py imports this module).
"""

from __future__ import annotations

import time
from typing import Any

import torch

from engine.errors import BudgetTooShort
from engine.runs.checkpoint import first_non_finite
from engine.training.budget import TimeBudget, probe_final_eval_rate
from engine.training.events import StatusEvent, StepEvent
from engine.training.loop import LoopState, diverged, loss_diverged, tags_for_latest

Trainer = Any


def start_loop(trainer: Trainer) -> LoopState:
    """The budget's plan (with a probe of the final evaluation's speed), the thread
    count, and the opening events: set-up notes, then `training`."""
    cfg = trainer.config
    budget = TimeBudget(
        trainer.deadline, trainer.started, len(trainer.val_ids) - 1, final_eval=cfg.final_eval
    )
    if trainer.is_main and budget.worth_probing(time.monotonic()):
        budget.measured_probe(probe_final_eval_rate(trainer.model, trainer.val_ids, trainer.device))
    loop = LoopState(
        budget=budget,
        step_seconds=budget.next_step_s(cfg.batch_size * cfg.seq_len),
        sync_every=1 if trainer.device.type == "cpu" else 10,
        first_step=trainer.step,
    )
    trainer.model.train()
    if cfg.threads is not None and trainer.device.type == "cpu":
        torch.set_num_threads(cfg.threads)
    trainer.threads.start()
    for note in trainer.setup_notes:
        trainer.emit(StatusEvent("starting", note))
    trainer.emit(StatusEvent("training", trainer.training_label()))
    return loop


def reason_to_stop(trainer: Trainer, loop: LoopState) -> tuple[str | None, float]:
    """(why the loop stops before the next step or None, the time the step plans by)."""
    cfg = trainer.config
    # max_steps first: every rank reaches it at the same step without talking.
    if cfg.max_steps is not None and trainer.step >= cfg.max_steps:
        return "max_steps", time.monotonic()
    reason = "stop" if trainer.stop_requested else None
    if reason is None:  # patience, or the default stop past the best
        reason = trainer.eval_stop_reason()  # rank 0 alone evaluates; DDP agrees below
    if reason is None and trainer.paused:
        reason = wait_while_paused(trainer, loop)
    now = time.monotonic()
    evaluating_next = (trainer.step + 1) % cfg.eval_interval == 0
    if reason is None and loop.budget.should_stop(now, loop.step_seconds, evaluating_next):
        reason = "time_budget"
    if trainer.world_size > 1:
        # Ranks must stop at the same step and use the same learning rate: every
        # `sync_every` steps rank 0's decision and clock go to all (one all-reduce).
        synced = (trainer.step - loop.first_step) % loop.sync_every == 0
        reason = trainer.agree_with_ranks(reason, now) if synced else None
    return reason, now


def refuse_if_untrained(trainer: Trainer, loop: LoopState) -> None:
    """The budget ran out before the first step: a checkpoint of untrained (or unchanged)
    weights would only replace what the user had, so say what a budget needs instead."""
    if loop.stopped_by == "time_budget" and trainer.step == trainer.resumed_at_step:
        budget_s = trainer.config.time_budget or 0.0
        raise BudgetTooShort(loop.budget.too_short(budget_s, time.monotonic(), loop.step_seconds))


def wait_while_paused(trainer: Trainer, loop: LoopState) -> str | None:
    """Until resume() or stop(); "stop" when stopped. Paused time does not eat the budget."""
    trainer.emit(StatusEvent("paused"))
    paused_at = time.monotonic()
    while trainer.paused and not trainer.stop_requested:
        time.sleep(0.02)
    if trainer.deadline is not None:
        loop.paused_s += time.monotonic() - paused_at
        trainer.deadline += time.monotonic() - paused_at
        loop.budget.deadline = trainer.deadline
    if trainer.stop_requested:
        return "stop"
    trainer.emit(StatusEvent("training", trainer.training_label()))
    return None


def take_step(trainer: Trainer, loop: LoopState, lr: float) -> int:
    """Train on the next batch under the state lock; returns its size (positions)."""
    with trainer.state_lock.for_step():
        condition = None
        if trainer.train_segments is not None:
            inputs, targets, condition = trainer.batches.next_labelled()
            reset = True
        else:
            inputs, targets, reset = trainer.batches.next()
        loss = trainer.train_step(inputs, targets, reset, lr, condition)
        if trainer.token_chars is not None:  # per character of text, as val is
            loss = loss * targets.numel() / trainer.token_chars[targets].sum()
        loop.pending.append(loss)
        loop.pending_norms.append(trainer.grad_norm)
        trainer.step += 1
        trainer.tokens += inputs.numel() * trainer.world_size
    loop.tokens += inputs.numel() * trainer.world_size
    # chars/s counts characters of text: a word token spells several.
    text_chars = inputs.numel()
    if trainer.token_chars is not None:
        text_chars = int(trainer.token_chars[inputs].sum())
    loop.text_chars += text_chars * trainer.world_size
    return inputs.numel()


def read_back_loss(trainer: Trainer, loop: LoopState) -> float | None:
    """When due, the pending steps' mean loss into the loop's state; their mean gradient
    norm, or None when nothing was read back. A loss past DIVERGED_LOSS stops the run."""
    if not loop.read_back_due(trainer.step, trainer.config.eval_interval):
        return None
    grad_norm = loop.read_back(trainer.world_size)
    if loss_diverged(loop.last_loss):
        raise diverged(trainer.step, f"the loss reached {loop.last_loss:.4g}", trainer.out_dir)
    return grad_norm


def after_step(trainer: Trainer, loop: LoopState, chars: int, elapsed: float) -> None:
    """The budget plans the next step; the governor may try another thread count."""
    loop.step_seconds = loop.budget.next_step_s(chars)
    loop.budget.measured_step(chars, elapsed)
    # A probe of another thread count may be slower: only while the budget could absorb
    # one step twice as long as this one on top of its reserve.
    room = trainer.deadline is None or (
        trainer.deadline - time.monotonic() - loop.budget.reserve_s()
        > 2 * max(loop.step_seconds, elapsed)
    )
    if trainer.threads.after_step(elapsed, may_probe=room) is not None:
        trainer.emit(StatusEvent("training", trainer.training_label()))
    trainer.train_seconds += elapsed
    loop.train_seconds += elapsed


def emit_step(trainer: Trainer, loop: LoopState, lr: float, grad_norm: float | None) -> None:
    now = time.monotonic()
    progress = trainer.session_progress(now)
    eta = None
    if progress > 0:
        eta = (now - trainer.started) * (1 - progress) / progress
    trainer.emit(
        StepEvent(
            step=trainer.step,
            max_steps=trainer.config.max_steps,
            loss=loop.last_loss,
            lr=lr,
            chars_per_s=loop.chars_per_s(),
            elapsed_s=now - trainer.started,
            eta_s=eta,
            progress=progress,
            grad_norm=grad_norm,
        )
    )


def evaluate_and_save(trainer: Trainer, loop: LoopState) -> None:
    """A periodic evaluation (rank 0) and checkpoint, each timed for the budget."""
    bad = first_non_finite(trainer.model)
    if bad is not None:  # every rank holds the same weights: all stop here
        raise diverged(trainer.step, f"the weights ({bad}) are no longer finite", trainer.out_dir)
    t0 = time.perf_counter()
    trainer.periodic_eval(loop.last_loss)
    loop.budget.measured_periodic(time.perf_counter() - t0)
    if trainer.out_dir is not None and trainer.is_main:
        t0 = time.perf_counter()
        trainer.save(tags=tags_for_latest(trainer.history))
        loop.budget.measured_save(time.perf_counter() - t0)
