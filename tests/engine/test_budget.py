"""Planning a time budget's end, with measurements injected: no clocks, no timing."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from engine.training.budget import (
    EXIT_SECONDS,
    FINAL_EVAL_SHARE,
    SAFETY,
    TimeBudget,
    probe_final_eval_rate,
)
from tests.helpers import tiny_model


def planned(split: int = 10_000, rate: float | None = 1_000.0, budget: float = 100.0) -> TimeBudget:
    plan = TimeBudget(budget, 0.0, split, final_eval=True)
    if rate is not None:
        plan.measured_probe(rate)
    return plan


def test_the_whole_split_when_it_fits_in_its_share() -> None:
    plan = planned(split=10_000, rate=1_000.0)  # 10 s of a 100 s budget: fits in 25 s
    assert plan.final_chars() == 10_000
    assert plan.reserve_s() == pytest.approx(10.0 * SAFETY + 0.5 + EXIT_SECONDS)


def test_a_split_too_big_for_its_share_is_planned_in_part() -> None:
    plan = planned(split=1_000_000, rate=1_000.0)
    assert plan.final_chars() == int(1_000.0 * FINAL_EVAL_SHARE * 100.0)
    assert plan.reserve_s() == pytest.approx(25.0 * SAFETY + 0.5 + EXIT_SECONDS)


def test_training_stops_when_the_next_step_would_eat_the_reserve() -> None:
    plan = planned()
    reserve = plan.reserve_s()
    assert not plan.should_stop(100.0 - reserve - 2.0, 1.0, evaluating_next=False)
    assert plan.should_stop(100.0 - reserve - 0.5, 1.0, evaluating_next=False)
    # A periodic evaluation and a save due with the next step count too.
    plan.measured_periodic(3.0)
    plan.measured_save(1.0)
    reserve = plan.reserve_s()
    assert not plan.should_stop(100.0 - reserve - 2.0, 1.0, evaluating_next=False)
    assert plan.should_stop(100.0 - reserve - 2.0, 1.0, evaluating_next=True)


def test_a_machine_that_gets_busy_moves_the_stop_earlier() -> None:
    plan = planned()
    plan.measured_step(1_000, 0.1)  # 10,000 chars/s at the start
    calm = plan.reserve_s()
    for _ in range(40):  # another process takes a core: training at half speed
        plan.measured_step(1_000, 0.2)
    assert plan.final_rate() == pytest.approx(500.0, rel=0.01)
    assert plan.reserve_s() - (0.5 + EXIT_SECONDS) == pytest.approx(
        2 * (calm - 0.5 - EXIT_SECONDS), rel=0.02
    )


def test_training_getting_faster_never_raises_the_evaluation_estimate() -> None:
    """Training speeds up after its first steps while the (warm-probed) evaluation does
    not: an estimate raised with it cut a final evaluation short (1x256 LSTM, 120 s)."""
    plan = planned()
    for _ in range(5):  # the baseline: the best of the first three steps
        plan.measured_step(1_000, 0.2)
    for _ in range(40):
        plan.measured_step(1_000, 0.01)
    assert plan.final_rate() == pytest.approx(1_000.0)
    for _ in range(40):  # slower than the baseline still lowers it
        plan.measured_step(1_000, 0.4)
    assert plan.final_rate() == pytest.approx(500.0, rel=0.01)


def test_before_any_step_the_probe_sizes_the_first_one() -> None:
    """A first step that cannot end before the reserve is not started (a busy machine)."""
    plan = planned(rate=1_000.0)  # inference chars/s: a step of 8,192 chars ~ 24.6 s
    assert plan.next_step_s(8_192) == pytest.approx(8_192 * 3.0 / 1_000.0)
    reserve = plan.reserve_s()
    assert plan.should_stop(100.0 - reserve - 20.0, plan.next_step_s(8_192), False)
    assert TimeBudget(100.0, 0.0, 10, final_eval=True).next_step_s(8_192) == 0.0


def test_the_first_steps_set_up_costs_are_not_the_baseline() -> None:
    plan = planned()
    plan.measured_step(1_000, 2.0)  # one-off kernel set-up
    assert plan.next_step_s(1_000) == pytest.approx(2.0)
    plan.measured_step(1_000, 0.1)
    assert plan.next_step_s(1_000) == pytest.approx(0.1), "not the set-up step's time"
    for _ in range(40):
        plan.measured_step(1_000, 0.1)
    assert plan.final_rate() == pytest.approx(1_000.0, rel=0.01)
    for _ in range(20):  # a busier machine: the estimate follows within a few steps
        plan.measured_step(1_000, 0.3)
    assert plan.next_step_s(1_000) == pytest.approx(0.3, rel=0.05)


def test_the_next_step_is_planned_as_slow_as_the_slowest_recent_one() -> None:
    """On a busy machine steps vary twofold; planning on the average overran the budget."""
    plan = planned()
    for seconds in (0.5, 0.5, 0.5, 0.5, 0.5, 1.2, 0.5, 0.5):
        plan.measured_step(1_000, seconds)
    assert plan.next_step_s(1_000) == pytest.approx(1.2)  # the slow one is among the last 4
    for _ in range(2):
        plan.measured_step(1_000, 0.5)
    assert plan.next_step_s(1_000) == pytest.approx(0.5)  # and is forgotten after that
    late = 100.0 - plan.reserve_s() - 1.0
    assert not plan.should_stop(late, plan.next_step_s(1_000), False)
    plan.measured_step(1_000, 1.2)
    assert plan.should_stop(late, plan.next_step_s(1_000), False)


def test_the_final_evaluation_leaves_room_to_save_and_exit() -> None:
    plan = planned()
    assert plan.final_eval_deadline() == pytest.approx(100.0 - 0.5 - EXIT_SECONDS)
    plan.measured_save(2.0)  # a slow disk: the exit's fsync of the metrics log is as slow
    assert plan.final_eval_deadline() == pytest.approx(100.0 - 2.0 - 2.0)
    plan.extend(5.0)  # a pause
    assert plan.final_eval_deadline() == pytest.approx(105.0 - 2.0 - 2.0)


def test_time_left_at_the_end_scores_more_of_the_split_never_less() -> None:
    """Training stopped early (a slow step planned for, then not taken): the time left goes
    to scoring more of the split, within the final evaluation's deadline."""
    plan = planned(split=200_000, rate=1_000.0, budget=100.0)
    share = plan.final_chars()
    assert share == int(1_000 * FINAL_EVAL_SHARE * 100)  # 25,000: a quarter of the budget
    deadline = plan.final_eval_deadline()
    assert plan.final_chars_at(deadline - 10.0) == share  # no more time than planned
    assert plan.final_chars_at(deadline - 60.0) == int(1_000 * 60.0 / SAFETY)  # 48,000
    assert plan.final_chars_at(-1_000.0) == 200_000  # never more than the split
    assert planned(rate=None).final_chars_at(0.0) == 10_000  # unmeasured: the whole split


