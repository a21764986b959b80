"""Labels of any size are trained on: tempered label sampling (engine/data/label_balance.py)
and the batch source that draws by it (engine/training/batches.py)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from engine.config.train import TrainConfig
from engine.data.label_balance import DEFAULT_LABEL_BALANCE, balance_note, label_shares
from engine.training.batches import BatchSource

SIZES = [2_000, 24_000, 6_000]  # label 1 is 12x label 0


def _source(balance: float | None, seed: int = 5) -> BatchSource:
    ids = np.concatenate([np.full(n, k, dtype=np.uint8) for k, n in enumerate(SIZES)])
    ends = np.cumsum(SIZES)
    segments = np.stack([ends - SIZES, ends, np.arange(3)], axis=1)
    config = TrainConfig(batch_size=4000, seq_len=16)
    if balance is not None:
        config.label_balance = balance
    return BatchSource(ids, config, torch.device("cpu"), seed, segments=segments)


def _drawn_shares(source: BatchSource, batches: int = 5) -> np.ndarray:
    counts = np.zeros(3)
    for _ in range(batches):
        inputs, targets, _ = source.next_labelled()
        rows = torch.cat([inputs, targets[:, -1:]], dim=1)
        assert (rows == rows[:, :1]).all()  # still inside one label
        counts += np.bincount(rows[:, 0].numpy(), minlength=3)
    return counts / counts.sum()


def test_label_shares_are_size_to_the_alpha() -> None:
    assert label_shares([1, 4, 0], 1.0) == pytest.approx([0.2, 0.8, 0.0])
    assert label_shares([1, 4, 0], 0.0) == pytest.approx([0.5, 0.5, 0.0])
    assert label_shares([1, 4], 0.5) == pytest.approx([1 / 3, 2 / 3])
    assert TrainConfig().label_balance == DEFAULT_LABEL_BALANCE == 0.5
    with pytest.raises(ValueError):
        label_shares([1, 2], 1.5)


@pytest.mark.parametrize("balance", [None, 0.0, 1.0, 0.3])
def test_the_batch_source_draws_labels_by_their_tempered_share(balance: float | None) -> None:
    source = _source(balance)
    alpha = DEFAULT_LABEL_BALANCE if balance is None else balance
    windows = [n - 16 for n in SIZES]  # whole windows each label can start
    expected = label_shares(windows, alpha)
    drawn = _drawn_shares(source)
    assert drawn == pytest.approx(expected, abs=0.015)
    if balance is None:  # the default: the 2k label is no longer drowned by the 24k one
        assert drawn[0] > 0.15 and drawn[1] < 0.6  # natural: 0.06 and 0.75


def test_windows_within_a_label_are_still_uniform() -> None:
    # Label 1's text counts up, so a window's first value says where it starts.
    ids = np.concatenate([np.zeros(100, dtype=np.int64), np.arange(1, 1001)])
    config = TrainConfig(batch_size=20_000, seq_len=10)
    segments = np.array([[0, 100, 0], [100, 1100, 1]])
    source = BatchSource(ids, config, torch.device("cpu"), 1, segments=segments)
    inputs, _, conditions = source.next_labelled()
    starts = inputs[conditions == 2, 0].numpy()
    assert starts.min() == 1 and starts.max() == 990  # every start, up to the last window
    histogram = np.bincount((starts - 1) // 99, minlength=10)
    assert histogram.min() > 0.8 * histogram.mean()


def test_the_same_seed_draws_the_same_batches() -> None:
    first = [t.clone() for t in _source(None, seed=9).next_labelled()]
    again = _source(None, seed=9).next_labelled()
    assert all(torch.equal(a, b) for a, b in zip(first, again, strict=True))


def test_the_note_states_the_rule_and_each_share() -> None:
    note = balance_note(["big", "small"], [9_000, 1_000], 0.5)
    assert "p ~ size^0.5" in note
    assert "small 25% (natural 10%)" in note and "big 75% (natural 90%)" in note
    assert "val loss still weights each label by its size" in note
