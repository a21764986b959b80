"""Resuming a run: N steps, save, resume to 2N is 2N straight; what cannot be resumed says so."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from engine.config.train import TrainConfig
from engine.data.corpus import Corpus, load_corpus
from engine.errors import CheckpointError, ConfigError
from engine.training.events import StepEvent
from engine.training.trainer import Trainer
from tests.engine.test_trainer import Recorder, quick
from tests.helpers import tiny_config, write_markov


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Corpus:
    path, _ = write_markov(tmp_path_factory.mktemp("markov") / "markov.txt", 60_000, seed=3)
    return load_corpus(str(path))


@pytest.mark.parametrize(
    ("model_type", "batching"),
    [("lstm", "random"), ("lstm", "stateful"), ("transformer", "random")],
)
def test_resume_is_exact(corpus: Corpus, tmp_path: Path, model_type: str, batching: str) -> None:
    """N steps, save, resume to 2N == 2N straight: weights, optimizer, RNG, data, carry."""
    n = 20

    def config() -> TrainConfig:  # dropout on: the RNG state must be restored too
        return quick(max_steps=2 * n, eval_interval=7, batching=batching)

    def model():
        return tiny_config(model_type, dropout=0.1)

    straight = Recorder()
    full = Trainer(corpus, model(), config(), out_dir=tmp_path / "a", on_event=straight).run()

    first = Recorder()
    trainer = Trainer(corpus, model(), config(), out_dir=tmp_path / "b", on_event=first)
    first.hooks[n] = trainer.stop
    half = trainer.run()
    assert (half.steps, half.stopped_by) == (n, "stop")

    second = Recorder()
    resumed_trainer = Trainer(
        corpus, None, config(), out_dir=tmp_path / "b", on_event=second, resume=True
    )
    assert resumed_trainer.step == n
    resumed = resumed_trainer.run()

    assert resumed.steps == full.steps == 2 * n
    losses_straight = [e.loss for e in straight.of(StepEvent)]
    losses_resumed = [e.loss for e in first.of(StepEvent)] + [e.loss for e in second.of(StepEvent)]
    assert [e.step for e in second.of(StepEvent)] == list(range(n + 1, 2 * n + 1))
    assert np.allclose(losses_resumed, losses_straight, rtol=0, atol=1e-6)
    assert resumed.val_loss == pytest.approx(full.val_loss, abs=1e-6)
    for a, b in zip(
        Trainer(corpus, None, config(), out_dir=tmp_path / "a", resume=True).model.parameters(),
        resumed_trainer.model.parameters(),
        strict=True,
    ):
        assert torch.allclose(a, b, atol=1e-6)


def test_resume_with_nothing_to_resume(corpus: Corpus, tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="nothing to resume"):
        Trainer(corpus, None, quick(), out_dir=tmp_path / "empty", resume=True)
    (tmp_path / "empty").mkdir()
    with pytest.raises(CheckpointError, match="nothing to resume"):
        Trainer(corpus, None, quick(), out_dir=tmp_path / "empty", resume=True)


def test_resume_on_another_vocabulary(corpus: Corpus, tmp_path: Path) -> None:
    Trainer(corpus, tiny_config("lstm"), quick(max_steps=2), out_dir=tmp_path / "run").run()
    other_path = tmp_path / "other.txt"
    other_path.write_text("xyz " * 2000, encoding="utf-8")
    other = load_corpus(str(other_path))
    with pytest.raises(CheckpointError, match="vocabulary"):
        Trainer(other, None, quick(), out_dir=tmp_path / "run", resume=True)


def test_resume_needs_a_run_directory(corpus: Corpus) -> None:
    with pytest.raises(ConfigError):
        Trainer(corpus, None, quick(), resume=True)


def test_a_resumed_run_shows_its_own_way_to_the_end(corpus: Corpus, tmp_path: Path) -> None:
    """The bar (StepEvent.progress) counts this process's steps: 20 of 40 done before, the
    resumed run's first step is 1 of its 20, not 21 of 40 (an ETA from that read half)."""
    first = Recorder()
    trainer = Trainer(
        corpus, tiny_config("lstm"), quick(max_steps=40), out_dir=tmp_path, on_event=first
    )
    first.hooks[20] = trainer.stop
    trainer.run()
    second = Recorder()
    Trainer(corpus, None, quick(max_steps=40), out_dir=tmp_path, on_event=second, resume=True).run()
    steps = second.of(StepEvent)
    assert [e.step for e in steps[:2]] == [21, 22]
    assert [e.progress for e in steps[:2]] == pytest.approx([1 / 20, 2 / 20])
    assert steps[-1].progress == pytest.approx(1.0)
    assert steps[0].eta_s == pytest.approx(19 * steps[0].elapsed_s, rel=1e-6)
