"""The worker queue in process mode: commands in, events out, errors as events, clean exits."""

from __future__ import annotations

import asyncio
import math
import os
import signal
import time
from pathlib import Path

import pytest

from engine.decoding.params import SamplingParams
from engine.worker import protocol as p
from engine.worker.client import EngineClient
from engine.worker.outbox import Outbox
from engine.worker.runs import list_runs

TRAIN = {"max_steps": 40, "eval_interval": 20, "eval_chars": 1024}


@pytest.fixture(autouse=True)
def _data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    data = tmp_path / "data"
    monkeypatch.setenv("CHARLM_DATA_DIR", str(data))
    return data


class Events:
    """Read a client's events until one matches, keeping everything seen."""

    def __init__(self, client: EngineClient) -> None:
        self.stream = client.events().__aiter__()
        self.seen: list[object] = []

    async def until(self, match, timeout: float = 60.0) -> object:
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                kinds = [type(e).__name__ for e in self.seen[-20:]]
                raise AssertionError(f"no matching event in {timeout} s; last: {kinds}")
            event = await asyncio.wait_for(self.stream.__anext__(), left)
            self.seen.append(event)
            if match(event):
                return event


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is gone for our purposes only once reaped; check its state.
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split()[2]
    except OSError:
        return False
    return state != "Z"


def _children() -> set[int]:
    """Child processes of this test process, other than multiprocessing's resource tracker."""
    me = os.getpid()
    children = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            cmdline = (stat.parent / "cmdline").read_bytes()
        except OSError:
            continue
        if int(fields[1]) == me and b"resource_tracker" not in cmdline and fields[0] != "Z":
            children.add(int(stat.parent.name))
    return children


async def test_process_engine_round_trip(tmp_path: Path) -> None:
    before = _children()
    client = EngineClient("process")
    await client.start()
    events = Events(client)
    try:
        ready = await events.until(lambda e: isinstance(e, p.EngineReady))
        assert ready.pid == client.pid != os.getpid()

        # A bad corpus is an error event with the engine's one-line message.
        empty = tmp_path / "empty.txt"
        empty.write_text("")
        client.send(p.LoadCorpus(str(empty), req=7))
        error = await events.until(lambda e: isinstance(e, p.ErrorEvent) and e.req == 7)
        assert error.user and error.command == "LoadCorpus" and "\n" not in error.message
        client.send(p.LoadCorpus(str(tmp_path / "missing.txt"), req=8))
        error = await events.until(lambda e: isinstance(e, p.ErrorEvent) and e.req == 8)
        assert "missing.txt" in error.message

        # Generating before there is a model says so.
        client.send(p.Generate("ab", SamplingParams(length=5), req=9))
        error = await events.until(lambda e: isinstance(e, p.ErrorEvent) and e.req == 9)
        assert "no model" in error.message

        client.send(p.LoadCorpus("markov", req=10))
        loaded = await events.until(lambda e: isinstance(e, p.CorpusLoaded))
        assert loaded.req == 10 and loaded.stats["vocab_size"] == 10

        client.send(p.Train("lstm", "tiny", train=TRAIN, sample_every_s=0.2))
        started = await events.until(lambda e: isinstance(e, p.TrainStarted))
        assert started.parameters > 0 and Path(started.run_dir).parent.parent == Path(
            os.environ["CHARLM_DATA_DIR"]
        )
        finished = await events.until(lambda e: isinstance(e, p.TrainFinished), timeout=120)
        assert finished.result["steps"] == 40
        steps = [e for e in events.seen if isinstance(e, p.StepEvent)]
        evals = [e for e in events.seen if isinstance(e, p.EvalEvent)]
        assert steps and steps[-1].step <= 40 and len(evals) >= 2
        assert any(isinstance(e, p.TrainSample) for e in events.seen)
        assert any(isinstance(e, p.CheckpointEvent) for e in events.seen)

        # Streamed generation: chunks with per-char probabilities, then done.
        client.send(p.Generate("abc", SamplingParams(length=60, seed=3, temperature=0.7), req=11))
        done = await events.until(lambda e: isinstance(e, p.GenerationDone) and e.req == 11)
        chunks = [e for e in events.seen if isinstance(e, p.GenerationChunk) and e.req == 11]
        text = "".join(c.text for c in chunks)
        assert text == done.text and len(text) == 60
        probs = [q for c in chunks for q in c.model_probs]
        tops = [t for c in chunks for t in c.tops]
        assert len(probs) == 60 and all(0.0 <= q <= 1.0 for q in probs)
        assert all(1 <= len(t) <= 5 and isinstance(t[0][0], str) for t in tops)

        # Beam search is scored afterwards so it gets colours too.
        client.send(
            p.Generate("abc", SamplingParams(strategy="beam", beam_width=3, length=20), req=12)
        )
        done = await events.until(lambda e: isinstance(e, p.GenerationDone) and e.req == 12)
        assert len(done.text) == 20 and done.beams and done.beams[0]["text"] == done.text
        chunks = [e for e in events.seen if isinstance(e, p.GenerationChunk) and e.req == 12]
        assert "".join(c.text for c in chunks) == done.text

        client.send(p.Generate("abc", SamplingParams(temperature=0.5, length=5), req=16))
        sampling = await events.until(lambda e: isinstance(e, p.GenerationStarted) and e.req == 16)
        assert sampling.params.temperature == 0.5
        await events.until(lambda e: isinstance(e, p.GenerationDone) and e.req == 16)

        client.send(p.Evaluate(req=13))
        evaluated = await events.until(lambda e: isinstance(e, p.Evaluated))
        # Learned something: clearly better than uniform guessing over the 10 characters.
        assert evaluated.req == 13 and 0 < evaluated.loss < math.log(10) - 0.2

        client.send(p.ListRuns())
        runs = await events.until(lambda e: isinstance(e, p.RunsListed))
        assert [r["run_dir"] for r in runs.runs] == [started.run_dir]

        client.send(p.LoadCheckpoint(started.run_dir, req=14))
        restored = await events.until(lambda e: isinstance(e, p.CheckpointLoaded))
        assert restored.step == 40 and restored.history and restored.vocab_matches_corpus

        # Continue the loaded run for a few more steps.
        client.send(p.Train("lstm", "tiny", train={**TRAIN, "max_steps": 50}, resume=True))
        again = await events.until(lambda e: isinstance(e, p.TrainStarted))
        assert again.step == 40 and again.run_dir == started.run_dir
        result = await events.until(lambda e: isinstance(e, p.TrainFinished), timeout=120)
        assert result.result["steps"] == 50
    finally:
        pid = client.pid
        await client.stop()
    assert pid is not None and not _alive(pid)
    assert _children() <= before


