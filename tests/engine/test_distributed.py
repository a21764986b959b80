"""DDP on CPU processes (gloo): N ranks are one training run, and checkpoints cross worlds.

Two ranks with batch 8 each must match one process with batch 16 step for step
(each rank keeps rows rank::2 of the same global batch, dropout is 0, the
learning rate is constant so that runs of different lengths can be compared),
and a checkpoint must resume on the other world size exactly where it left off.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from engine.config.presets import preset
from engine.config.train import TrainConfig
from engine.data.corpus import load_corpus
from engine.errors import ConfigError
from engine.machine.ddp import rank_device, torchrun_world
from engine.models import make_config
from engine.runs.checkpoint import load_checkpoint
from engine.training.batches import BatchSource
from engine.training.events import StepEvent
from engine.training.launch import launch
from engine.training.trainer import Trainer

pytestmark = pytest.mark.timeout(120)

ROOT = Path(__file__).resolve().parents[2]
STEPS, HALF_BATCH, BATCH = 8, 8, 16


def model_config():
    settings, _ = preset("lstm", "tiny")
    return make_config("lstm", **settings)  # tiny: dropout 0


def train_config(batch_size: int, max_steps: int) -> TrainConfig:
    _, settings = preset("lstm", "tiny")
    settings.update(
        device="cpu",
        precision="fp32",  # the same on every CPU (auto is bf16 on AMX machines)
        batch_size=batch_size,
        max_steps=max_steps,
        warmup_steps=0,
        min_lr_ratio=1.0,  # a constant learning rate: 8 + 8 steps equal 16
        eval_interval=1000,
        final_eval=False,
    )
    return TrainConfig.from_dict(settings)


def train_here(corpus_path: Path, out: Path, max_steps: int, resume: bool = False):
    """One process, the global batch of 16: (losses, result, trainer)."""
    losses: list[float] = []

    def record(event: object) -> None:
        if isinstance(event, StepEvent):
            losses.append(event.loss)

    trainer = Trainer(
        load_corpus(str(corpus_path)),
        model_config(),
        train_config(BATCH, max_steps),
        out_dir=out,
        on_event=record,
        resume=resume,
    )
    return losses, trainer.run(), trainer


def final_weights(run_dir: Path) -> dict[str, torch.Tensor]:
    return load_checkpoint(run_dir, prefer="last").model.state_dict()


@pytest.fixture(scope="module")
def corpus_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from engine.data.markov import generate_markov

    path = tmp_path_factory.mktemp("ddp") / "markov.txt"
    path.write_text(generate_markov(20_000, seed=3)[0], encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def reference(corpus_path: Path, tmp_path_factory: pytest.TempPathFactory):
    """One process, batch 16, 3 x STEPS steps: (losses, run dir)."""
    out = tmp_path_factory.mktemp("reference")
    losses, result, _ = train_here(corpus_path, out, 3 * STEPS)
    assert result.steps == 3 * STEPS
    assert losses[-1] < losses[0] - 0.1  # it learns, so a wrong batch or update shows
    return losses, out


@pytest.fixture(scope="module")
def worlds(corpus_path: Path, tmp_path_factory: pytest.TempPathFactory):
    """1 process for STEPS steps, then 2 gloo ranks (batch 8 each) resume it for STEPS
    more, then 1 process resumes that for STEPS more: (2-rank outcomes, run dirs)."""
    one = tmp_path_factory.mktemp("one-then-two")
    train_here(corpus_path, one, STEPS)
    outcomes = launch(
        2, str(corpus_path), "utf-8", None, train_config(HALF_BATCH, 2 * STEPS), one, resume=True
    )
    two = tmp_path_factory.mktemp("two-then-one") / "run"
    shutil.copytree(one, two, symlinks=True)
    losses, result, _ = train_here(corpus_path, two, 3 * STEPS, resume=True)
    return outcomes, one, losses, result, two


def test_two_ranks_match_one_process_with_the_global_batch(worlds, reference) -> None:
    outcomes = worlds[0]
    assert [o.rank for o in outcomes] == [0, 1]
    assert [o.result.steps for o in outcomes] == [2 * STEPS, 2 * STEPS]
    assert outcomes[0].result.checkpoint is not None
    assert outcomes[1].result.checkpoint is None  # rank 0 alone writes
    assert outcomes[1].losses == []  # and alone reports
    # Adam turns rounding differences in tiny gradients into ~1e-5 differences;
    # two ranks that saw other rows, or did not average gradients, differ by ~1e-2.
    np.testing.assert_allclose(outcomes[0].losses, reference[0][STEPS : 2 * STEPS], rtol=1e-3)


def test_checkpoint_from_one_process_resumes_on_two_ranks(worlds) -> None:
    saved = load_checkpoint(worlds[1], prefer="last")
    assert saved.step == 2 * STEPS
    assert saved.meta["world_size"] == 2
    assert [h["step"] for h in saved.history] == [STEPS, 2 * STEPS]  # history carried on


def test_checkpoint_from_two_ranks_resumes_on_one(worlds, reference) -> None:
    _, _, losses, result, run = worlds
    assert result.steps == 3 * STEPS
    np.testing.assert_allclose(losses, reference[0][2 * STEPS :], rtol=1e-3)
    ours = final_weights(run)
    theirs = final_weights(reference[1])
    assert ours.keys() == theirs.keys()
    for name in ours:
        torch.testing.assert_close(ours[name], theirs[name], rtol=1e-3, atol=2e-3, msg=name)


def test_every_rank_starts_from_the_same_weights(corpus_path: Path) -> None:
    corpus = load_corpus(str(corpus_path))
    config = train_config(HALF_BATCH, 1)
    first, second = (
        Trainer(corpus, model_config(), config, rank=rank).model.state_dict() for rank in (0, 1)
    )
    for name in first:
        torch.testing.assert_close(first[name], second[name], rtol=0, atol=0)


TORCHRUN = shutil.which("torchrun", path=str(Path(sys.executable).parent)) or shutil.which(
    "torchrun"
)


@pytest.mark.skipif(TORCHRUN is None, reason="torchrun is not installed")
def test_torchrun_cli_stops_all_ranks_on_the_time_budget(corpus_path: Path, tmp_path: Path) -> None:
    torchrun = str(TORCHRUN)
    budget = 10.0
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    command = [
        torchrun, "--standalone", "--nproc_per_node", "2", "-m", "charlm_tui", "train",
        "--corpus", str(corpus_path), "--out", str(tmp_path / "run"), "--preset", "tiny",
        "--device", "cpu", "--time-budget", str(budget), "--ddp", "--json",
    ]  # fmt: skip
    started = time.monotonic()
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=90, cwd=ROOT)
    elapsed = time.monotonic() - started
    assert done.returncode == 0, done.stderr[-2000:]
    lines = [line for line in done.stdout.splitlines() if line.strip()]
    assert len(lines) == 1, done.stdout  # rank 0 alone prints
    result = json.loads(lines[0])
    assert result["stopped_by"] == "time_budget"
    assert result["steps"] > 0
    assert Path(result["checkpoint"]).is_dir()
    # The ranks agreed to stop (a rank left waiting in an all-reduce would hang the run).
    assert elapsed < budget + 20


def test_ranks_draw_interleaved_rows_of_one_global_batch(corpus_path: Path) -> None:
    ids = load_corpus(str(corpus_path)).ids
    cpu = torch.device("cpu")
    for batching in ("random", "stateful"):
        config = replace(train_config(BATCH, 1), batching=batching)
        whole = BatchSource(ids, config, cpu, 11)
        per_rank = replace(config, batch_size=HALF_BATCH)
        ranks = [BatchSource(ids, per_rank, cpu, 11, rank=r, world_size=2) for r in (0, 1)]
        for _ in range(3):
            inputs, targets, reset = whole.next()
            parts = [source.next() for source in ranks]
            for rank, (rank_inputs, rank_targets, rank_reset) in enumerate(parts):
                torch.testing.assert_close(rank_inputs, inputs[rank::2])
                torch.testing.assert_close(rank_targets, targets[rank::2])
                assert rank_reset == reset


def test_torchrun_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        monkeypatch.delenv(name, raising=False)
    assert torchrun_world() is None
    monkeypatch.setenv("RANK", "3")
    monkeypatch.setenv("WORLD_SIZE", "4")
    assert torchrun_world() is None  # LOCAL_RANK missing: not torchrun
    monkeypatch.setenv("LOCAL_RANK", "1")
    world = torchrun_world()
    assert (world.rank, world.world_size, world.local_rank) == (3, 4, 1)
    monkeypatch.setenv("RANK", "x")
    with pytest.raises(ConfigError):
        torchrun_world()


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-GPU error")
def test_ddp_on_cuda_without_a_gpu_is_a_user_error() -> None:
    with pytest.raises(ConfigError, match="no CUDA GPU"):
        rank_device("cuda", 0)
    assert rank_device("cpu", 3) == "cpu"


def test_stateful_streams_restart_when_the_world_size_changes(
    corpus_path: Path, tmp_path: Path
) -> None:
    """Only rank 0's carried state is saved: another world size starts fresh streams."""
    corpus = load_corpus(str(corpus_path))
    config = replace(train_config(BATCH, 5), batching="stateful")
    Trainer(corpus, model_config(), config, out_dir=tmp_path).run()
    same = Trainer(corpus, None, replace(config, max_steps=10), out_dir=tmp_path, resume=True)
    assert same.carry is not None and same.batches.position > 0
    state_file = load_checkpoint(tmp_path, prefer="last").path / "state.json"
    state = json.loads(state_file.read_text())
    state["world_size"] = 2  # as if two ranks had written it
    state_file.write_text(json.dumps(state))
    other = Trainer(corpus, None, replace(config, max_steps=10), out_dir=tmp_path, resume=True)
    assert other.carry is None and other.batches.position == 0
    assert other.batches.next()[2] is True  # the first batch resets the state
