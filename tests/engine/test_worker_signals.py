"""The engine process never loses a run to a signal or to its parent's death.

Real processes, real signals: the engine (EngineClient in process mode) trains a
tiny run that never saves on its own (no periodic checkpoint), then gets SIGTERM,
SIGHUP or SIGINT, or its parent is killed with SIGKILL; the run must be on disk,
loadable, at a step past where it was when the signal came.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from engine.worker import protocol as p
from engine.worker.client import EngineClient
from tests.engine.test_worker import Events, _alive
from tests.helpers import REPO

# Endless, and no checkpoint before the stop: whatever is on disk was saved by the stop.
ENDLESS = {"max_steps": None, "eval_interval": 1_000_000}


@pytest.fixture(autouse=True)
def _data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    data = tmp_path / "data"
    monkeypatch.setenv("CHARLM_DATA_DIR", str(data))
    monkeypatch.setenv("CHARLM_DEVICE", "cpu")
    return data


def _assert_saved(run_dir: str, at_least: int) -> int:
    from engine.runs.checkpoint import load_checkpoint

    checkpoint = load_checkpoint(run_dir, prefer="last", with_trainer=True)
    assert checkpoint.step >= at_least > 0
    assert checkpoint.trainer_tensors, "enough to resume exactly"
    leftovers = [f for f in Path(run_dir).iterdir() if ".tmp" in f.name]
    assert not leftovers, "no half-written files"
    return checkpoint.step


async def _training(
    client: EngineClient, events: Events
) -> tuple[p.TrainStarted, p.StepEvent, int]:
    """Start an endless tiny run; (its start, a step event at step 5 or later, the engine pid)."""
    client.send(p.LoadCorpus("markov", req=1))
    await events.until(lambda e: isinstance(e, p.CorpusLoaded))
    client.send(p.Train("lstm", "tiny", train=ENDLESS))
    started = await events.until(lambda e: isinstance(e, p.TrainStarted))
    step = await events.until(lambda e: isinstance(e, p.StepEvent) and e.step >= 5)
    assert client.pid is not None
    return started, step, client.pid


@pytest.mark.slow
@pytest.mark.parametrize(
    "number", [signal.SIGTERM, signal.SIGHUP, signal.SIGINT], ids=["SIGTERM", "SIGHUP", "SIGINT"]
)
async def test_a_signal_to_the_engine_saves_the_run(number: int) -> None:
    client = EngineClient("process")
    await client.start()
    events = Events(client)
    try:
        started, step, pid = await _training(client, events)
        os.kill(pid, number)
        signalled = time.monotonic()
        died = await events.until(lambda e: isinstance(e, p.EngineDied), timeout=30)
        assert time.monotonic() - signalled < 15, "the engine did not stop promptly"
    finally:
        await client.stop()
    assert died.exitcode == 128 + number
    assert signal.Signals(number).name in died.reason and "saved" in died.reason
    saved = _assert_saved(started.run_dir, step.step)
    checkpoints = [e for e in events.seen if isinstance(e, p.CheckpointEvent)]
    assert checkpoints and checkpoints[-1].step == saved, "the last save is the stop's"


@pytest.mark.slow
async def test_a_second_signal_while_saving_changes_nothing() -> None:
    client = EngineClient("process")
    await client.start()
    events = Events(client)
    try:
        started, step, pid = await _training(client, events)
        os.kill(pid, signal.SIGHUP)  # a closing terminal, then a service manager
        await events.until(lambda e: isinstance(e, p.StatusEvent) and e.state == "saving")
        os.kill(pid, signal.SIGTERM)
        os.kill(pid, signal.SIGHUP)
        died = await events.until(lambda e: isinstance(e, p.EngineDied), timeout=30)
    finally:
        await client.stop()
    assert died.exitcode == 128 + signal.SIGHUP
    _assert_saved(started.run_dir, step.step)


PARENT = """
import asyncio, json, os, sys, time
from engine.worker import protocol as p
from engine.worker.client import EngineClient

async def main():
    client = EngineClient("process")
    await client.start()
    holder = 0
    if sys.argv[2] == "hold":  # a child of ours keeps the pipe to the engine open
        holder = os.fork()
        if holder == 0:
            time.sleep(120)
            os._exit(0)
    client.send(p.LoadCorpus("markov", req=1))
    run_dir = None
    async for event in client.events():
        if isinstance(event, p.CorpusLoaded):
            client.send(p.Train("lstm", "tiny", train=json.loads(sys.argv[1])))
        elif isinstance(event, p.TrainStarted):
            run_dir = event.run_dir
        elif isinstance(event, p.StepEvent) and event.step >= 5 and run_dir:
            info = {"run_dir": run_dir, "engine": client.pid, "step": event.step}
            print(json.dumps({**info, "holder": holder}))
            sys.stdout.flush()
            await asyncio.sleep(3600)

if __name__ == "__main__":
    asyncio.run(main())
"""


@pytest.mark.slow
@pytest.mark.parametrize("pipe", ["breaks", "held"])
def test_the_engine_saves_and_exits_when_its_parent_is_killed(tmp_path: Path, pipe: str) -> None:
    """The pipe breaks; or a child of the dead parent holds it open, and the parent's pid
    changing is what tells the engine it is an orphan."""
    script = tmp_path / "parent.py"
    script.write_text(PARENT, encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    parent = subprocess.Popen(
        [sys.executable, str(script), json.dumps(ENDLESS), "hold" if pipe == "held" else "-"],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
        cwd=REPO,
    )
    engine = holder = None
    try:
        assert parent.stdout is not None
        line = parent.stdout.readline()
        assert line, "the parent never reported training"
        info = json.loads(line)
        engine, holder = int(info["engine"]), int(info["holder"]) or None
        parent.kill()  # SIGKILL: no clean-up of any kind in the parent
        parent.wait(10)
        deadline = time.monotonic() + 20
        while _alive(engine):
            assert time.monotonic() < deadline, "the orphaned engine trains on"
            time.sleep(0.1)
    finally:
        if parent.poll() is None:
            parent.kill()
        for pid in (engine, holder):
            if pid is not None and _alive(pid):
                os.kill(pid, signal.SIGKILL)
    _assert_saved(info["run_dir"], info["step"])
