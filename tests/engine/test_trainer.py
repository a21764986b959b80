"""The training loop: it learns, it obeys pause/resume/stop and budgets, it resumes exactly."""

from __future__ import annotations

import json
import math
import threading
import time
from pathlib import Path

import pytest
import torch

from engine.config.train import TrainConfig
from engine.data.corpus import Corpus, Vocab, load_corpus
from engine.errors import ConfigError
from engine.training.events import (
    CheckpointEvent,
    EvalEvent,
    EvalProgressEvent,
    StatusEvent,
    StepEvent,
    TrainResult,
    event_dict,
)
from engine.training.trainer import Trainer
from tests.helpers import tiny_config, write_markov

LEARNER = {"embed_dim": 16, "hidden_size": 64, "num_layers": 1, "dropout": 0.0}


@pytest.fixture(scope="module")
def markov(tmp_path_factory: pytest.TempPathFactory) -> tuple[Corpus, float]:
    """60,000 chars of a Markov chain and its entropy rate in nats/char."""
    path, rate = write_markov(tmp_path_factory.mktemp("markov") / "markov.txt", 60_000, seed=3)
    return load_corpus(str(path)), rate


@pytest.fixture(scope="module")
def corpus(markov: tuple[Corpus, float]) -> Corpus:
    return markov[0]


def quick(**values: object) -> TrainConfig:
    """A few fast steps on the CPU, in fp32 on every CPU ("auto" would pick bf16 on AMX
    machines only; tests/engine/test_run_safety.py trains each precision explicitly)."""
    base = dict(
        batch_size=4,
        seq_len=16,
        lr=1e-2,
        warmup_steps=3,
        max_steps=20,
        eval_interval=10,
        eval_chars=256,
        device="cpu",
        precision="fp32",
        seed=5,
    )
    base.update(values)
    return TrainConfig(**base)  # type: ignore[arg-type]


class Recorder:
    """Collects events; optional hooks run on a given step (from inside the loop)."""

    def __init__(self) -> None:
        self.events: list[object] = []
        self.hooks: dict[int, object] = {}
        self.lock = threading.Lock()

    def __call__(self, event: object) -> None:
        with self.lock:
            self.events.append(event)
        if isinstance(event, StepEvent) and event.step in self.hooks:
            self.hooks[event.step]()  # type: ignore[operator]

    def of(self, kind: type) -> list:
        with self.lock:
            return [e for e in self.events if isinstance(e, kind)]


def wait_for(condition, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.01)


# ----- it learns ------------------------------------------------------------------------


@pytest.mark.parametrize("batching", ["random", "stateful"])
def test_lstm_reaches_the_entropy_rate_of_a_markov_source(
    markov: tuple[Corpus, float], batching: str
) -> None:
    corpus, rate = markov
    unigram = corpus.stats().entropy_bits * math.log(2)
    config = quick(
        batch_size=16,
        seq_len=32,
        max_steps=300,
        warmup_steps=10,
        eval_interval=100,
        eval_chars=2048,
        batching=batching,
        seed=1,
    )
    result = Trainer(corpus, tiny_config("lstm", **LEARNER), config).run()
    assert result.steps == 300
    assert result.stopped_by == "max_steps"
    assert result.val_chars == result.val_split_chars == 5999
    assert not result.partial_eval
    # The floor is the entropy rate (0.687 nats/char); unigram statistics give 2.27.
    assert result.val_loss < 1.15 * rate, (result.val_loss, rate)
    assert result.val_loss > 0.9 * rate, "better than the true entropy rate: a scoring bug"
    assert result.val_loss < 0.4 * unigram
    assert result.val_bpc == pytest.approx(result.val_loss / math.log(2))
    assert result.val_perplexity == pytest.approx(math.exp(result.val_loss))


