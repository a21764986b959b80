"""Sampling parameters are checked once, where they are built (issue 20, item 2): a
Generate's SamplingParams pickles across the process boundary without being checked
again, and the engine's generation job uses it as it comes, echoing it in
GenerationStarted (a copy only when the engine draws the seed)."""

from __future__ import annotations

import pickle
from dataclasses import FrozenInstanceError, replace
from pathlib import Path

import pytest

from engine.data.corpus import Vocab
from engine.decoding.params import SamplingParams
from engine.errors import ConfigError
from engine.runs.checkpoint import save_checkpoint
from engine.worker import protocol as p
from engine.worker.client import EngineClient
from tests.engine.test_worker import Events
from tests.helpers import tiny_model

CHARS = sorted(set("abc \n"))


@pytest.fixture
def checks(monkeypatch: pytest.MonkeyPatch) -> list[SamplingParams]:
    """Every SamplingParams checked (a `__post_init__` call) while the test runs."""
    checked: list[SamplingParams] = []
    check = SamplingParams.__post_init__

    def counted(self: SamplingParams) -> None:
        checked.append(self)
        check(self)

    monkeypatch.setattr(SamplingParams, "__post_init__", counted)
    return checked


@pytest.fixture
def run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("CHARLM_DATA_DIR", str(tmp_path / "data"))
    vocab = Vocab(CHARS)
    save_checkpoint(
        tmp_path / "run", model=tiny_model("lstm", len(vocab)), vocab=vocab, meta={"step": 1}
    )
    return tmp_path / "run"


def test_bad_sampling_parameters_are_refused_where_they_are_built() -> None:
    with pytest.raises(ConfigError, match="top-p"):
        SamplingParams(temperature=0.5, top_p=2.0, length=5)


def test_a_generate_pickles_with_its_parameters_unchecked_again(checks: list) -> None:
    params = SamplingParams(strategy="beam", top_k=5, seed=3, stop=("\n\n",))
    command = p.Generate("ab", params, req=4, prefix="c", condition="verse", guidance=2.0)
    back = pickle.loads(pickle.dumps(command))
    assert back == command and isinstance(back.params, SamplingParams)
    assert back.params is not params and back.params.stop == ("\n\n",)
    started = pickle.loads(pickle.dumps(p.GenerationStarted("ab", params, req=4)))
    assert started.params == params
    assert checks == [params], "unpickling sets the fields without checking them again"
    with pytest.raises(FrozenInstanceError):
        back.params.seed = 4  # type: ignore[misc]


async def test_the_generation_job_uses_the_parameters_as_they_come(run: Path, checks: list) -> None:
    client = EngineClient("thread")  # commands are not pickled: the very object arrives
    await client.start()
    events = Events(client)
    try:
        client.send(p.LoadCheckpoint(str(run), req=1))
        await events.until(lambda e: isinstance(e, p.CheckpointLoaded))
        checks.clear()
        params = SamplingParams(length=5, seed=3, temperature=0.7)
        client.send(p.Generate("ab", params, req=2))
        started = await events.until(lambda e: isinstance(e, p.GenerationStarted))
        assert started.params is params
        done = await events.until(lambda e: isinstance(e, p.GenerationDone) and e.req == 2)
        assert len(done.text) == 5
        assert checks == [params], "checked once, where it was built, not by the engine"

        # No seed: the engine draws one and echoes a copy with it, the rest as sent.
        unseeded = SamplingParams(length=5)
        client.send(p.Generate("ab", unseeded, req=3))
        started = await events.until(lambda e: isinstance(e, p.GenerationStarted) and e.req == 3)
        assert isinstance(started.params.seed, int)
        assert started.params == replace(unseeded, seed=started.params.seed)
        await events.until(lambda e: isinstance(e, p.GenerationDone) and e.req == 3)
    finally:
        await client.stop()
