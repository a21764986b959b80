"""The run's result is its best model: reported, scored on the whole split, and stopped by default.

Noise (uniform random letters) has nothing to learn: a big model reaches log(8) in
a few steps and then memorises the training split, so the val curve turns up.
Text from a fixed order-2 Markov chain has structure a small model keeps learning
for far longer than these runs, so its val curve never turns up.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from engine.config.train import TrainConfig
from engine.data.corpus import Corpus, load_corpus
from engine.models import make_config
from engine.runs.checkpoint import load_checkpoint
from engine.training.best_model import past_best_stop
from engine.training.evaluate import evaluate_split
from engine.training.trainer import Trainer
from tests.engine import test_early_stopping as stopping

BIG = stopping.BIG
noise = stopping.noise  # the fixture: 3,000 uniformly random letters

SMALL = {"embed_dim": 16, "hidden_size": 32, "num_layers": 1, "dropout": 0.0}


@pytest.fixture(scope="module")
def markov(tmp_path_factory: pytest.TempPathFactory) -> Corpus:
    """300,000 chars of an order-2 chain over 20 letters, each pair allowing 4 next ones:
    400 contexts a small model learns one by one, its val loss falling all through."""
    rng = np.random.default_rng(1)
    letters = np.array(list("abcdefghijklmnopqrst"))
    n = len(letters)
    table = np.array([rng.choice(n, 4, replace=False) for _ in range(n * n)])
    ids = [0, 1]
    for draw in rng.integers(0, 4, 300_000).tolist():
        ids.append(int(table[ids[-2] * n + ids[-1], draw]))
    path = tmp_path_factory.mktemp("markov") / "markov.txt"
    path.write_text("".join(letters[ids]), encoding="utf-8")
    return load_corpus(str(path))


def config(**values: object) -> TrainConfig:
    """test_early_stopping's settings with a time budget instead of steps and patience."""
    return stopping.config(**{"patience": None, "max_steps": None, "time_budget": 60.0, **values})


def test_an_overfitting_budgeted_run_stops_and_reports_its_best_model(
    noise: Corpus, tmp_path: Path
) -> None:
    out = tmp_path / "run"
    trainer = Trainer(noise, make_config("lstm", **BIG), config(), out_dir=out)
    result = trainer.run()
    history = trainer.history
    best = min(history, key=lambda h: h["val_loss"])
    # Stopped by default, long before the 60 s budget, once past the best for as long as
    # it took to reach it.
    assert result.stopped_by == "overfitting", result.stopped_by
    assert result.elapsed_s < 30
    assert result.steps - best["step"] >= 0.5 * result.steps
    assert "overfitting" in (result.stop_note or "")
    assert f"step {best['step']:,}" in result.stop_note
    # The result is the best evaluation's model, scored on the whole split.
    assert result.reported == "best"
    assert result.best_step == best["step"] < result.steps
    assert result.best_val_loss == pytest.approx(best["val_loss"])
    assert result.last_val_loss == pytest.approx(history[-1]["val_loss"])
    assert result.last_val_loss > result.best_val_loss
    assert result.val_chars == result.val_split_chars and not result.partial_eval
    saved_best = load_checkpoint(out, "cpu", prefer="best")
    assert saved_best.step == best["step"]
    assert result.best_checkpoint == str(saved_best.path)
    whole = evaluate_split(saved_best.model, trainer.val_ids, trainer.device)
    assert result.val_loss == pytest.approx(whole.loss, abs=1e-6)
    last_weights = evaluate_split(trainer.model, trainer.val_ids, trainer.device)
    assert last_weights.loss > result.val_loss + 0.01  # the last weights are worse
    # Generating after the run uses the result, not the last weights.
    after = trainer.snapshot()
    for name, value in saved_best.model.state_dict().items():
        assert after.state_dict()[name].equal(value)
    # The last weights stay for --resume, which continues from them.
    last_state = json.loads((out / "last" / "state.json").read_text(encoding="utf-8"))
    assert last_state["step"] == result.steps
    # The final figure saved with them is the best's, and says so.
    assert last_state["final_val"]["val_loss"] == pytest.approx(result.val_loss)
    assert last_state["final_val"]["val_model_step"] == best["step"]
    resumed = Trainer(noise, None, config(time_budget=None, max_steps=result.steps + 5),
                      out_dir=out, resume=True)  # fmt: skip
    assert resumed.step == result.steps
    assert resumed.run().steps == result.steps + 5


