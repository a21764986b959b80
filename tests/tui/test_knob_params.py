"""The knobs turn into one SamplingParams (issue 20, item 2): built once, where the knob
values become parameters, so every value the knobs can hold must make a valid one,
saved knobs included (a hostile app-state must never crash the app)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from charlm_tui.app import CharLMApp
from charlm_tui.panes.generation import GenerationPane
from charlm_tui.state.app_state import state_file
from charlm_tui.widgets.knobs import KNOBS, default_values, sampling_params
from engine.decoding.params import SEED_LIMIT, STRATEGIES, SamplingParams

SIZE = (120, 36)


def test_the_knob_values_become_one_sampling_params() -> None:
    values = {**default_values(), "top_k": 0, "top_p": 1.0, "min_p": 0.0, "seed": 7}
    assert sampling_params(values) == SamplingParams(
        strategy="sample",
        temperature=0.8,
        top_k=None,  # off
        top_p=None,  # off
        min_p=None,  # off
        repetition_penalty=1.0,
        beam_width=5,
        length=200,
        seed=7,
    )
    on = {**values, "top_k": 10, "top_p": 0.9, "min_p": 0.05, "strategy": "beam"}
    params = sampling_params(on)
    assert (params.top_k, params.top_p, params.min_p, params.strategy) == (10, 0.9, 0.05, "beam")


def test_every_value_on_every_ladder_makes_valid_parameters() -> None:
    for knob in KNOBS:
        for value in knob.ladder:
            for strategy in STRATEGIES:
                sampling_params({**default_values(), "strategy": strategy, knob.name: value})


@pytest.mark.timeout(60)
@pytest.mark.parametrize("seed", [float("inf"), SEED_LIMIT + 1])
async def test_saved_knobs_that_make_no_valid_parameters_are_skipped(
    seed: float, data_dir: Path
) -> None:
    knobs = {"seed": seed, "temperature": 0.05, "top_k": -3, "strategy": "nucleus"}
    data_dir.mkdir(parents=True, exist_ok=True)
    state_file().write_text(json.dumps({"version": 1, "knobs": knobs}), encoding="utf-8")
    app = CharLMApp(engine_mode="thread")
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        pane = app.query_one(GenerationPane)
        assert pane.values == default_values()  # each value skipped: the defaults stay
        assert sampling_params(pane.values) == sampling_params(default_values())


@pytest.mark.timeout(60)
async def test_the_seed_stops_at_its_limit(data_dir: Path) -> None:
    data_dir.mkdir(parents=True, exist_ok=True)
    knobs = {"seed": SEED_LIMIT}
    state_file().write_text(json.dumps({"version": 1, "knobs": knobs}), encoding="utf-8")
    app = CharLMApp(engine_mode="thread")
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        pane = app.query_one(GenerationPane)
        assert pane.values["seed"] == SEED_LIMIT
        pane.action_seed(1)
        assert pane.values["seed"] == SEED_LIMIT
        assert sampling_params(pane.values).seed == SEED_LIMIT