@pytest.mark.parametrize(
    ("model_type", "ceiling"), [("gru", 0.5), ("rnn", 0.6), ("transformer", 0.85)]
)
def test_other_models_learn(corpus: Corpus, model_type: str, ceiling: float) -> None:
    unigram = corpus.stats().entropy_bits * math.log(2)
    model = (
        tiny_config("transformer", n_layer=1, n_head=2, n_embd=32, block_size=32, dropout=0.0)
        if model_type == "transformer"
        else tiny_config(model_type, **LEARNER)
    )
    config = quick(batch_size=16, seq_len=32, max_steps=150, warmup_steps=10, seed=1)
    recorder = Recorder()
    result = Trainer(corpus, model, config, on_event=recorder).run()
    assert result.val_loss < ceiling * unigram, (result.val_loss, unigram)
    history = [e.val_loss for e in recorder.of(EvalEvent)]
    assert len(history) == 15
    assert history[-1] < 0.9 * history[0], "the periodic val loss falls"


# ----- control: stop, pause, resume -----------------------------------------------------


def test_stop_from_the_event_callback(corpus: Corpus) -> None:
    recorder = Recorder()
    trainer = Trainer(corpus, tiny_config("lstm"), quick(max_steps=1000), on_event=recorder)
    recorder.hooks[7] = trainer.stop
    result = trainer.run()
    assert result.steps == 7
    assert result.stopped_by == "stop"
    assert [e.step for e in recorder.of(StepEvent)] == list(range(1, 8))
    assert recorder.of(StatusEvent)[-1].state == "stopped"


def test_pause_holds_the_loop_and_resume_continues(corpus: Corpus) -> None:
    recorder = Recorder()
    trainer = Trainer(corpus, tiny_config("lstm"), quick(max_steps=1000), on_event=recorder)
    recorder.hooks[5] = trainer.pause
    recorder.hooks[12] = trainer.stop
    outcome: dict[str, TrainResult] = {}
    thread = threading.Thread(target=lambda: outcome.setdefault("r", trainer.run()))
    thread.start()
    wait_for(lambda: any(e.state == "paused" for e in recorder.of(StatusEvent)))
    assert trainer.paused
    time.sleep(0.3)
    assert trainer.step == 5, "no steps while paused"
    assert recorder.of(StepEvent)[-1].step == 5
    trainer.resume()
    thread.join(timeout=30)
    assert not thread.is_alive()
    result = outcome["r"]
    assert result.steps == 12
    assert result.stopped_by == "stop"
    states = [e.state for e in recorder.of(StatusEvent)]
    paused_at = states.index("paused")
    assert states[paused_at + 1] == "training"


def test_stop_while_paused(corpus: Corpus) -> None:
    recorder = Recorder()
    trainer = Trainer(corpus, tiny_config("gru"), quick(max_steps=1000), on_event=recorder)
    recorder.hooks[3] = trainer.pause
    thread = threading.Thread(target=trainer.run)
    thread.start()
    wait_for(lambda: trainer.paused and trainer.step >= 3)
    time.sleep(0.05)
    trainer.stop()
    thread.join(timeout=30)
    assert not thread.is_alive()
    assert trainer.step == 3


def test_max_steps_zero_still_evaluates_and_saves(corpus: Corpus, tmp_path: Path) -> None:
    result = Trainer(corpus, tiny_config("rnn"), quick(max_steps=0), out_dir=tmp_path).run()
    assert result.steps == 0
    assert math.isfinite(result.val_loss)
    assert result.checkpoint and Path(result.checkpoint).is_dir()


# ----- events ---------------------------------------------------------------------------