def test_without_a_budget_nothing_is_planned() -> None:
    plan = TimeBudget(None, 0.0, 1_000_000, final_eval=True)
    assert plan.final_chars() == 1_000_000
    assert not plan.should_stop(1e9, 1.0, evaluating_next=True)
    assert plan.final_eval_deadline() is None
    assert not plan.worth_probing(0.0)


def test_no_final_evaluation_keeps_only_the_save() -> None:
    plan = TimeBudget(100.0, 0.0, 1_000_000, final_eval=False)
    plan.measured_probe(10.0)
    assert plan.reserve_s() == pytest.approx(0.5 + EXIT_SECONDS)
    assert not plan.worth_probing(0.0)


def test_an_unmeasured_rate_plans_the_whole_split() -> None:
    plan = planned(rate=None)
    assert plan.final_chars() == 10_000
    assert plan.worth_probing(97.0) and not plan.worth_probing(98.5)


@pytest.mark.parametrize("model_type", ["lstm", "transformer"])
@pytest.mark.parametrize("length", [3, 5_000])
def test_the_probe_measures_a_rate_and_leaves_the_mode(model_type: str, length: int) -> None:
    model = tiny_model(model_type, 11).train()
    ids = np.random.default_rng(0).integers(0, 11, size=length).astype(np.uint8)
    ids.setflags(write=False)  # a memory-mapped split is read-only
    rate = probe_final_eval_rate(model, ids, torch.device("cpu"), steps=4)
    assert rate > 0
    assert model.training
