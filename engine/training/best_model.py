"""A run's result is its best model: which evaluation that is, its weights, and when to stop.

Contracts (engine/training/evaluation_steps.py applies them):

- The best evaluation is the last history record tagged `best` (periodic
  estimates over a fixed, seeded set of windows, so they compare with each other).
  When a later evaluation scored worse (the val curve turned up), the run's
  result is the best evaluation's weights: the final whole-split evaluation
  scores them, and `val_loss` is their figure; the last weights stay in `last`
  for `--resume`, their estimate is `last_val_loss`.
- `BestWeights` keeps a CPU copy of the best weights as each new best is
  recorded, so the result needs no disk (a Trainer without a run directory). A
  resumed run whose best came from an earlier process reads them from the run's
  `best` checkpoint; when neither is there, the last weights are the result
  (and the result says so).
- The default stop (`past_best_stop`), for a time-budgeted run without an
  explicit `patience`: stop when the steps since the best cover at least
  PAST_BEST_SHARE of the steps so far, at least MIN_EVALS_PAST evaluations
  came after it, and the latest MIN_EVALS_PAST of them are all more than
  RISE above the best (relative). A run still improving makes new bests, so it
  is never stopped; a flat, noisy plateau is not a clear rise either. A resumed
  run counts only its own evaluations past the best: resuming continues it.
"""

from __future__ import annotations

import copy
from pathlib import Path

import torch

from engine.models import CharLM

PAST_BEST_SHARE = 0.5  # steps since the best / steps so far
MIN_EVALS_PAST = 2  # evaluations after the best, each clearly worse
RISE = 0.02  # "clearly worse": above the best by this share of it


def best_record(history: list[dict]) -> dict | None:
    """The history's best evaluation (the last one tagged best), if any."""
    return next((record for record in reversed(history) if record.get("best")), None)


def turned_up(history: list[dict]) -> bool:
    """Did an evaluation after the best score worse (the best is not the latest)?"""
    best = best_record(history)
    return best is not None and history[-1] is not best


def past_best_stop(history: list[dict], since_step: int = 0) -> str | None:
    """Why a budgeted run should stop now (one sentence), or None: see the module docstring.

    Only evaluations after `since_step` (where this process resumed) count as the ones
    past the best: a run resumed on purpose trains on before it can stop again."""
    best = best_record(history)
    if best is None:
        return None
    index = max(i for i, record in enumerate(history) if record is best)
    after = history[index + 1 :]
    if sum(int(record["step"]) > since_step for record in after) < MIN_EVALS_PAST:
        return None
    best_step, step = int(best["step"]), int(history[-1]["step"])
    best_loss = float(best["val_loss"])
    if step - best_step < PAST_BEST_SHARE * step:
        return None
    floor = best_loss + RISE * abs(best_loss)
    if not all(float(record["val_loss"]) > floor for record in after[-MIN_EVALS_PAST:]):
        return None
    latest = float(history[-1]["val_loss"])
    return (
        f"val loss rose from its best {best_loss:.4f} (step {best_step:,}) to {latest:.4f} "
        f"over the {len(after)} evaluations since, {step - best_step:,} of {step:,} steps: "
        "stopped early (overfitting), the best model is the result"
    )


class BestWeights:
    """A CPU copy of the weights at the best evaluation (taken when it is recorded)."""

    def __init__(self) -> None:
        self.step: int | None = None
        self.state: dict[str, torch.Tensor] | None = None

    def capture(self, model: CharLM, step: int) -> None:
        self.state = {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}
        self.step = step

    def model_at(self, model: CharLM, step: int, run_dir: Path | None) -> CharLM | None:
        """A copy of `model` holding the weights of `step` (memory, else the run's `best`)."""
        state = self.state if self.step == step else _saved_best(run_dir, step)
        if state is None:
            return None
        best = copy.deepcopy(model)
        best.load_state_dict(state)
        return best.eval()


def _saved_best(run_dir: Path | None, step: int) -> dict[str, torch.Tensor] | None:
    """The weights of the run's `best` checkpoint when it is at `step` (a resumed run)."""
    if run_dir is None or not (run_dir / "best").is_symlink():
        return None
    from engine.errors import CheckpointError
    from engine.runs.checkpoint import load_checkpoint

    try:
        saved = load_checkpoint(run_dir, "cpu", prefer="best")
    except CheckpointError:
        return None
    if saved.step != step:
        return None
    return saved.model.state_dict()


def best_checkpoint(run_dir: Path | None) -> str | None:
    """The path of the run's `best` checkpoint directory, if it has one."""
    from engine.runs.run_tags import tag_target

    if run_dir is None:
        return None
    name = tag_target(run_dir, "best")
    return str(run_dir / name) if name else None


def best_note(path: Path) -> str | None:
    """'best at step N ...' when `path` is a run's `best` checkpoint and the run went on
    past it (its `last` is later): what `generate` and `eval` loaded, said in a line."""
    from engine.runs.run_tags import tag_target

    run = path.parent
    if not path.name.startswith("step-") or tag_target(run, "best") != path.name:
        return None
    last = tag_target(run, "last")
    if last is None or last == path.name:
        return None
    try:
        step, last_step = int(path.name.split("-")[1]), int(last.split("-")[1])
    except (IndexError, ValueError):
        return None
    return (
        f"the run's best model: best at step {step:,} "
        f"(its last weights, step {last_step:,}, stay in last for --resume)"
    )
