"""Planning the end of a time-budgeted run: the whole command ends by its deadline.

A time budget covers everything (start-up, training, the final evaluation of the
held-out split, the save, the exit), on a busy machine too. So the end is
planned from measurements, never from guesses:

- before training, the final evaluation's own computation (fp32, the stream or
  window shape `evaluate_split` will use) is timed on a few steps of the split;
- while training, that rate is re-checked against the training speed: when
  another process takes a core, both slow down alike, so the estimate follows
  the training speed's drift from what it was at the probe;
- training stops when the next step (and any periodic evaluation and save due
  with it) would eat into the time the final evaluation, the save and the exit
  need;
- the final evaluation itself gets a hard deadline (the save and exit still fit
  after it), so an estimate that was wrong makes it partial, never late;
- once the val curve has turned up (the latest evaluation is not the best), the
  end also keeps time for one more periodic evaluation: the last weights are
  estimated before the final evaluation picks the best model
  (engine/training/best_model.py).

The whole split is scored whenever it fits in FINAL_EVAL_SHARE of the budget;
a split too big for that (100 MB in two minutes) is scored on its first
`final_chars()` characters, and the result says so (`val_chars` below
`val_split_chars`, `partial_eval`).
"""

from __future__ import annotations

import math
import statistics
import time

import numpy as np
import torch

from engine.models import CharLM
from engine.training import evaluate
from engine.wording import setting

FINAL_EVAL_SHARE = 0.25
# After the save: building the result, printing it, tearing the interpreter down.
EXIT_SECONDS = 0.6
# The final evaluation's estimate is padded by this much (a busy machine is uneven).
SAFETY = 1.25
# The final evaluation's probe: positions of each stream, and timed calls (their median).
# The best of two 16-position calls read 1.3-4x the rate the whole split then ran at on a
# busy 2-core Xeon, so 120 s and 600 s tinyshakespeare runs scored only 74% of the split.
PROBE_STEPS = 64
PROBE_CALLS = 3
# A training step (forward, backward) costs about this many inference passes per char;
# the guess for the first step, before one has been timed (on a busy machine one step of
# the `cpu` preset can take 20 s, and starting it late overruns the budget by that much).
TRAIN_TO_EVAL_COST = 3.0
# How far the training-speed drift may raise the estimate of the evaluation speed: not at
# all. Training speeds up after its first steps (allocator and caches warm) while the
# evaluation, probed warm, does not: a 1x256 LSTM's estimate rose 13% that way and its
# final evaluation was cut short. Slower training still lowers the estimate.
MAX_SPEEDUP = 1.0
RECENT_STEPS = 4  # the next step is planned as slow as the slowest of these
# What a budget should leave for training at the least, in the advice when none was left.
ADVISED_TRAIN_S = 10


