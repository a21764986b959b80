"""Issue 9 in the engine: saves that fail at each rename, temporaries of live writers, the
schedule across a resumed time budget, prompts primed in chunks, both CPU precisions."""

from __future__ import annotations

import errno
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from engine.config.train import TrainConfig
from engine.data.corpus import Corpus, Vocab, load_corpus
from engine.errors import CheckpointError
from engine.runs.checkpoint import load_checkpoint, save_checkpoint
from engine.training.events import StepEvent
from engine.training.schedule import lr_at
from engine.training.trainer import Trainer
from tests.helpers import assert_one_line, tiny_config, tiny_model, write_markov

VOCAB = Vocab(list("\n abcdefghi"))


def filled(value: float):
    model = tiny_model("lstm", len(VOCAB))
    with torch.no_grad():
        for param in model.parameters():
            param.fill_(value)
    return model


def save(run: Path, value: float, step: int):
    return save_checkpoint(
        run,
        model=filled(value),
        vocab=VOCAB,
        meta={"step": step},
        trainer_tensors={"marker": torch.full((4,), float(step))},
        tags=("last", "best"),
    )


def temporaries(run: Path) -> list[str]:
    return sorted(p.name for p in run.iterdir() if p.name.startswith("."))


class Fault:
    """Fail the `at`-th call (0-based) of os.replace / os.symlink made during one save."""

    def __init__(self, at: int, exc: BaseException) -> None:
        self.at, self.exc, self.calls = at, exc, 0
        self.replace, self.symlink = os.replace, os.symlink

    def _maybe_fail(self) -> None:
        self.calls += 1
        if self.calls - 1 == self.at:
            raise self.exc

    def do_replace(self, src, dst, **kwargs):
        self._maybe_fail()
        return self.replace(src, dst, **kwargs)

    def do_symlink(self, src, dst, *args, **kwargs):
        self._maybe_fail()
        return self.symlink(src, dst, *args, **kwargs)


# A save makes 5 such calls: rename the checkpoint into place, then for `last` and `best`
# a temporary symlink and the rename that swaps it in.
SAVE_CALLS = 5


def test_a_save_makes_the_calls_the_fault_injection_counts(tmp_path: Path, monkeypatch) -> None:
    run = tmp_path / "run"
    save(run, 1.0, 1)
    fault = Fault(at=10**9, exc=OSError())
    monkeypatch.setattr(os, "replace", fault.do_replace)
    monkeypatch.setattr(os, "symlink", fault.do_symlink)
    save(run, 2.0, 2)
    assert fault.calls == SAVE_CALLS


@pytest.mark.parametrize("at", range(SAVE_CALLS))
@pytest.mark.parametrize("kind", ["disk-error", "interrupt"])
def test_a_save_failing_at_each_rename_and_symlink_swap(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, at: int, kind: str
) -> None:
    """Deterministic fault injection: whichever rename fails, `last` and `best` load whole
    (the old checkpoint or the new one, never a mix), and this process leaves no temporaries."""
    run = tmp_path / "run"
    save(run, 1.0, 1)
    exc: BaseException = (
        OSError(errno.EIO, "Input/output error") if kind == "disk-error" else KeyboardInterrupt()
    )
    fault = Fault(at, exc)
    monkeypatch.setattr(os, "replace", fault.do_replace)
    monkeypatch.setattr(os, "symlink", fault.do_symlink)
    expected = CheckpointError if kind == "disk-error" else KeyboardInterrupt
    with pytest.raises(expected) as info:
        save(run, 2.0, 2)
    if kind == "disk-error":
        assert_one_line(info.value, "saving a checkpoint failed")
    monkeypatch.undo()
    for tag in ("last", "best"):
        loaded = load_checkpoint(run, prefer=tag, with_trainer=True)
        assert loaded.step in (1, 2)
        assert all(torch.all(p == float(loaded.step)) for p in loaded.model.parameters())
        assert torch.all(loaded.trainer_tensors["marker"] == float(loaded.step))
    assert load_checkpoint(run, prefer="last").step == (2 if at >= 3 else 1)
    assert temporaries(run) == []
    save(run, 3.0, 3)  # the next save works and leaves one checkpoint
    assert [p.name for p in run.glob("step-*")] == [(run / "last").resolve().name]


def test_prune_never_touches_a_live_writers_temporaries(tmp_path: Path) -> None:
    """Case 2: temporaries named by a live process stay; a dead writer's are removed."""
    run = tmp_path / "run"
    save(run, 1.0, 1)
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    try:
        (run / f".tmp-{live.pid}-step-00000009-aaaaaa").mkdir()
        os.symlink("step-x", run / f".last.{live.pid}.abcdef12")
        (run / f".tmp-{dead.pid}-step-00000009-bbbbbb").mkdir()
        os.symlink("step-y", run / f".best.{dead.pid}.abcdef12")
        save(run, 2.0, 2)
        assert temporaries(run) == sorted(
            [f".last.{live.pid}.abcdef12", f".tmp-{live.pid}-step-00000009-aaaaaa"]
        )
    finally:
        live.kill()
        live.wait()