def test_events_arrive_in_order(corpus: Corpus, tmp_path: Path) -> None:
    recorder = Recorder()
    config = quick(max_steps=25, eval_interval=10)
    result = Trainer(
        corpus, tiny_config("lstm"), config, out_dir=tmp_path / "run", on_event=recorder
    ).run()
    steps = recorder.of(StepEvent)
    assert [e.step for e in steps] == list(range(1, 26))
    assert all(e.max_steps == 25 and math.isfinite(e.loss) and e.lr > 0 for e in steps)
    assert steps[-1].progress == pytest.approx(1.0)
    assert all(0 <= e.progress <= 1 for e in steps)
    evals = recorder.of(EvalEvent)
    assert [e.step for e in evals] == [10, 20, 25]
    assert evals[0].best
    assert all(e.val_bpc == pytest.approx(e.val_loss / math.log(2)) for e in evals)
    checkpoints = recorder.of(CheckpointEvent)
    assert [e.step for e in checkpoints] == [10, 20, 25]
    assert all("last" in e.tags for e in checkpoints)
    assert checkpoints[-1].path == result.checkpoint
    assert Path(result.checkpoint).is_dir()
    states = [e.state for e in recorder.of(StatusEvent)]
    assert states[0] == "training" and states[-1] == "done"
    assert "evaluating" in states and "saving" in states
    # The final evaluation reports its progress, ending on the whole split.
    progress = recorder.of(EvalProgressEvent)
    assert progress and progress[-1].done == progress[-1].total == result.val_split_chars
    assert [e.done for e in progress] == sorted(e.done for e in progress)
    # Events are plain data: they cross a process queue as JSON-able dicts.
    for event in recorder.events:
        json.dumps(event_dict(event))
    json.dumps(result.as_dict())


# ----- time budget ----------------------------------------------------------------------


@pytest.mark.parametrize("model_type", ["lstm", "transformer"])
def test_time_budget_is_respected(corpus: Corpus, model_type: str, tmp_path: Path) -> None:
    torch.optim.AdamW([torch.zeros(1, requires_grad=True)])  # torch's one-off lazy imports
    started = time.monotonic()
    config = quick(max_steps=None, time_budget=3.0, eval_interval=50)
    trainer = Trainer(corpus, tiny_config(model_type), config, out_dir=tmp_path / "run")
    result = trainer.run()
    wall = time.monotonic() - started
    assert result.stopped_by == "time_budget"
    assert wall < 3.0 + 1.5, wall
    # Not stopped after a step or two on a wrong guess of how long the final evaluation
    # takes (what it did when the guess came from the training speed of a tiny batch).
    assert result.steps >= 10, "the budget was used for training"
    assert result.checkpoint is not None


def test_paused_time_does_not_eat_the_budget(corpus: Corpus) -> None:
    recorder = Recorder()
    config = quick(max_steps=None, time_budget=3.0, eval_interval=1000)
    trainer = Trainer(corpus, tiny_config("rnn"), config, on_event=recorder)
    recorder.hooks[2] = trainer.pause
    thread = threading.Thread(target=trainer.run)
    thread.start()
    wait_for(lambda: trainer.paused or not thread.is_alive())
    assert trainer.paused, "stopped before its second step"
    time.sleep(1.0)
    trainer.resume()
    thread.join(timeout=30)
    assert trainer.deadline is not None
    moved = trainer.deadline - trainer.started - 3.0
    assert moved == pytest.approx(1.0, abs=0.2), "the deadline moved by the paused time"
    assert time.monotonic() < trainer.deadline + 1.0


# ----- configuration --------------------------------------------------------------------


@pytest.mark.parametrize(
    "values",
    [
        {"max_steps": -1},
        {"time_budget": 0},
        {"time_budget": -5.0},
        {"batch_size": 0},
        {"seq_len": 0},
        {"lr": 0},
        {"lr": float("nan")},
        {"batching": "sideways"},
        {"val_fraction": 1.0},
        {"seq_len": "abc"},
        {"lr": "fast"},
        {"max_steps": 2.5},
        {"compile": "yes"},
        {"device": "tpu"},
        {"precision": "fp8"},
    ],
)
def test_bad_training_settings_are_config_errors(corpus: Corpus, values: dict) -> None:
    with pytest.raises(ConfigError):
        Trainer(corpus, tiny_config("lstm"), quick(**values))


