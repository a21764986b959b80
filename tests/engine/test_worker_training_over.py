"""After TrainFinished, training is over for the very next command: the training thread
may still be closing, but Train, LRFind and LoadCheckpoint sent at once are accepted
(they were refused with "training is already running" while the thread wound down)."""

from __future__ import annotations

import time

import pytest

from engine.worker import protocol as p
from engine.worker.client import EngineClient
from engine.worker.outbox import Outbox
from tests.engine.test_worker import Events, _data_dir  # noqa: F401  (autouse: a data dir per test)

TRAIN = {"max_steps": 6, "eval_interval": 3, "eval_chars": 256}


@pytest.fixture
def slow_wind_down(monkeypatch: pytest.MonkeyPatch) -> None:
    """The training thread lingers a second after sending TrainFinished (a slow disk)."""
    send = Outbox.send

    def lingering(self: Outbox, event: object) -> None:
        send(self, event)
        if isinstance(event, p.TrainFinished):
            time.sleep(1.0)

    monkeypatch.setattr(Outbox, "send", lingering)


async def test_commands_right_after_train_finished_are_accepted(slow_wind_down: None) -> None:
    client = EngineClient("thread")
    await client.start()
    events = Events(client)
    try:
        client.send(p.LoadCorpus("markov", req=1))
        await events.until(lambda e: isinstance(e, p.CorpusLoaded))
        client.send(p.Train("lstm", "tiny", train=TRAIN, sample_every_s=0))
        started = await events.until(lambda e: isinstance(e, p.TrainStarted))
        await events.until(lambda e: isinstance(e, p.TrainFinished), timeout=120)

        client.send(p.LRFind("lstm", "tiny", min_lr=1e-4, max_lr=10.0, steps=5, req=3))
        done = await events.until(
            lambda e: isinstance(e, (p.LRFindDone, p.ErrorEvent)) and e.req == 3, 120
        )
        assert isinstance(done, p.LRFindDone), done

        client.send(p.LoadCheckpoint(started.run_dir, req=4))
        loaded = await events.until(
            lambda e: isinstance(e, (p.CheckpointLoaded, p.ErrorEvent)) and e.req == 4, 60
        )
        assert isinstance(loaded, p.CheckpointLoaded), loaded

        client.send(p.Train("lstm", "tiny", train={**TRAIN, "max_steps": 8}, resume=True))
        again = await events.until(lambda e: isinstance(e, (p.TrainStarted, p.ErrorEvent)))
        assert isinstance(again, p.TrainStarted), again
        assert again.step == 6
        await events.until(lambda e: isinstance(e, p.TrainFinished), timeout=120)
    finally:
        await client.stop()
