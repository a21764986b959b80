"""The periodic estimate gives a recurrent model the context the final score gives it.

The final whole-split score carries the model's state through the split; a window scored
from a cold state does not. A model that needs context then read far worse during
training than at its end (tinyshakespeare, 512-wide LSTM: 1.482 against 1.439).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from engine.config.train import TrainConfig
from engine.models import CharLM, ModelConfig
from engine.training.eval_windows import WindowSampler, evaluate_windows
from engine.training.evaluate import evaluate_split
from engine.training.setup_steps import DataSplit, make_eval_windows
from tests.engine.test_evaluate import VOCAB, BigramLM, random_ids

CPU = torch.device("cpu")
PERIOD = 48  # the text repeats every PERIOD characters


class PeriodLM(CharLM):
    """Knows the character PERIOD positions back when its state holds it, else nothing:
    a recurrent model whose loss depends only on how much text came before."""

    def __init__(self) -> None:
        super().__init__()
        self.config = ModelConfig(vocab_size=VOCAB)

    def forward(self, tokens: torch.Tensor, state: torch.Tensor | None = None):
        rows, length = tokens.shape
        # The state holds the last PERIOD tokens, shifted by one (0: nothing seen there).
        past = torch.zeros(1, rows, PERIOD) if state is None else state
        seen = torch.cat([past[0], tokens.float() + 1], dim=1)
        back = seen[:, 1 : length + 1].long()  # the character PERIOD before each target
        logits = torch.where(
            (back > 0)[..., None],
            10.0 * F.one_hot((back - 1).clamp_min(0), VOCAB).float(),
            torch.zeros(rows, length, VOCAB),
        )
        return logits, seen[:, -PERIOD:][None]

    def select_state(self, state, index):
        return state.index_select(1, index)


def periodic_text(length: int) -> np.ndarray:
    pattern = np.random.default_rng(0).integers(0, VOCAB, PERIOD)
    return np.resize(pattern, length).astype(np.uint8)


def test_a_window_after_its_context_reads_as_the_whole_split_does() -> None:
    ids = periodic_text(20_000)
    model = PeriodLM().eval()
    whole = evaluate_split(model, ids).loss
    assert whole < 0.01  # after the first period every character is known

    cold = evaluate_windows(model, WindowSampler(ids, 4096, 64, 0, CPU), None)
    warm = evaluate_windows(model, WindowSampler(ids, 4096, 64, 0, CPU, context=64), None)
    assert cold.chars == warm.chars == 4096
    assert cold.loss > 1.0  # the first PERIOD of each cold window: a uniform guess
    assert warm.loss == pytest.approx(whole, abs=0.01)


@pytest.mark.parametrize("length", [300, 2000, 6000])
def test_tiles_with_context_score_every_target_once_after_it(length: int) -> None:
    ids = periodic_text(length)
    sampler = WindowSampler(ids, 4096, 64, 0, CPU, context=64)
    assert sampler.scored is not None and sampler.chars == length - 1
    first_scored = sampler.scored.int().argmax(dim=1)
    assert (first_scored[1:] >= 64).all()  # every tile but the first reads 64 unscored
    result = evaluate_windows(PeriodLM().eval(), sampler, None)
    assert result.loss == pytest.approx(evaluate_split(PeriodLM().eval(), ids).loss, abs=1e-4)


def test_labelled_windows_keep_their_context_inside_one_label() -> None:
    ids = random_ids(3000)  # not periodic: each window is found where it was cut
    segments = np.array([[0, 1000, 0], [1000, 1100, 1], [1100, 3000, 2]])
    sampler = WindowSampler(ids, 640, 64, 0, CPU, segments=segments, context=64)
    # The shortest label holds 99 targets: the window keeps its 64, the context the rest.
    assert sampler.unscored == 35 and sampler.windows.shape[1] == 35 + 64 + 1
    starts = [int(np.flatnonzero(np.all(_at(ids, w), axis=1))[0]) for w in sampler.windows]
    for start, condition in zip(starts, sampler.conditions.tolist(), strict=True):
        begin, end, _ = segments[condition - 1]
        assert begin <= start and start + sampler.windows.shape[1] <= end


def _at(ids: np.ndarray, window: torch.Tensor) -> np.ndarray:
    n = window.shape[0]
    return ids[np.arange(len(ids) - n + 1)[:, None] + np.arange(n)] == window.numpy()[None, :]


def test_the_trainer_gives_context_to_models_whose_state_carries_it() -> None:
    data = DataSplit(train_ids=periodic_text(10_000), val_ids=periodic_text(20_000))
    config = TrainConfig(seq_len=64, eval_chars=4096)
    recurrent = make_eval_windows(data, config, CPU, PeriodLM())
    assert recurrent.unscored == 64 and recurrent.windows.shape[1] == 129
    # A block of 64 holds the window and nothing more; a block of 96 holds 32 more.
    assert make_eval_windows(data, config, CPU, BigramLM(VOCAB, context=64)).unscored == 0
    assert make_eval_windows(data, config, CPU, BigramLM(VOCAB, context=96)).unscored == 32
