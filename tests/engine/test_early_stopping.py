"""--patience: training on data that overfits stops by itself and keeps the best checkpoint."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from engine.config.train import TrainConfig
from engine.data.corpus import Corpus, load_corpus
from engine.errors import ConfigError
from engine.models import make_config
from engine.training.events import EvalEvent
from engine.training.trainer import Trainer
from tests.helpers import assert_user_error, run_cli

BIG = {"embed_dim": 16, "hidden_size": 128, "num_layers": 1, "dropout": 0.0}


@pytest.fixture(scope="module")
def noise(tmp_path_factory: pytest.TempPathFactory) -> Corpus:
    """3,000 uniformly random letters: nothing to learn but the training set by heart.

    The best possible val loss is log(8); a big model reaches it in a few steps and
    then memorises the training split, so val loss only goes up from there.
    """
    rng = np.random.default_rng(0)
    path = tmp_path_factory.mktemp("noise") / "noise.txt"
    path.write_text("".join(rng.choice(list("abcdefgh"), 3000)), encoding="utf-8")
    return load_corpus(str(path))


def config(**values: object) -> TrainConfig:
    base = dict(
        batch_size=16,
        seq_len=32,
        lr=1e-2,
        warmup_steps=0,
        max_steps=1000,
        eval_interval=10,
        eval_chars=300,
        device="cpu",
        patience=3,
    )
    base.update(values)
    return TrainConfig(**base)  # type: ignore[arg-type]


def test_overfitting_run_stops_and_keeps_the_best(noise: Corpus, tmp_path: Path) -> None:
    out = tmp_path / "run"
    events: list[object] = []
    trainer = Trainer(
        noise, make_config("lstm", **BIG), config(), out_dir=out, on_event=events.append
    )
    result = trainer.run()
    assert result.stopped_by == "early_stop"
    assert result.steps < 1000
    history = trainer.history
    losses = [h["val_loss"] for h in history]
    best_at = int(np.argmin(losses))
    assert len(history) - 1 - best_at == 3  # exactly `patience` evaluations after the best
    assert result.best_val_loss == pytest.approx(min(losses))
    evals = [e for e in events if isinstance(e, EvalEvent)]
    lefts = [e.evals_left for e in evals]
    assert lefts[-4:] == [3, 2, 1, 0]
    assert all(e.evals_left == 3 for e in evals if e.best)
    best_state = json.loads((out / "best" / "state.json").read_text(encoding="utf-8"))
    assert best_state["step"] == history[best_at]["step"]
    assert best_state["best_val_loss"] == pytest.approx(min(losses))
    last_state = json.loads((out / "last" / "state.json").read_text(encoding="utf-8"))
    assert last_state["step"] == result.steps > best_state["step"]

    # The count lives in the history: resuming a run that ran out of patience stops at once.
    resumed = Trainer(noise, None, config(), out_dir=out, resume=True).run()
    assert resumed.stopped_by == "early_stop" and resumed.steps == result.steps


def test_without_patience_the_same_run_goes_on(noise: Corpus) -> None:
    result = Trainer(noise, make_config("lstm", **BIG), config(patience=None, max_steps=80)).run()
    assert result.stopped_by == "max_steps" and result.steps == 80


@pytest.mark.parametrize("bad", [0, -2])
def test_patience_must_be_positive(bad: int) -> None:
    with pytest.raises(ConfigError, match="patience"):
        config(patience=bad).validate()


def test_cli_patience_zero_is_one_line(tmp_path: Path) -> None:
    proc = run_cli(
        "train", "--corpus", "verse", "--out", tmp_path / "r", "--preset", "tiny",
        "--device", "cpu", "--patience", "0",
    )  # fmt: skip
    assert_user_error(proc, "patience")