def test_a_checkpoint_with_non_finite_weights_is_never_written(tmp_path: Path) -> None:
    """Case 9: `last` and `best` never name a NaN checkpoint, whoever calls save."""
    run = tmp_path / "run"
    save(run, 1.0, 1)
    with pytest.raises(CheckpointError, match="not finite"):
        save(run, math.nan, 2)
    assert load_checkpoint(run, prefer="last").step == 1
    assert temporaries(run) == []


# ----- the schedule across a resumed time budget ------------------------------------------


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Corpus:
    path, _ = write_markov(tmp_path_factory.mktemp("safety") / "markov.txt", 20_000, seed=4)
    # The first optimizer of a process imports torch._dynamo (seconds on a busy machine):
    # pay that here, not inside a test's time budget.
    torch.optim.AdamW([torch.zeros(1, requires_grad=True)])
    return load_corpus(str(path))


def budgeted(**values: object) -> TrainConfig:
    base = dict(
        batch_size=4,
        seq_len=16,
        lr=1e-2,
        warmup_steps=2,
        max_steps=None,
        time_budget=30.0,
        eval_interval=10_000,
        eval_chars=256,
        device="cpu",
        precision="fp32",
        seed=5,
        final_eval=False,
    )
    base.update(values)
    return TrainConfig(**base)  # type: ignore[arg-type]


def test_resume_under_a_time_budget_continues_the_schedule(corpus: Corpus, tmp_path: Path) -> None:
    """Case 6: a resumed budgeted run continues its decay; it does not go back to the peak."""
    run = tmp_path / "run"
    steps: list[StepEvent] = []
    trainer: Trainer

    def first_leg(event: object) -> None:
        if isinstance(event, StepEvent):
            steps.append(event)
            if event.progress >= 0.4:
                trainer.stop()

    config = budgeted(time_budget=8.0)
    trainer = Trainer(corpus, tiny_config("lstm"), config, out_dir=run, on_event=first_leg)
    trainer.run()
    saved = load_checkpoint(run, prefer="last")
    progress = saved.meta["schedule_progress"]
    assert 0.4 <= progress < 1.0 and saved.step == steps[-1].step > 0

    resumed: list[tuple[StepEvent, float]] = []

    def second_leg(event: object) -> None:
        if isinstance(event, StepEvent):
            resumed.append((event, second.schedule_progress()))
            second.stop()

    second = Trainer(
        corpus, None, budgeted(time_budget=30.0), out_dir=run, on_event=second_leg, resume=True
    )
    second.run()
    first, schedule = resumed[0]
    assert schedule >= progress
    # The progress bar shows this process's way through its own 30 s, not the schedule's.
    assert first.progress < 0.2
    expected = lr_at(saved.step, progress, lr=1e-2, warmup_steps=2, min_lr_ratio=0.1)
    peak = 1e-2
    assert first.lr <= expected * 1.02, (first.lr, expected)
    assert first.lr < 0.8 * peak


# ----- both CPU precisions, explicitly -----------------------------------------------------


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_cpu_training_in_each_precision_learns(corpus: Corpus, precision: str) -> None:
    """`precision="auto"` picks one of these by CPU: each is trained here on every machine.

    A Transformer: oneDNN has no bf16 LSTM kernel on CPUs without AVX512-BF16/AMX.
    """
    config = budgeted(
        time_budget=None, max_steps=60, precision=precision, eval_interval=30, final_eval=True
    )
    trainer = Trainer(corpus, tiny_config("transformer", dropout=0.0), config)
    assert trainer.amp == (torch.bfloat16 if precision == "bf16" else None)
    result = trainer.run()
    assert math.isfinite(result.val_loss)
    assert result.val_loss < math.log(len(corpus.vocab)) - 0.1  # better than uniform


# ----- prompts are primed in chunks ----------------------------------------------------------


@pytest.mark.parametrize("kind", ["lstm", "transformer"])
def test_a_long_prompt_is_primed_in_chunks_keeping_only_the_last_logits(kind: str) -> None:
    """Case 11: priming feeds at most PROMPT_CHUNK positions at a time and keeps one
    position's logits, with the same result as feeding the prompt whole."""
    from engine.decoding import window as window_module
    from engine.decoding.window import ContextWindow

    settings = {"block_size": 4096} if kind == "transformer" else {}
    model = tiny_model(kind, len(VOCAB), **settings)
    tokens = torch.randint(0, len(VOCAB), (1, 3000), generator=torch.Generator().manual_seed(0))
    seen: list[int] = []
    forward = model.forward

    def recording(x, state=None):
        seen.append(int(x.shape[1]))
        return forward(x, state)

    with torch.inference_mode():
        whole = forward(tokens)[0][:, -1]
        model.forward = recording  # type: ignore[method-assign]
        primed = ContextWindow(model, tokens.clone()).prime(tokens.shape[1])
    assert max(seen) <= window_module.PROMPT_CHUNK < tokens.shape[1]
    assert len(seen) == math.ceil(tokens.shape[1] / window_module.PROMPT_CHUNK)
    assert torch.allclose(primed, whole, atol=1e-4)
