"""A small held-out split is scored whole by the periodic evaluation, in tiles: each target
once, each after some context, in windows no longer than the random ones."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from engine.training.eval_windows import TILE_UP_TO, WindowSampler, evaluate_windows
from engine.training.evaluate import evaluate_split
from tests.engine.test_evaluate import VOCAB, BigramLM, exact_bigram_loss, random_ids
from tests.helpers import tiny_model

CPU = torch.device("cpu")


@pytest.mark.parametrize("length", [2, 3, 40, 129, 130, 1000, 1001, 2049])
def test_every_target_of_a_small_split_is_scored_once(length: int) -> None:
    ids = random_ids(length)
    sampler = WindowSampler(ids, chars=1024, window=128, seed=3, device=CPU)
    assert sampler.scored is not None
    starts = [int(np.flatnonzero(np.all(_windows_at(ids, w), axis=1))[0]) for w in sampler.windows]
    counts = np.zeros(length, dtype=int)
    for start, mask in zip(starts, sampler.scored, strict=True):
        counts[start + 1 + np.flatnonzero(mask.numpy())] += 1
    assert counts[0] == 0 and (counts[1:] == 1).all()
    assert sampler.chars == length - 1
    assert sampler.windows.shape[1] <= 129  # the random windows' length: a context holds it


def _windows_at(ids: np.ndarray, window: torch.Tensor) -> np.ndarray:
    """Where in `ids` the window could start (one row per start, True where it matches)."""
    n = window.shape[0]
    starts = np.arange(len(ids) - n + 1)
    return ids[starts[:, None] + np.arange(n)] == window.numpy()[None, :]


def test_each_scored_target_has_a_quarter_window_of_context_after_the_first_tile() -> None:
    sampler = WindowSampler(random_ids(3000), chars=2000, window=64, seed=0, device=CPU)
    first_scored = sampler.scored.int().argmax(dim=1)
    assert int(first_scored[0]) == 0  # the split's start has no text before it
    assert (first_scored[1:] >= 16).all()


def test_tiles_score_exactly_what_the_whole_split_scores() -> None:
    ids = random_ids(5000)
    model = BigramLM(VOCAB, context=128)  # fails if a window overflows its context
    sampler = WindowSampler(ids, chars=4096, window=128, seed=1, device=CPU)
    result = evaluate_windows(model, sampler, None)
    assert result.chars == 4999
    assert result.loss == pytest.approx(exact_bigram_loss(model, ids), rel=1e-5)
    assert result.loss == pytest.approx(evaluate_split(model, ids).loss, rel=1e-5)


def test_the_seed_does_not_change_a_tiled_split() -> None:
    ids = random_ids(900)
    first = WindowSampler(ids, chars=512, window=32, seed=1, device=CPU)
    second = WindowSampler(ids, chars=512, window=32, seed=2, device=CPU)
    assert torch.equal(first.windows, second.windows)


def test_a_split_over_the_tiling_limit_keeps_random_windows() -> None:
    ids = random_ids(TILE_UP_TO * 640 + 50)
    sampler = WindowSampler(ids, chars=640, window=32, seed=9, device=CPU)
    assert sampler.scored is None and sampler.chars == 640


def test_a_recurrent_model_scores_tiles_close_to_the_carried_state_score() -> None:
    torch.manual_seed(0)
    model = tiny_model("lstm", VOCAB).eval()
    ids = random_ids(3000)
    tiled = evaluate_windows(model, WindowSampler(ids, 4096, 64, 0, CPU), None)
    whole = evaluate_split(model, ids)
    assert tiled.chars == whole.chars == 2999
    assert tiled.loss == pytest.approx(whole.loss, abs=0.01)