def test_transformer_limits(corpus: Corpus) -> None:
    with pytest.raises(ConfigError, match="block size"):
        Trainer(corpus, tiny_config("transformer", block_size=8), quick(seq_len=16))
    with pytest.raises(ConfigError, match="stateful"):
        Trainer(corpus, tiny_config("transformer"), quick(batching="stateful"))


def test_a_transformer_context_longer_than_its_training_window_is_cut_to_it(
    corpus: Corpus, tmp_path: Path
) -> None:
    """Positions past seq_len are never trained, yet decoding and the whole-split evaluation
    would read them (1.07 vs 0.59 nats/char in one case): the context is the window."""
    recorder = Recorder()
    trainer = Trainer(
        corpus,
        tiny_config("transformer", block_size=24),
        quick(seq_len=16, max_steps=2, eval_interval=2),
        out_dir=tmp_path / "run",
        on_event=recorder,
    )
    assert trainer.model.config.block_size == 16 and trainer.model.max_context == 16
    trainer.run()
    notes = [e.message for e in recorder.of(StatusEvent) if e.state == "starting"]
    assert any("block size 16 (was 24" in note for note in notes)
    resumed = Trainer(corpus, None, quick(seq_len=16, max_steps=3), out_dir=tmp_path / "run",
                      resume=True)  # fmt: skip
    assert resumed.model.config.block_size == 16 and resumed.setup_notes == []


def test_stateful_batching_refuses_a_corpus_too_small_for_its_streams(tmp_path: Path) -> None:
    path = tmp_path / "small.txt"
    path.write_text(("abcdefghij" * 200)[:2000], encoding="utf-8")
    small = load_corpus(str(path))  # 1,800 training chars
    with pytest.raises(ConfigError, match="stateful"):
        Trainer(small, tiny_config("lstm"), quick(batching="stateful", batch_size=200, seq_len=16))


def test_lr_schedule_warms_up_then_decays_to_min(corpus: Corpus) -> None:
    trainer = Trainer(corpus, tiny_config("lstm"), quick(lr=1.0, warmup_steps=4, min_lr_ratio=0.1))
    trainer.step = 0
    assert trainer.lr_at(0.0) == pytest.approx(0.25)
    trainer.step = 3
    assert trainer.lr_at(0.0) == pytest.approx(1.0)
    trainer.step = 10
    assert trainer.lr_at(0.0) == pytest.approx(1.0)
    assert trainer.lr_at(0.5) == pytest.approx(0.55)
    assert trainer.lr_at(1.0) == pytest.approx(0.1)


def test_snapshot_is_an_independent_eval_copy(corpus: Corpus) -> None:
    trainer = Trainer(corpus, tiny_config("lstm"), quick(max_steps=3))
    snapshot = trainer.snapshot()
    assert not snapshot.training
    before = [p.detach().clone() for p in snapshot.parameters()]
    trainer.run()
    for p, q in zip(before, snapshot.parameters(), strict=True):
        assert torch.equal(p, q)
    assert any(
        not torch.equal(p, q)
        for p, q in zip(snapshot.parameters(), trainer.model.parameters(), strict=True)
    )


def test_event_dataclasses_hold_no_tensors(corpus: Corpus) -> None:
    recorder = Recorder()
    Trainer(corpus, tiny_config("lstm"), quick(max_steps=3), on_event=recorder).run()
    for event in recorder.events:
        for value in event_dict(event).values():
            assert not isinstance(value, torch.Tensor)


def test_vocab_of_the_corpus_sets_the_model_size(corpus: Corpus) -> None:
    trainer = Trainer(corpus, tiny_config("lstm"), quick(max_steps=1))
    assert trainer.model.config.vocab_size == len(corpus.vocab)
    assert isinstance(corpus.vocab, Vocab)
