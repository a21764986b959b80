"""The learning-rate range test: the sweep, the smoothing, divergence, the suggestion."""

from __future__ import annotations

import itertools
import math
from pathlib import Path

import pytest

from engine.config.train import TrainConfig
from engine.data.corpus import load_corpus
from engine.errors import ConfigError
from engine.models import make_config
from engine.training.lr_find import lr_find, lr_schedule, smooth, suggest
from tests.helpers import assert_user_error, cli_json, run_cli

TINY = {"embed_dim": 16, "hidden_size": 64, "num_layers": 1, "dropout": 0.0}


def test_schedule_is_exponential() -> None:
    lrs = lr_schedule(1e-4, 1.0, 5)
    assert lrs[0] == pytest.approx(1e-4) and lrs[-1] == pytest.approx(1.0)
    ratios = [b / a for a, b in itertools.pairwise(lrs)]
    assert ratios == pytest.approx([10.0] * 4)


def test_smoothing_is_bias_corrected() -> None:
    assert smooth([2.0, 2.0, 2.0]) == pytest.approx([2.0, 2.0, 2.0])  # no pull towards zero
    values = smooth([4.0, 0.0], beta=0.5)
    assert values == pytest.approx([4.0, (0.5 * 0.5 * 4.0) / (1 - 0.25)])


def test_suggestion_from_a_known_curve() -> None:
    lrs = [10.0 ** (-5 + i * 0.25) for i in range(17)]  # 1e-5 .. 1e-1
    # Flat, a steep fall between 1e-3 and 1e-2, the minimum at 1e-2, then a rise.
    curve = [4.0] * 8 + [3.9, 3.0, 2.2, 2.0, 1.9, 2.5, 3.5, 5.0, 8.0]
    suggestion, steepest, low = suggest(lrs, curve)
    assert low == pytest.approx(lrs[12])  # the minimum
    assert suggestion == pytest.approx(lrs[12] / 10)
    assert steepest == pytest.approx(lrs[8])  # the largest drop, 3.9 -> 3.0, starts there
    assert suggest(lrs[:2], curve[:2]) == (None, None, None)


@pytest.mark.slow
def test_tiny_model_gets_a_sane_rate_and_writes_nothing(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    corpus = load_corpus("verse")
    config = TrainConfig(batch_size=16, seq_len=32, device="cpu", seed=3)
    points: list[tuple] = []
    result = lr_find(
        corpus,
        make_config("lstm", **TINY),
        config,
        min_lr=1e-4,
        max_lr=10.0,
        steps=60,
        on_point=lambda *point: points.append(point),
    )
    assert result.stopped_by == "diverged"  # 10 is far too high for Adam
    assert len(points) == len(result.lrs) < 60
    assert result.smoothed == pytest.approx(smooth(result.losses))
    assert min(result.smoothed) < result.smoothed[0] - 0.5  # it did learn on the way
    assert 1e-3 <= result.suggestion <= 0.3
    assert result.steepest < result.min_loss_lr
    assert list(tmp_path.iterdir()) == []  # no run directory, no files


def test_bad_ranges() -> None:
    corpus_config = TrainConfig(device="cpu")
    for low, high in ((1e-2, 1e-3), (1e-3, 1e-3), (0.0, 1.0), (1e-3, math.inf)):
        with pytest.raises(ConfigError):
            lr_find(None, None, corpus_config, min_lr=low, max_lr=high)  # type: ignore[arg-type]


def test_cli_reversed_or_empty_range_is_one_line(cli_main) -> None:
    proc = cli_main("lr-find", "--corpus", "verse", "--min-lr", "0.1", "--max-lr", "0.01")
    assert_user_error(proc, "empty or reversed")
    proc = cli_main("lr-find", "--corpus", "verse", "--min-lr", "0.1", "--max-lr", "0.1")
    assert_user_error(proc, "empty or reversed")


@pytest.mark.slow
def test_cli_json() -> None:
    proc = run_cli(
        "lr-find", "--corpus", "verse", "--preset", "tiny", "--device", "cpu",
        "--steps", "20", "--max-lr", "0.1", "--json",
    )  # fmt: skip
    payload = cli_json(proc)
    assert payload["steps"] == len(payload["lrs"]) == len(payload["smoothed"]) == 20
    assert payload["stopped_by"] == "end"
    assert 1e-5 <= payload["suggestion"] <= 0.1
