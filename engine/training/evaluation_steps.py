"""The trainer's evaluations: periodic ones, the final one, and the result they close with.

A base of engine.training.trainer.Trainer, whose `__init__` declares every attribute
these methods read or set (the loop's budget and counts are in `self.loop`,
engine/training/loop.py): kept apart because what is scored at the end of a
run, how, and what the result reports change for reasons of their own (time
budgets, labels, word tokens) that the training loop does not share.

The result is the run's best model (engine/training/best_model.py): when the val
curve turned up, the last weights are estimated once more, and the final
whole-split evaluation scores the best evaluation's weights, so `val_loss` is the
figure of the model `best` names (and `generate` / `eval` load); `last_val_loss`
is the last weights' estimate and `reported` says which model `val_loss` scores.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import asdict
from typing import Any

import numpy as np
import torch

from engine.training.best_model import (
    BestWeights,
    best_checkpoint,
    best_record,
    past_best_stop,
    turned_up,
)
from engine.training.eval_windows import evaluate_windows
from engine.training.evaluate import evaluate_split
from engine.training.evaluate_labelled import evaluate_labelled
from engine.training.events import EvalEvent, EvalProgressEvent, StatusEvent, TrainResult
from engine.training.loop import LoopState, tags_for_latest

PROGRESS_EVERY_S = 0.25  # final-evaluation progress events, at most this often


class EvaluationSteps:
    """Evaluation, early-stopping count and the final result of a Trainer."""

    # Set by Trainer.__init__ (declared for readers and type checkers).
    config: Any
    history: list[dict]
    model: Any
    device: torch.device
    loop: LoopState | None
    best_weights: BestWeights

    def _final_eval_progress(self) -> Callable[[int, int], None]:
        """EvalProgressEvents at most every PROGRESS_EVERY_S, and always the last one."""
        last = [0.0]

        def report(done: int, total: int) -> None:
            now = time.monotonic()
            if done >= total or now - last[0] >= PROGRESS_EVERY_S:
                last[0] = now
                unit = "chars" if self.token_chars is None else "tokens"
                self.emit(EvalProgressEvent(done, total, unit))

        return report

    def evals_left(self) -> int | None:
        """With --patience: evaluations without a new best left before training stops.

        Counted from the history (the evaluations since the last best one), so a
        resumed run continues the count where it stopped.
        """
        if not self.config.patience:
            return None
        since_best = 0
        for record in reversed(self.history):
            if record.get("best"):
                break
            since_best += 1
        return max(self.config.patience - since_best, 0)

    def eval_stop_reason(self) -> str | None:
        """Why the evaluations so far stop the run: `early_stop` (patience ran out),
        `overfitting` (the default stop of a budgeted run without a patience,
        engine/training/best_model.py) or None; `stop_note` says it in a sentence."""
        if self.evals_left() == 0:
            best = best_record(self.history)
            where = f" since step {best['step']:,}" if best else ""
            self.stop_note = (
                f"no new best val loss in {self.config.patience} evaluations{where}: "
                "stopped early, the best model is the result"
            )
            return "early_stop"
        cfg = self.config
        if cfg.patience is None and cfg.time_budget is not None and cfg.stop_past_best:
            # The first call comes before this process's first step: where it resumed.
            note = past_best_stop(self.history, self.resumed_at_step)
            if note is not None:
                self.stop_note = note
                return "overfitting"
        return None

    def periodic_eval(self, train_loss: float) -> None:
        if not self.is_main:  # under DDP rank 0 alone evaluates; the others wait for it
            return
        self.emit(StatusEvent("evaluating"))
        result = evaluate_windows(
            self.model, self.eval_windows, self.amp, token_chars=self.token_chars
        )
        self._record_eval(result.loss, result.chars, train_loss)
        self.model.train()
        self.emit(StatusEvent("training", self.training_label()))

    def _record_eval(
        self, loss: float, chars: int, train_loss: float, result: bool = False
    ) -> None:
        """One point of the validation history (and its event); `best` tags the checkpoint.

        `result`: these are the weights the run reports (the closing whole-split score of
        a run whose curve never turned up), so they are its best whatever the estimates
        before them read: `generate` and `eval` then take the model the figure is of."""
        bpc = loss / math.log(2)
        best = result or self.best_val_loss is None or loss < self.best_val_loss
        if best:
            self.best_val_loss = loss
            self.best_weights.capture(self.model, self.step)
        if self.loop is not None:  # the curve turned up: the end estimates the last weights
            self.loop.budget.estimate_last = not best
        elapsed = time.monotonic() - self.started
        self.history.append(
            {
                "step": self.step,
                "train_loss": train_loss,
                "val_loss": loss,
                "val_chars": chars,
                "elapsed_s": elapsed,
                "tokens": self.tokens,
                "best": best,
            }
        )
        self.emit(
            EvalEvent(
                step=self.step,
                val_loss=loss,
                val_bpc=bpc,
                val_perplexity=math.exp(min(loss, 700.0)) if math.isfinite(loss) else math.nan,
                val_chars=chars,
                train_loss=train_loss if math.isfinite(train_loss) else None,
                best=best,
                elapsed_s=elapsed,
                evals_left=self.evals_left(),
            )
        )

    def _finish(self, stopped_by: str) -> TrainResult:
        cfg = self.config
        loop = self.loop
        assert loop is not None
        train_loss = loop.loss_ema if loop.loss_ema is not None else float("nan")
        unrecorded = not self.history or (self.history[-1]["step"] != self.step and self.step > 0)
        if unrecorded and self.evaluate_at_end and self.is_main and turned_up(self.history):
            # The curve turned up: estimate the last weights too (they may be a new best),
            # so that the result is the best of every model the run had.
            self.periodic_eval(train_loss)
            unrecorded = False
        model, best = self._result_model()
        full = None
        if cfg.final_eval and self.evaluate_at_end and self.is_main:
            full = self._final_eval(model, best)
            if unrecorded and full.chars:  # the closing point of the history is this figure
                self._record_eval(full.loss, full.chars, train_loss, result=best is None)
                unrecorded = False
            if self.metrics is not None:  # after the eval record of this step: a resume drops it
                self.metrics.final(
                    self.step, full.loss, full.chars, time.monotonic() - self.started
                )
        if unrecorded and full is None and self.evaluate_at_end:
            # No final evaluation: a periodic one closes the history (not when quitting:
            # the save below must not wait for an evaluation).
            self.periodic_eval(train_loss)
        checkpoint = None
        if self.out_dir is not None and self.is_main:
            self.emit(StatusEvent("saving"))
            # final_val is the result's figure; val_model_step says whose (the best's or these).
            final_val = None
            if full is not None:
                scored_step = int(best["step"]) if best else self.step
                final_val = {**full.as_dict("val_"), "val_model_step": scored_step}
            extra = {"final_val": final_val}
            checkpoint = str(self.save(tags=tags_for_latest(self.history), extra=extra))
        return self._train_result(stopped_by, full, best, checkpoint)

    def _train_result(
        self, stopped_by: str, full: Any, best: dict | None, checkpoint: str | None
    ) -> TrainResult:
        """The run's figures: the final evaluation's (`full`) when there was one, else the
        best (or latest) periodic one's; emits the closing `stopped` / `done`."""
        cfg = self.config
        loop = self.loop
        assert loop is not None
        elapsed = time.monotonic() - self.started
        latest = self.history[-1] if self.history else {}
        source = best or latest
        loss = full.loss if full else float(source.get("val_loss", float("nan")))
        chars = full.chars if full else int(source.get("val_chars", 0))
        last_loss = latest.get("val_loss")
        if full is not None and best is None:
            last_loss = full.loss  # the last weights were scored on the split
        split_chars = self._split_chars()
        whole = len(self.val_ids) - 1  # positions (a word model's tokens)
        if self.val_segments is not None:  # each label's span loses its first position
            whole = split_chars
        partial = full.positions < whole if full else chars < split_chars
        best_at = best_record(self.history) if self.is_main else None
        self.emit(StatusEvent("stopped" if stopped_by == "stop" else "done"))
        return TrainResult(
            val_loss=loss,
            val_bpc=loss / math.log(2),
            val_perplexity=math.exp(min(loss, 700.0)) if math.isfinite(loss) else float("nan"),
            val_chars=chars,
            val_split_chars=split_chars,
            partial_eval=partial,
            steps=self.step,
            startup_s=_startup_s(self.deadline, loop.paused_s, cfg.time_budget, self.started),
            elapsed_s=elapsed,
            train_s=loop.train_seconds,
            chars_per_s=loop.chars_per_s(),
            checkpoint=checkpoint,
            best_val_loss=self.best_val_loss,
            best_step=int(best_at["step"]) if best_at else None,
            last_val_loss=None if last_loss is None else float(last_loss),
            reported="best" if best is not None else "last",
            best_checkpoint=best_checkpoint(self.out_dir) if self.is_main else None,
            stop_note=self.stop_note,
            stopped_by=stopped_by,
            device=str(self.device),
            precision=self.precision.name,
            threads=torch.get_num_threads(),
            thread_changes=[f"{c.threads}: {c.reason}" for c in self.threads.choices],
            precision_reason=self.precision.reason,
            parameters=self.model.num_parameters(),
            model=self.model_config.as_dict(),
            train=asdict(cfg),
            labels=list(self.corpus.labels) if self.train_segments is not None else [],
            label_val_loss=dict(self.label_losses),
            tokens=self.config.tokens,
            val_bits_per_char=loss / math.log(2),
            val_loss_per_token=full.loss_per_token if full else None,
            val_tokens=full.tokens_scored if full else None,
            vocab_size=len(self.corpus.vocab),
        )

    def _result_model(self) -> tuple[Any, dict | None]:
        """(the model the run reports, the best record when that is the best's weights).

        The best evaluation's weights when the curve turned up after it (from memory, or
        the run's `best` checkpoint when an earlier process recorded it), else the last.
        """
        self.result_model = None
        if not self.is_main or not turned_up(self.history):
            return self.model, None
        best = best_record(self.history)
        assert best is not None
        model = self.best_weights.model_at(self.model, int(best["step"]), self.out_dir)
        if model is None:
            return self.model, None
        self.result_model = model
        return model, best

    def _final_eval(self, model: Any, best: dict | None) -> Any:
        """The whole held-out split (or as much as the budget allows), scored in fp32."""
        assert self.loop is not None
        budget = self.loop.budget
        chars = budget.final_chars_at(time.monotonic())
        scored = self.val_ids[: chars + 1]
        unit = "chars" if self.token_chars is None else "tokens"
        what = (
            "the whole held-out split"
            if chars == budget.split_chars
            else f"the first {chars:,} of {budget.split_chars:,} {unit} "
            "of the held-out split (time budget)"
        )
        if best is not None:
            what = f"the best model (step {int(best['step']):,}) on {what}"
        self.emit(StatusEvent("evaluating", f"scoring {what}"))
        # Scored in fp32 whatever the training precision: the headline figure is exact.
        # The deadline keeps the save and the exit inside the budget: an evaluation
        # slower than planned is cut short (and reported as partial), never late.
        if self.val_segments is not None:
            full, per_label = evaluate_labelled(
                model,
                self.val_ids,
                self.val_segments,
                self.corpus.labels,
                self.device,
                with_label=True,
                limit=len(scored),
                deadline=budget.final_eval_deadline(),
                progress=self._final_eval_progress(),
            )
            self.label_losses = {name: r.loss for name, r in per_label.items()}
            return full
        return evaluate_split(
            model,
            scored,
            self.device,
            None,
            deadline=budget.final_eval_deadline(),
            progress=self._final_eval_progress(),
            token_chars=self.token_chars,
        )

    def _split_chars(self) -> int:
        """Characters of the held-out split that are scored (all but its first token; a
        labelled split: all but the first of each label's span, scored on its own)."""
        if self.val_segments is not None:
            return int(sum(max(0, end - start - 1) for start, end, _ in self.val_segments.tolist()))
        if self.token_chars is None:
            return len(self.val_ids) - 1
        ids = torch.as_tensor(np.asarray(self.val_ids[1:]).astype(np.int64))
        return int(self.token_chars.cpu()[ids].sum())


def _startup_s(
    deadline: float | None, paused_s: float, time_budget: float | None, started: float
) -> float:
    """Seconds between the budget's start (the command's) and the trainer's start."""
    if deadline is None or time_budget is None:
        return 0.0
    command_started = deadline - paused_s - time_budget
    return max(0.0, started - command_started)