async def test_pause_resume_stop_and_cancel() -> None:
    client = EngineClient("process")
    await client.start()
    events = Events(client)
    try:
        client.send(p.Pause())
        error = await events.until(lambda e: isinstance(e, p.ErrorEvent))
        assert "nothing is training" in error.message
        client.send(p.LoadCorpus("markov", req=1))
        await events.until(lambda e: isinstance(e, p.CorpusLoaded))
        client.send(p.Train("gru", "tiny", train={"max_steps": None, "eval_interval": 1000}))
        await events.until(lambda e: isinstance(e, p.StepEvent))
        client.send(p.Pause())
        await events.until(lambda e: isinstance(e, p.StatusEvent) and e.state == "paused")
        # Generation works while training is paused (or running), from the latest weights.
        client.send(p.Generate("", SamplingParams(length=2000, seed=1), req=5))
        await events.until(lambda e: isinstance(e, p.GenerationChunk) and e.req == 5)
        client.send(p.Cancel(5))
        done = await events.until(lambda e: isinstance(e, p.GenerationDone) and e.req == 5)
        assert done.cancelled and len(done.text) < 2000
        client.send(p.Resume())
        await events.until(lambda e: isinstance(e, p.StatusEvent) and e.state == "training")
        client.send(p.SaveCheckpoint(req=6))
        saved = await events.until(lambda e: isinstance(e, p.CheckpointSaved))
        from engine.runs.checkpoint import load_checkpoint

        checkpoint = load_checkpoint(saved.path, with_trainer=True)
        assert checkpoint.step > 0 and checkpoint.trainer_tensors, "enough to resume"
        assert Path(saved.path).parent.joinpath("last").resolve() == Path(saved.path).resolve()
        client.send(p.Stop())
        finished = await events.until(lambda e: isinstance(e, p.TrainFinished), timeout=60)
        assert finished.result["stopped_by"] == "stop"
    finally:
        await client.stop()


