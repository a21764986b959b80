"""The worker resolves the app's training form as `charlm-tui train` does (engine/training/
request.py): the same width fitting and regularisation, refusals before a run directory
exists, and the reasons sent with TrainStarted."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from engine.config.presets import preset
from engine.worker import protocol as p
from engine.worker.client import EngineClient
from engine.worker.runs import list_runs
from tests.engine.test_worker import Events


@pytest.fixture(autouse=True)
def _data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    data = tmp_path / "data"
    monkeypatch.setenv("CHARLM_DATA_DIR", str(data))
    return data


# What the form sends for the cpu preset with a 4 s time limit (every field, the preset's
# width among them).
CPU_FORM = {
    "model": {"num_layers": 1, "hidden_size": 512},
    "train": {
        **{k: preset("lstm", "cpu")[1][k] for k in ("lr", "batch_size", "seq_len", "max_steps")},
        "time_budget": 4.0,
        "eval_interval": 250,
        "patience": None,
        "items": False,
        "precision": "fp32",
    },
}


@asynccontextmanager
async def engine_on_markov() -> AsyncIterator[tuple[EngineClient, Events]]:
    """A thread engine with the markov sample loaded."""
    client = EngineClient("thread")
    await client.start()
    events = Events(client)
    try:
        client.send(p.LoadCorpus("markov", req=1))
        await events.until(lambda e: isinstance(e, p.CorpusLoaded))
        yield client, events
    finally:
        await client.stop()


async def test_the_form_trains_the_width_the_cli_would_and_says_why() -> None:
    """The cpu preset in 4 s: `train --preset cpu --time-budget 4` takes 256 wide (too short
    to probe a wider one); so does the app now, and TrainStarted carries the lines."""
    async with engine_on_markov() as (client, events):
        client.send(p.Train("lstm", "cpu", sample_every_s=0, **CPU_FORM))
        started = await events.until(lambda e: isinstance(e, p.TrainStarted))
        assert started.model["hidden_size"] == 256
        assert started.train["fit_width"] is True
        assert any(r.startswith("width and regularisation: fitted") for r in started.reasons)
        assert any(r.startswith("width 256: a ") for r in started.reasons)
        assert any("epochs of" in r for r in started.reasons)
        await events.until(lambda e: isinstance(e, p.TrainFinished), timeout=120)


async def test_bad_form_values_are_refused_before_a_run_directory_exists() -> None:
    async with engine_on_markov() as (client, events):
        for train, fragment in (({"seq_len": 100_000}, "seq_len"),
                                ({"device": "int8"}, "unknown device"),
                                ({"val_fraction": 0.99999}, "too short")):  # fmt: skip
            client.send(p.Train("lstm", "tiny", train=train))
            error = await events.until(lambda e: isinstance(e, p.ErrorEvent))
            assert fragment in error.message and "\n" not in error.message
            assert not any(isinstance(e, p.TrainStarted) for e in events.seen)
        assert list_runs() == []