class TimeBudget:
    """When to stop training, and how much of the split the final evaluation scores."""

    def __init__(
        self,
        deadline: float | None,
        started: float,
        split_chars: int,
        *,
        final_eval: bool,
    ) -> None:
        self.deadline = deadline
        self.started = started
        self.split_chars = split_chars
        self.final_eval = final_eval
        self.probe_rate: float | None = None  # final-evaluation chars/s at the probe
        self.train_rate_at_probe: float | None = None
        self.train_rate: float | None = None  # recent training chars/s
        self.save_s = 0.5
        self.periodic_s = 0.0  # the last periodic evaluation's seconds
        # The val curve turned up: the end estimates the last weights first (periodic_s).
        self.estimate_last = False
        self.steps_seen = 0
        self.recent_rates: list[float] = []  # chars/s of the last RECENT_STEPS steps
        self.slowest_rate: float | None = None

    # ----- measurements ----------------------------------------------------------------

    def measured_probe(self, chars_per_s: float) -> None:
        self.probe_rate = chars_per_s

    def measured_step(self, chars: int, seconds: float) -> None:
        """A training step: an exponential average of the recent speed, and the slowest of
        the last few (the next step is planned as that slow)."""
        rate = chars / max(seconds, 1e-9)
        self.steps_seen += 1
        if self.steps_seen <= 3:  # the first steps pay one-off set-up costs: the best one
            self.train_rate_at_probe = max(self.train_rate_at_probe or 0.0, rate)
            self.train_rate = max(self.train_rate or 0.0, rate)
            self.slowest_rate = self.train_rate
            return
        self.train_rate = 0.8 * (self.train_rate or rate) + 0.2 * rate
        self.recent_rates = [*self.recent_rates[-(RECENT_STEPS - 1) :], rate]
        self.slowest_rate = min(self.recent_rates)

    def measured_save(self, seconds: float) -> None:
        self.save_s = seconds

    def measured_periodic(self, seconds: float) -> None:
        self.periodic_s = seconds

    # ----- the plan --------------------------------------------------------------------

    def final_rate(self) -> float | None:
        """The final evaluation's chars/s now: the probe, scaled by the training speed's drift."""
        if self.probe_rate is None:
            return None
        drift = 1.0
        if self.train_rate and self.train_rate_at_probe:
            drift = min(self.train_rate / self.train_rate_at_probe, MAX_SPEEDUP)
        return self.probe_rate * drift

    def final_chars(self) -> int:
        """All of the split, unless it cannot be scored in FINAL_EVAL_SHARE of the budget."""
        rate = self.final_rate()
        if self.deadline is None or rate is None:
            return self.split_chars
        affordable = int(rate * FINAL_EVAL_SHARE * max(self.deadline - self.started, 0.0))
        return max(min(self.split_chars, affordable), min(self.split_chars, 2))

    def final_chars_at(self, now: float) -> int:
        """What the final evaluation scores when it starts at `now`: the planned share, or
        more when training stopped with time to spare (a slow step planned for, then not
        taken), as much as the measured rate fits before its deadline (SAFETY included)."""
        planned = self.final_chars()
        rate, deadline = self.final_rate(), self.final_eval_deadline()
        if rate is None or deadline is None:
            return planned
        fits = int(rate * max(deadline - now, 0.0) / SAFETY)
        return max(planned, min(self.split_chars, fits))

    def exit_s(self) -> float:
        """After the save: closing the metrics log (an fsync, as slow as the save's on a busy
        disk), printing the result, the interpreter's exit."""
        return max(EXIT_SECONDS, self.save_s)

    def reserve_s(self) -> float:
        """Seconds to keep for the final evaluation, the save and the exit."""
        keep = self.save_s + self.exit_s()
        if self.estimate_last:
            keep += self.periodic_s
        if not self.final_eval:
            return keep
        rate = self.final_rate()
        if rate is None:
            return keep + 1.0
        return keep + self.final_chars() / max(rate, 1.0) * SAFETY

    def next_step_s(self, chars: int) -> float:
        """What the next step of `chars` may take: as long as the slowest of the last few (on
        a busy machine steps vary twofold, and one longer than planned overruns the budget),
        never the first step's one-off set-up (which can be ten times a step)."""
        if self.slowest_rate:
            return chars / self.slowest_rate
        if self.train_rate:
            return chars / self.train_rate
        if self.probe_rate:  # before the first step: a forward and backward ~ 3 forwards
            return chars * TRAIN_TO_EVAL_COST / self.probe_rate
        return 0.0

    def should_stop(self, now: float, next_step_s: float, evaluating_next: bool) -> bool:
        """Would the next step (and the periodic evaluation and save due with it) eat the reserve?"""
        if self.deadline is None:
            return False
        upcoming = next_step_s + (self.periodic_s + self.save_s if evaluating_next else 0.0)
        return now + upcoming >= self.deadline - self.reserve_s()

    def too_short(self, budget_s: float, now: float, step_s: float) -> str:
        """Why no step fitted (`step_s`: the first step's plan), with a budget that would
        leave time to train."""
        assert self.deadline is not None
        spent = max(budget_s - (self.deadline - now), 0.0)
        keep = self.reserve_s()
        advised = math.ceil(spent + keep + max(ADVISED_TRAIN_S, 10 * step_s))
        return (
            f"a {budget_s:g} s {setting('time_budget')} leaves no time to train: starting "
            f"took {spent:.1f} s, a step about {step_s:.1f} s, and the final evaluation and "
            f"save need about {keep:.1f} s; give {advised} s or more (nothing was saved)"
        )

    def worth_probing(self, now: float) -> bool:
        """A probe costs a second or so: not worth it when the budget is as good as spent."""
        return self.deadline is not None and self.final_eval and self.deadline - now > 2.0

    def final_eval_deadline(self) -> float | None:
        """Where the final evaluation must stop, so that the save and the exit still fit."""
        if self.deadline is None:
            return None
        return self.deadline - self.save_s - self.exit_s()

    def extend(self, seconds: float) -> None:
        """Paused time does not eat the budget."""
        if self.deadline is not None:
            self.deadline += seconds


def probe_final_eval_rate(
    model: CharLM, ids: np.ndarray, device: torch.device, steps: int = PROBE_STEPS
) -> float:
    """Chars/s of the final evaluation's computation, timed on a few steps of its real shape.

    fp32 and inference mode, as the final evaluation runs; the streams (or windows)
    as `evaluate_split` lays them out for this split, `steps` positions of each.
    The median of PROBE_CALLS timings after a warm-up call: the best of a few is a
    lucky moment on a busy machine, and planning by it runs the evaluation out of time.
    """
    total = max(len(ids) - 1, 1)
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            if model.max_context is None:
                streams = max(1, min(evaluate.MAX_STREAMS, total // evaluate.STREAM_CHARS))
                length = total // streams
                steps = max(1, min(steps, length))
                tokens = torch.tensor(np.asarray(ids[: streams * steps]), dtype=torch.long)
                batch = tokens.to(device).view(streams, steps)
                # Each stream's warm-up is work too: scale the rate by scored / computed.
                warm = min(evaluate.WARMUP_CHARS, length) if streams > 1 else 0
                scored_share = length / (length + warm)
                scored = streams * steps
            else:
                window = min(int(model.max_context), total)
                rows = max(1, min(32, total // max(window, 1)))
                tokens = torch.tensor(np.asarray(ids[: rows * window]), dtype=torch.long)
                batch = tokens.to(device).view(rows, -1)
                scored_share = 0.5 if total > window else 1.0  # windows overlap by half
                scored = batch.numel()
            timings = []
            for attempt in range(PROBE_CALLS + 1):  # the first call pays one-off set-up
                started = time.perf_counter()
                model(batch)
                if device.type == "cuda":
                    torch.cuda.synchronize(device)
                if attempt:
                    timings.append(time.perf_counter() - started)
    finally:
        model.train(was_training)
    return scored * scored_share / max(statistics.median(timings), 1e-6)
