"""The inspection commands through the worker queue (engine in a thread): plain events,
values equal to engine.inspect's, errors as ErrorEvents."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest

from engine.data.corpus import Vocab
from engine.inspect import attention_at, saliency_at, unit_activations
from engine.runs.checkpoint import save_checkpoint
from engine.worker import protocol as p
from engine.worker.client import EngineClient
from tests.engine.test_worker import Events
from tests.helpers import tiny_model

CHARS = sorted(set('abcdef "-\n'))
TEXT = 'ab "cd-ef" fa\nbe "a-b" cc\n' * 3


def _plain(value: object) -> bool:
    if isinstance(value, (list, tuple)):
        return all(_plain(v) for v in value)
    if isinstance(value, dict):
        return all(isinstance(k, str) and _plain(v) for k, v in value.items())
    return value is None or type(value) in (int, float, str, bool)


@pytest.fixture
def checkpoints(tmp_path: Path) -> dict[str, Path]:
    vocab = Vocab(CHARS)
    runs = {}
    for kind in ("lstm", "transformer"):
        runs[kind] = tmp_path / kind
        model = tiny_model(kind, len(vocab))
        save_checkpoint(runs[kind], model=model, vocab=vocab, meta={"step": 1})
    return runs


async def _load(client: EngineClient, events: Events, run: Path) -> None:
    client.send(p.LoadCheckpoint(str(run), req=p.new_request_id()))
    await events.until(lambda e: isinstance(e, p.CheckpointLoaded))


async def test_inspect_commands_round_trip(checkpoints: dict[str, Path], tmp_path) -> None:
    client = EngineClient("thread")
    await client.start()
    events = Events(client)
    try:
        await _load(client, events, checkpoints["lstm"])
        model = tiny_model("lstm", len(CHARS))
        expected = unit_activations(model, Vocab(CHARS).encode(TEXT), TEXT)

        client.send(p.InspectText(source="text", text=TEXT + "XYZ", unit="L1.cell.2", req=7))
        ready = await events.until(lambda e: isinstance(e, (p.InspectReady, p.ErrorEvent)))
        assert isinstance(ready, p.InspectReady), ready
        assert ready.text == TEXT and ready.dropped == "XYZ" and ready.req == 7
        assert ready.groups == [
            ["L0.cell", 16],
            ["L0.hidden", 16],
            ["L1.cell", 16],
            ["L1.hidden", 16],
        ]
        assert ready.unit == "L1.cell.2"
        assert np.allclose(ready.values, expected.unit("L1.cell.2"), atol=1e-6)

        client.send(p.InspectUnit("L0.hidden.5", req=8))
        values = await events.until(lambda e: isinstance(e, p.UnitValues))
        assert np.allclose(values.values, expected.unit("L0.hidden.5"), atol=1e-6)

        client.send(p.FindUnits('"[^"]*"', top=4, req=9))
        found = await events.until(lambda e: isinstance(e, p.UnitsFound))
        assert len(found.top) == 4 and found.covered == 36 and found.chars == len(TEXT)

        client.send(p.InspectSaliency(position=30, window=8, req=10))
        sal = await events.until(lambda e: isinstance(e, p.SaliencyScores))
        direct = saliency_at(model, Vocab(CHARS).encode(TEXT), 30, 8)
        assert sal.start == 22 and np.allclose(sal.scores, direct.scores, atol=1e-5)

        client.send(p.InspectAttention(position=5, req=11))
        error = await events.until(lambda e: isinstance(e, p.ErrorEvent))
        assert "needs a Transformer" in error.message and error.req == 11 and error.user

        client.send(p.FindUnits("(", req=12))
        error = await events.until(lambda e: isinstance(e, p.ErrorEvent) and e.req == 12)
        assert "invalid regular expression" in error.message

        client.send(p.InspectEmbeddings(neighbours=3, req=13))
        cmap = await events.until(lambda e: isinstance(e, p.CharMapReady))
        assert cmap.chars == CHARS and len(cmap.points) == len(CHARS)
        assert all(len(n) == 3 for n in cmap.neighbours)

        await _load(client, events, checkpoints["transformer"])
        client.send(p.InspectText(source="text", text=TEXT, req=14))
        await events.until(lambda e: isinstance(e, p.InspectReady) and e.req == 14)
        client.send(p.InspectAttention(position=40, req=15))
        att = await events.until(lambda e: isinstance(e, p.AttentionWeights))
        direct_att = attention_at(
            tiny_model("transformer", len(CHARS)), Vocab(CHARS).encode(TEXT), 40
        )
        assert att.start == direct_att.start == 17
        assert np.allclose(att.weights, direct_att.weights, atol=1e-6)
        assert np.allclose(np.asarray(att.weights).sum(-1), 1.0, atol=1e-6)

        client.send(p.InspectText(source="text", text="a" * 20_001, req=16))
        error = await events.until(lambda e: isinstance(e, p.ErrorEvent) and e.req == 16)
        assert "at most 20,000" in error.message

        inspect_events = (
            p.InspectReady, p.UnitValues, p.UnitsFound, p.AttentionWeights,
            p.SaliencyScores, p.CharMapReady,
        )  # fmt: skip
        seen = [e for e in events.seen if isinstance(e, inspect_events)]
        assert len(seen) == 7
        for event in seen:  # plain numbers and strings only: they cross a process boundary
            assert all(_plain(v) for v in vars(event).values()), type(event).__name__
            pickle.loads(pickle.dumps(event))
    finally:
        await client.stop()


async def test_inspect_without_a_model_or_text_is_an_error() -> None:
    client = EngineClient("thread")
    await client.start()
    events = Events(client)
    try:
        client.send(p.InspectText(source="text", text="abc", req=3))
        error = await events.until(lambda e: isinstance(e, p.ErrorEvent))
        assert "no model yet" in error.message
        client.send(p.InspectUnit("L0.cell.0", req=4))
        error = await events.until(lambda e: isinstance(e, p.ErrorEvent) and e.req == 4)
        assert "no text inspected" in error.message
    finally:
        await client.stop()


def test_the_protocol_states_the_inspect_text_limit_the_engine_enforces() -> None:
    from engine.inspect import MAX_TEXT_CHARS

    assert p.INSPECT_MAX_CHARS == MAX_TEXT_CHARS