async def test_killed_engine_is_reported_and_restarts() -> None:
    client = EngineClient("process")
    await client.start()
    events = Events(client)
    try:
        await events.until(lambda e: isinstance(e, p.EngineReady))
        old = client.pid
        assert old is not None
        os.kill(old, signal.SIGKILL)
        died = await events.until(lambda e: isinstance(e, p.EngineDied))
        assert "SIGKILL" in died.reason and not client.running
        assert not client.send(p.ListRuns())
        await client.restart()
        ready = await events.until(lambda e: isinstance(e, p.EngineReady))
        assert ready.pid == client.pid != old
        client.send(p.ListRuns())
        await events.until(lambda e: isinstance(e, p.RunsListed))
    finally:
        await client.stop()


def test_outbox_coalesces_metrics_and_batches_chars() -> None:
    sent: list[object] = []
    outbox = Outbox(sent.append)
    for step in range(1, 501):
        outbox.latest("step", p.StepEvent(step, 500, 1.0, 0.1, 1.0, 0.0, None, step / 500))
    for _ in range(100):
        outbox.chars(3, "a", 0.5, 0.4, [("a", 0.4)])
    outbox.send(p.GenerationDone("a" * 100, 100, 0.1, 1000.0, req=3))
    outbox.close()
    steps = [e for e in sent if isinstance(e, p.StepEvent)]
    chunks = [e for e in sent if isinstance(e, p.GenerationChunk)]
    assert len(steps) <= 2 and steps[-1].step == 500
    assert sum(len(c.text) for c in chunks) == 100 and len(chunks) <= 3
    assert isinstance(sent[-1], p.GenerationDone)  # order kept: chunks before done


def test_list_runs_reads_state_without_torch(tmp_path: Path) -> None:
    run = tmp_path / "runs" / "verse-lstm-1"
    step = run / "step-00000010-abc"
    step.mkdir(parents=True)
    (step / "state.json").write_text(
        '{"step": 10, "model": {"model_type": "lstm"}, "corpus": {"name": "verse"},'
        ' "history": [{"step": 10, "val_loss": 1.5}], "best_val_loss": 1.5, "saved_at": 5}'
    )
    (run / "last").symlink_to(step.name)
    (tmp_path / "runs" / "junk").mkdir()
    runs = list_runs(tmp_path / "runs")
    assert [(r["name"], r["step"], r["val_loss"]) for r in runs] == [("verse-lstm-1", 10, 1.5)]


