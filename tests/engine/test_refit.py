"""The data fit is checked at the first evaluation against the speed training runs at
(engine/training/refit.py): a probe that read slow must not leave the run unregularised."""

from __future__ import annotations

import pytest

from engine.config import sizing
from engine.data.corpus import Corpus, load_corpus
from engine.training.events import EvalEvent, StatusEvent
from engine.training.trainer import Trainer
from tests.engine.test_sizing import budgeted
from tests.helpers import tiny_config, write_markov


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Corpus:
    path = tmp_path_factory.mktemp("refit") / "markov.txt"
    write_markov(path, 20_000)
    return load_corpus(str(path))


def train_to_first_evaluation(corpus: Corpus) -> tuple[Trainer, list]:
    """A 600 s budgeted run (its width probe patched by the test), stopped at its first
    evaluation. 600 s, so that even a slow first few steps (~1k chars/s) read the 18k-char
    split 16+ times in it: at 60 s, 5k chars/s read 14.6 and the lighter tier came out."""
    events: list[object] = []
    trainer: Trainer | None = None

    def on_event(event: object) -> None:
        events.append(event)
        if isinstance(event, EvalEvent) and trainer is not None:
            trainer.stop()

    config = budgeted(fit_data=True, max_steps=None, eval_interval=5, time_budget=600.0)
    trainer = Trainer(corpus, tiny_config("lstm", hidden_size=96, dropout=0.0), config,
                      on_event=on_event)  # fmt: skip
    trainer.run()
    return trainer, events


def notes(events: list) -> list[str]:
    return [e.message for e in events if isinstance(e, StatusEvent) and e.note]


def test_a_probe_that_read_slow_is_corrected_at_the_first_evaluation(
    corpus: Corpus, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The probe reads 1 char/s: under a tenth of an epoch in the budget, so no
    regularisation at the start. Training then reads the 18k-char split thousands of
    times: dropout, weight decay and weight drop go up in the live model and optimizer,
    and a note says why."""
    monkeypatch.setattr(sizing, "measure_training_rate", lambda c, *a: 1.0)
    monkeypatch.setattr(sizing, "CANDIDATE_WIDTHS", (96, 64))
    trainer, events = train_to_first_evaluation(corpus)
    started = [e.message for e in events if isinstance(e, StatusEvent) and e.state == "starting"]
    assert any("too few to learn it by heart" in line for line in started)
    said = notes(events)
    assert len(said) == 1 and said[0].startswith("regularisation raised at step 5: training")
    assert "dropout 0.2, weight decay 0.1, weight drop 0.25 for " in said[0]
    model = trainer.model
    assert (model.drop.p, model.config.dropout, model.config.weight_drop) == (0.2, 0.2, 0.25)
    assert trainer.optimizer.param_groups[0]["weight_decay"] == 0.1
    assert trainer.optimizer.param_groups[1]["weight_decay"] == 0.0  # biases: never decayed
    assert trainer.config.weight_decay == 0.1  # what the checkpoint saves


def test_a_probe_that_read_true_changes_nothing(
    corpus: Corpus, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sizing, "measure_training_rate", lambda c, *a: 1e9)
    monkeypatch.setattr(sizing, "CANDIDATE_WIDTHS", (96, 64))
    trainer, events = train_to_first_evaluation(corpus)
    assert notes(events) == []
    assert (trainer.model.drop.p, trainer.config.weight_decay) == (0.2, 0.1)  # from the start
