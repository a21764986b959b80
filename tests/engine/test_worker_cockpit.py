"""The worker's cockpit commands: history for the plots, TensorBoard, the LR range test."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from engine.runs.metrics_log import METRICS_FILE, read_metrics
from engine.worker import protocol as p
from engine.worker.client import EngineClient
from tests.engine.test_worker import Events

TRAIN = {"max_steps": 20, "eval_interval": 10, "eval_chars": 512}


@pytest.fixture(autouse=True)
def _data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    data = tmp_path / "data"
    monkeypatch.setenv("CHARLM_DATA_DIR", str(data))
    return data


async def load(client: EngineClient, events: Events, run_dir: str) -> p.CheckpointLoaded:
    """LoadCheckpoint, again while the training thread is still winding down."""
    for attempt in range(50):
        client.send(p.LoadCheckpoint(run_dir, req=100 + attempt))
        event = await events.until(lambda e: isinstance(e, (p.CheckpointLoaded, p.ErrorEvent)))
        if isinstance(event, p.CheckpointLoaded):
            return event
        assert "stop training" in event.message, event
        await asyncio.sleep(0.1)
    raise AssertionError("the checkpoint never loaded")


@pytest.mark.slow
async def test_history_tensorboard_and_lr_find(tmp_path: Path) -> None:
    client = EngineClient("thread")
    await client.start()
    events = Events(client)
    try:
        client.send(p.LoadCorpus("markov", req=1))
        await events.until(lambda e: isinstance(e, p.CorpusLoaded))

        board = tmp_path / "board"
        tensorboard = pytest.importorskip("tensorboard") and str(board)
        client.send(
            p.Train("lstm", "tiny", train=TRAIN, sample_every_s=0, tensorboard_dir=tensorboard)
        )
        started = await events.until(lambda e: isinstance(e, p.TrainStarted))
        assert started.metrics == []  # a new run has no past
        await events.until(lambda e: isinstance(e, p.TrainFinished), timeout=120)
        assert any(board.glob("events.out.tfevents.*"))

        # Loading the run brings its whole history: every step and evaluation on disk.
        loaded = await load(client, events, started.run_dir)
        on_disk = read_metrics(Path(started.run_dir) / METRICS_FILE)
        assert loaded.metrics == on_disk
        assert [r["step"] for r in loaded.metrics if r["kind"] == "step"] == list(range(1, 21))

        # Resuming starts from that history too.
        client.send(p.Train("lstm", "tiny", train={**TRAIN, "max_steps": 22}, resume=True))
        again = await events.until(lambda e: isinstance(e, p.TrainStarted))
        assert [r["step"] for r in again.metrics if r["kind"] == "eval"] == [10, 20]
        await events.until(lambda e: isinstance(e, p.TrainFinished), timeout=120)

        # The range test: points, then the curve and a suggestion; the run is untouched.
        before = sorted(Path(started.run_dir).iterdir())
        client.send(p.LRFind("lstm", "tiny", min_lr=1e-4, max_lr=10.0, steps=25, req=3))
        done = await events.until(lambda e: isinstance(e, p.LRFindDone) and e.req == 3, 120)
        assert any(isinstance(e, p.LRFindPoint) for e in events.seen)
        assert done.result["stopped_by"] in ("diverged", "end")
        assert 1e-4 <= done.result["suggestion"] <= 10.0
        assert sorted(Path(started.run_dir).iterdir()) == before

        client.send(p.LRFind("lstm", "tiny", min_lr=1.0, max_lr=0.1, req=4))
        error = await events.until(lambda e: isinstance(e, p.ErrorEvent) and e.req == 4)
        assert "empty or reversed" in error.message
    finally:
        await client.stop()


@pytest.mark.slow
async def test_compare_reports_item_novelty(tmp_path: Path) -> None:
    from engine.data.items import split_item_sets
    from engine.data.names import synthetic_names

    names = tmp_path / "names.txt"
    text = "\n".join(synthetic_names(2000, seed=1)) + "\n"
    names.write_text(text, encoding="utf-8")
    client = EngineClient("thread")
    await client.start()
    events = Events(client)
    try:
        client.send(p.LoadCorpus(str(names), req=1))
        loaded = await events.until(lambda e: isinstance(e, p.CorpusLoaded))
        assert loaded.stats["items"]["items"] == 2000
        train = {**TRAIN, "items": True, "batching": "random"}
        client.send(p.Train("lstm", "tiny", train=train, sample_every_s=0))
        await events.until(lambda e: isinstance(e, p.TrainFinished), timeout=120)
        client.send(p.Compare("", 20, 3, 1, req=2))
        done = await events.until(lambda e: isinstance(e, p.CompareResult) and e.done, 120)
        cut = int(len(text) * 0.9)
        train_items, held_out = split_item_sets(text[:cut], text[cut:])
        for row in done.rows:
            novelty = row["item_novelty"]
            made = [s for s in row["samples"] if s]
            assert novelty["items"] == len(made) and "\n" not in "".join(made)
            fresh = [s for s in made if s not in train_items]
            assert novelty["novel_vs_train"] == pytest.approx(len(fresh) / len(made))
            unseen = [s for s in fresh if s not in held_out]
            assert novelty["novel_vs_all"] == pytest.approx(len(unseen) / len(made))
        assert len(done.rows[1]["samples"]) == 20  # items models compare 20 items a row
    finally:
        await client.stop()


@pytest.mark.slow
async def test_compare_on_a_held_out_prompt_scores_chrf_against_the_true_text() -> None:
    pytest.importorskip("sacrebleu")
    from engine.decoding.quality import chrf

    client = EngineClient("thread")
    await client.start()
    events = Events(client)
    try:
        client.send(p.LoadCorpus("markov", req=1))
        await events.until(lambda e: isinstance(e, p.CorpusLoaded))
        client.send(p.Train("lstm", "tiny", train=TRAIN, sample_every_s=0))
        await events.until(lambda e: isinstance(e, p.TrainFinished), timeout=120)
        client.send(p.Compare("", 30, 3, 5, req=2, held_out=True))
        done = await events.until(lambda e: isinstance(e, p.CompareResult) and e.done, 120)
        assert done.reference is not None and len(done.reference) == 30 and done.note == ""
        assert len(done.prompt) == 64 and done.reference_offset >= 0
        for row in done.rows:
            assert row["chrf"] == pytest.approx(chrf(row["samples"], [done.reference] * 3))
        # A typed prompt found in the held-out split gets the text after it as reference.
        client.send(p.Compare(done.prompt, 30, 3, 5, req=3))
        typed = await events.until(lambda e: isinstance(e, p.CompareResult) and e.done, 120)
        assert typed.reference == done.reference and typed.prompt == done.prompt
        # A prompt that is nowhere in it: no reference, no chrF, no note.
        client.send(p.Compare("zzzz qqqq zzzz", 30, 3, 5, req=4))
        plain = await events.until(lambda e: isinstance(e, p.CompareResult) and e.done, 120)
        assert plain.reference is None and all(r["chrf"] is None for r in plain.rows)
    finally:
        await client.stop()
