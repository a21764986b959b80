"""Sizing a budgeted recurrent run's width to this machine (engine/config/sizing.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from engine.config import sizing
from engine.config.train import TrainConfig
from engine.data.corpus import Corpus
from engine.models import build_model, make_config
from engine.training.events import StatusEvent
from engine.training.trainer import Trainer
from tests.helpers import tiny_config, write_markov


def preset_like(width: int = 512) -> object:
    return make_config("lstm", vocab_size=65, embed_dim=64, hidden_size=width, num_layers=1,
                       dropout=0.0)  # fmt: skip


def parameters(width: int) -> int:
    return build_model(preset_like(width)).num_parameters()


class FakeRates:
    """Training chars/s per width, and which widths were measured."""

    def __init__(self, rates: dict[int, float]) -> None:
        self.rates = rates
        self.asked: list[int] = []

    def __call__(self, config) -> float:
        self.asked.append(config.hidden_size)
        return self.rates[config.hidden_size]


AVX2_EPYC = {512: 10_700.0, 384: 15_600.0, 256: 28_800.0}  # measured, bench/train_quality.py


def test_a_slow_machine_gets_the_width_its_budget_can_train() -> None:
    """The EPYC's figures: 512 and 384 read too few characters per parameter in 96 s of
    training, 256 enough (and it scored 1.77 against 1.93 for 512)."""
    rates = FakeRates(AVX2_EPYC)
    choice = sizing.fit_width(preset_like(), 96.0, rates)
    assert choice.width == 256
    assert rates.asked == [512, 384]  # the narrowest is the answer either way: not probed
    assert AVX2_EPYC[512] * 96 < sizing.CHARS_PER_PARAMETER * parameters(512)
    assert AVX2_EPYC[256] * 96 >= sizing.CHARS_PER_PARAMETER * parameters(256)
    assert choice.note(512) == (
        "width 256 for this CPU and budget (512 wide: probe 11k chars/s, 1.0M chars, "
        "0.8 per parameter)"
    )


def test_a_fast_machine_keeps_the_preset_width_after_one_probe() -> None:
    """An AMX Xeon's bf16 rate reads 5 characters per parameter: 512 stays, measured once."""
    rates = FakeRates({512: 54_000.0, 384: 1.0, 256: 1.0})
    choice = sizing.fit_width(preset_like(), 110.0, rates)
    assert (choice.width, rates.asked) == (512, [512])
    assert choice.note(512).startswith("width 512 kept")


def test_a_budget_too_short_to_probe_takes_the_narrowest_unmeasured() -> None:
    rates = FakeRates({512: 1e12, 384: 1e12, 256: 1e12})
    choice = sizing.fit_width(preset_like(), sizing.MIN_PROBE_S - 1, rates)
    assert (choice.width, rates.asked) == (256, [])
    assert choice.note(512) == "width 256: a 19 s budget is too short for a wider one"


def test_a_narrower_preset_is_never_widened() -> None:
    assert sizing.candidate_widths(384) == [384, 256]
    assert sizing.candidate_widths(100) == [100]
    rates = FakeRates({})
    assert sizing.fit_width(preset_like(100), 1000.0, rates).width == 100
    assert rates.asked == []


def test_the_rate_probe_measures_and_leaves_the_random_state_alone() -> None:
    torch.manual_seed(5)
    before = torch.get_rng_state()
    rate = sizing.measure_training_rate(preset_like(64), 4, torch.device("cpu"), bf16=False)
    assert rate > 0
    assert torch.equal(torch.get_rng_state(), before)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Corpus:
    from engine.data.corpus import load_corpus

    path = tmp_path_factory.mktemp("sizing") / "markov.txt"
    write_markov(path, 20_000)
    return load_corpus(str(path))


def budgeted(**values: object) -> TrainConfig:
    base = dict(batch_size=4, seq_len=16, lr=1e-2, warmup_steps=1, max_steps=2,
                eval_interval=2, eval_chars=256, precision="fp32", time_budget=60.0,
                fit_width=True)  # fmt: skip
    base.update(values)
    return TrainConfig(**base)


def test_a_budgeted_run_trains_the_fitted_width_and_says_so(
    corpus: Corpus, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sizing, "measure_training_rate", lambda c, *a: {96: 1.0, 64: 1e9}.get(
        c.hidden_size, 1e9))  # fmt: skip
    monkeypatch.setattr(sizing, "CANDIDATE_WIDTHS", (96, 64))
    events: list[object] = []
    trainer = Trainer(corpus, tiny_config("lstm", hidden_size=96), budgeted(),
                      out_dir=tmp_path / "run", on_event=events.append)  # fmt: skip
    assert trainer.model.config.hidden_size == 64
    trainer.run()
    notes = [e.message for e in events if isinstance(e, StatusEvent) and e.state == "starting"]
    assert any(note.startswith("width 64 for this CPU and budget (96 wide") for note in notes)
    # A resumed run keeps the width it has; no budget, or fit_width off: the preset's.
    resumed = Trainer(corpus, None, budgeted(max_steps=3), out_dir=tmp_path / "run", resume=True)
    assert resumed.model.config.hidden_size == 64
    for config in (budgeted(time_budget=None, max_steps=1), budgeted(fit_width=False)):
        plain = Trainer(corpus, tiny_config("lstm", hidden_size=96), config)
        assert plain.model.config.hidden_size == 96


def test_a_transformer_is_never_resized(corpus: Corpus) -> None:
    trainer = Trainer(corpus, tiny_config("transformer"), budgeted())
    assert trainer.width_choice is None


def test_an_asked_dropout_keeps_the_rest_of_the_fit(
    corpus: Corpus, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A small corpus read thousands of times in the budget: the width is capped and the
    decay and weight drop raised, while the dropout the user set stays theirs."""
    monkeypatch.setattr(sizing, "measure_training_rate", lambda c, *a: 1e9)
    monkeypatch.setattr(sizing, "CANDIDATE_WIDTHS", (512, 256))
    config = budgeted(fit_data=True, asked_regularisation=("dropout",), max_steps=None)
    model = tiny_config("lstm", hidden_size=512, dropout=0.05)
    trainer = Trainer(corpus, model, config)  # not run: the fit is made at the start
    shape = trainer.model.config
    assert (shape.hidden_size, shape.dropout, shape.weight_drop) == (256, 0.05, 0.25)
    assert trainer.config.weight_decay == 0.1
    assert any(
        note.startswith("dropout 0.05 (asked), weight decay 0.1, weight drop 0.25 for ")
        for note in trainer.setup_notes
    )
    trainer.close()