async def test_two_saves_back_to_back_hold_the_weights_of_their_steps(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Case 3: two saves arriving together each hold one step's weights and optimizer
    state (those of a run that was never interrupted), and training goes on after them."""
    import torch

    from engine.runs import checkpoint as checkpoint_module

    # Keep every checkpoint (a save prunes those no tag names) to compare both afterwards.
    monkeypatch.setattr(checkpoint_module, "_prune", lambda run_dir: None)
    # A slow disk: each save takes a while, long enough for training to move on under
    # a save that does not hold the trainer still.
    real_save_model = checkpoint_module.save_model

    def slow_save_model(*args, **kwargs):
        time.sleep(1.0)
        return real_save_model(*args, **kwargs)

    monkeypatch.setattr(checkpoint_module, "save_model", slow_save_model)

    from engine.config.train import TrainConfig
    from engine.data.corpus import load_corpus
    from engine.models import make_config
    from engine.runs.checkpoint import load_checkpoint, optimizer_tensors
    from engine.training.events import StepEvent
    from engine.training.trainer import Trainer

    client = EngineClient("thread")
    await client.start()
    events = Events(client)
    train = {"max_steps": 400, "eval_interval": 1000, "final_eval": False, "device": "cpu"}
    try:
        client.send(p.LoadCorpus("markov", req=1))
        await events.until(lambda e: isinstance(e, p.CorpusLoaded))
        client.send(p.Train("lstm", "tiny", train=train, sample_every_s=0))
        started = await events.until(lambda e: isinstance(e, p.TrainStarted))
        await events.until(lambda e: isinstance(e, p.StepEvent) and e.step >= 3)
        client.send(p.SaveCheckpoint(req=2))
        client.send(p.SaveCheckpoint(req=3))
        # The two saves run side by side, so their answers may come in either order.
        saved: dict[int, p.CheckpointSaved] = {}

        def both_saved(event: object) -> bool:
            if isinstance(event, p.CheckpointSaved):
                saved[event.req] = event
            return len(saved) == 2

        await events.until(both_saved)
        first, second = saved[2], saved[3]
        later = await events.until(
            lambda e: isinstance(e, p.StepEvent) and e.step > load_checkpoint(second.path).step + 2
        )
        assert later.step > 0, "training continued after the saves"
        client.send(p.Stop())
        await events.until(lambda e: isinstance(e, p.TrainFinished), timeout=60)
    finally:
        await client.stop()

    corpus = load_corpus("markov")
    model_values = {k: v for k, v in started.model.items() if k != "model_type"}
    for saved in (first, second):
        checkpoint = load_checkpoint(saved.path, with_trainer=True)
        target = checkpoint.step
        assert target >= 3

        holder: list[Trainer] = []

        def stop_at(event: object, target: int = target, holder: list = holder) -> None:
            if isinstance(event, StepEvent) and event.step == target:
                holder[0].stop()

        reference = Trainer(
            corpus,
            make_config("lstm", **model_values),
            TrainConfig.from_dict(started.train),
            on_event=stop_at,
        )
        holder.append(reference)
        reference.run()
        assert reference.step == target
        for name, tensor in reference.model.state_dict().items():
            assert torch.equal(checkpoint.model.state_dict()[name], tensor), (target, name)
        moments, _ = optimizer_tensors(reference.optimizer)
        for name, tensor in moments.items():
            assert torch.equal(checkpoint.trainer_tensors[name], tensor), (target, name)


async def test_evaluate_uses_the_models_own_validation_split(tmp_path: Path) -> None:
    """Audit: Evaluate scores the held-out split the model was trained with (here 30%),
    not the default 10%, for a loaded checkpoint."""
    from engine.config.train import TrainConfig
    from engine.data.corpus import load_corpus
    from tests.helpers import tiny_config

    corpus = load_corpus("markov")
    from engine.training.trainer import Trainer

    config = TrainConfig(
        batch_size=4, seq_len=16, max_steps=3, eval_interval=3, eval_chars=256,
        device="cpu", precision="fp32", val_fraction=0.3, final_eval=False,
    )  # fmt: skip
    Trainer(corpus, tiny_config("lstm"), config, out_dir=tmp_path / "run").run()
    client = EngineClient("thread")
    await client.start()
    events = Events(client)
    try:
        client.send(p.LoadCorpus("markov", req=1))
        await events.until(lambda e: isinstance(e, p.CorpusLoaded))
        client.send(p.LoadCheckpoint(str(tmp_path / "run"), req=2))
        await events.until(lambda e: isinstance(e, p.CheckpointLoaded))
        client.send(p.Evaluate(req=3))
        evaluated = await events.until(lambda e: isinstance(e, p.Evaluated) and e.req == 3)
    finally:
        await client.stop()
    held_out = len(corpus.split(0.3)[1])
    assert held_out != len(corpus.split(0.1)[1])
    assert evaluated.chars in (held_out, held_out - 1)


async def test_a_run_whose_metrics_file_is_a_pipe_still_loads(tmp_path: Path) -> None:
    """Issue 19: a metrics.jsonl planted as a named pipe costs the plots, never the model
    (and never a hang): the run loads, with no history to plot."""
    from engine.config.train import TrainConfig
    from engine.data.corpus import load_corpus
    from engine.training.trainer import Trainer
    from tests.helpers import tiny_config

    config = TrainConfig(
        batch_size=4, seq_len=16, max_steps=3, eval_interval=3, eval_chars=256,
        device="cpu", precision="fp32", final_eval=False,
    )  # fmt: skip
    run = tmp_path / "run"
    Trainer(load_corpus("markov"), tiny_config("lstm"), config, out_dir=run).run()
    (run / "metrics.jsonl").unlink()
    os.mkfifo(run / "metrics.jsonl")
    client = EngineClient("thread")
    await client.start()
    events = Events(client)
    try:
        client.send(p.LoadCheckpoint(str(run), req=1))
        loaded = await events.until(
            lambda e: isinstance(e, (p.CheckpointLoaded, p.ErrorEvent)), timeout=20
        )
    finally:
        await client.stop()
    assert isinstance(loaded, p.CheckpointLoaded), loaded
    assert loaded.step == 3
    assert loaded.metrics == []
