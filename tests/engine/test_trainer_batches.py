"""Training batches: random contiguous windows, or parallel streams that continue."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from engine.training.batches import BatchSource
from tests.engine.test_trainer import quick


def positions(length: int) -> np.ndarray:
    """Ids that are their own positions: a batch shows exactly where it was cut."""
    return np.arange(length, dtype=np.int64)


def test_random_batches_are_contiguous_windows() -> None:
    config = quick(batch_size=8, seq_len=10)
    source = BatchSource(positions(1000), config, torch.device("cpu"), seed=1)
    for _ in range(50):
        inputs, targets, reset = source.next()
        assert inputs.shape == targets.shape == (8, 10)
        assert reset
        assert torch.equal(targets, inputs + 1)
        assert torch.equal(inputs[:, 1:], inputs[:, :-1] + 1)
        assert int(inputs.min()) >= 0 and int(targets.max()) <= 999


@pytest.mark.parametrize("length", [1000, 357, 8 * 11 + 3])
def test_stateful_batches_are_parallel_streams_that_continue(length: int) -> None:
    config = quick(batch_size=8, seq_len=10, batching="stateful")
    source = BatchSource(positions(length), config, torch.device("cpu"), seed=1)
    stream = length // 8
    previous = None
    resets = 0
    for _ in range(60):
        inputs, targets, reset = source.next()
        assert torch.equal(targets, inputs + 1)
        for row in range(8):  # every window stays inside its own stream
            assert int(inputs[row, 0]) >= row * stream
            assert int(targets[row, -1]) < (row + 1) * stream
        if reset:
            resets += 1
        elif previous is not None:
            assert torch.equal(inputs[:, 0], previous[:, -1]), "the stream continues"
        previous = targets
    assert resets >= 1