def test_the_same_run_without_the_default_stop_trains_to_its_end(noise: Corpus) -> None:
    cfg = config(time_budget=4.0, stop_past_best=False)
    trainer = Trainer(noise, make_config("lstm", **BIG), cfg)
    result = trainer.run()
    assert result.stopped_by == "time_budget"
    # The closing estimate of the last weights and the best's final evaluation fit the budget.
    assert result.elapsed_s <= 4.0 + 1.0
    # Without a run directory the best weights come from memory.
    assert result.reported == "best" and result.best_step < result.steps
    assert result.val_loss < result.last_val_loss
    assert result.best_checkpoint is None


def test_a_run_still_improving_is_never_stopped(markov: Corpus) -> None:
    # lr 1e-3, evaluated every 50 steps: at 3e-3 every 20 a fast CPU reached a plateau
    # (1.969, 1.967, 1.968, ...) where noise turned the curve up, so the run was no
    # longer "still improving"; at 1e-3 it is 2.23 and falling at 4,300 steps in 8 s.
    cfg = config(time_budget=8.0, lr=1e-3, eval_chars=4096, eval_interval=50)
    trainer = Trainer(markov, make_config("lstm", **SMALL), cfg)
    result = trainer.run()
    assert result.stopped_by == "time_budget"
    assert result.stop_note is None
    assert result.reported == "last" and result.best_step == trainer.history[-1]["step"]
    assert result.last_val_loss == result.val_loss
    assert len(trainer.history) >= 5
    assert trainer.history[-1]["val_loss"] < trainer.history[0]["val_loss"] - 0.3


def record(step: int, loss: float, best: bool) -> dict:
    return {"step": step, "val_loss": loss, "best": best}


def history_of(losses: list[float], every: int = 250) -> list[dict]:
    out, best = [], math.inf
    for i, loss in enumerate(losses, 1):
        out.append(record(i * every, loss, loss < best))
        best = min(best, loss)
    return out


def test_the_default_stop_rule() -> None:
    # Overfitting, as the names list did: best at step 250, then clearly up.
    assert past_best_stop(history_of([2.00, 2.05, 2.10])) is not None
    assert "step 250" in past_best_stop(history_of([2.00, 2.05, 2.10]))
    # One evaluation past the best is not enough, nor a rise within noise.
    assert past_best_stop(history_of([2.00, 2.10])) is None
    assert past_best_stop(history_of([2.00, 2.03, 2.03, 2.03])) is None
    # Up, but still less time past the best than before it.
    assert past_best_stop(history_of([3.0, 2.5, 2.2, 2.0, 2.1, 2.1])) is None
    assert past_best_stop(history_of([3.0, 2.5, 2.2, 2.0, 2.1, 2.1, 2.1, 2.1])) is not None
    # A curve still improving (noisily) never stops.
    rng = np.random.default_rng(0)
    losses = list(3.0 * np.exp(-np.arange(60) / 30) + 1.4 + rng.normal(0, 0.01, 60))
    history = history_of(losses)
    assert all(past_best_stop(history[:i]) is None for i in range(1, len(history) + 1))
    # A flat plateau with noise never stops either.
    flat = history_of(list(1.5 + rng.normal(0, 0.005, 60)))
    assert all(past_best_stop(flat[:i]) is None for i in range(1, len(flat) + 1))


def test_a_resumed_run_counts_only_its_own_evaluations_past_the_best() -> None:
    history = history_of([2.00, 2.05, 2.10])
    assert past_best_stop(history, since_step=750) is None
    assert past_best_stop([*history, record(1000, 2.2, False)], since_step=750) is None
    assert past_best_stop(history_of([2.00, 2.05, 2.10, 2.2, 2.2]), since_step=750) is not None


def test_the_closing_score_of_a_run_that_never_turned_up_is_its_best(
    markov: Corpus, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The last weights are the result when the curve never turned up; their whole-split
    score closes the history. Read worse than the estimates before it (another sample of
    text), it still names those weights the best, so `generate` takes the model the
    figure is of."""
    from dataclasses import replace

    from engine.training import evaluation_steps

    def reads_worse(*args, **kwargs):
        return replace(evaluate_split(*args, **kwargs), loss=9.0)

    monkeypatch.setattr(evaluation_steps, "evaluate_split", reads_worse)
    cfg = config(max_steps=45, time_budget=None, eval_interval=20, eval_chars=2048, lr=1e-3)
    out = tmp_path / "run"
    result = Trainer(markov, make_config("lstm", **SMALL), cfg, out_dir=out).run()
    assert result.reported == "last" and result.val_loss == 9.0
    assert result.best_step == result.steps == 45
    assert load_checkpoint(out, prefer="best").step == 45
