"""`charlm-tui train` stopped by a signal (SIGTERM, SIGHUP, SIGINT) saves the run at the stop.

A real process, a real signal: the command stops at the next step boundary, saves a
checkpoint there (skipping the final evaluation), prints its JSON and exits 128+N.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.cli.test_train_cli import train_args
from tests.helpers import REPO, cli_env, write_markov


@pytest.fixture(scope="module")
def corpus_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path, _ = write_markov(tmp_path_factory.mktemp("signal-corpus") / "markov.txt", 20_000)
    return path


def _train_then_signal(
    corpus: Path, out: Path, signals: list[int], *extra: str, launcher: list[str] | None = None
) -> tuple[int, dict, str]:
    """Start an endless tiny run, send `signals` once it has saved once; (code, JSON, stderr)."""
    args = train_args(corpus, out, "--max-steps", "1000000", "--set", "eval_interval=25", *extra)
    proc = subprocess.Popen(
        [*(launcher or [sys.executable]), "-m", "charlm_tui", *map(str, args), "--json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=cli_env(),
        cwd=REPO,
    )
    try:
        deadline = time.monotonic() + 60
        while not (out / "last").exists():  # training is under way and has saved once
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "no checkpoint appeared"
            time.sleep(0.05)
        time.sleep(0.3)
        signalled = time.monotonic()
        for number in signals:
            proc.send_signal(number)
            time.sleep(0.01)
        stdout, stderr = proc.communicate(timeout=30)
        assert time.monotonic() - signalled < 15, "the command did not stop promptly"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    if launcher is None:
        assert "Traceback" not in stderr, stderr
    else:  # torchrun prints a traceback of its own for its SIGTERM: none from our code
        assert "charlm_tui/" not in stderr and "/engine/" not in stderr, stderr
    assert stdout.strip(), f"no JSON (exit {proc.returncode}): {stderr}"
    return proc.returncode, json.loads(stdout), stderr


def _assert_saved_at_the_stop(out: Path, result: dict) -> None:
    from engine.runs.checkpoint import load_checkpoint

    assert result["stopped_by"] == "stop"
    assert 25 < result["steps"] < 1_000_000
    checkpoint = load_checkpoint(out, prefer="last", with_trainer=True)
    assert checkpoint.step == result["steps"], "the checkpoint is the stop, not a periodic one"
    assert checkpoint.trainer_tensors, "enough to resume exactly"
    assert Path(result["checkpoint"]).resolve() == checkpoint.path.resolve()
    # .lock is the run directory's lock file (engine/runs/run_dir.py), kept on purpose.
    temporaries = [p for p in out.iterdir() if p.name.startswith(".") and p.name != ".lock"]
    assert not temporaries, "no half-written files"


@pytest.mark.slow
@pytest.mark.parametrize("number", [signal.SIGTERM, signal.SIGHUP], ids=["SIGTERM", "SIGHUP"])
def test_a_stop_signal_saves_the_run_at_the_stop(
    corpus_file: Path, tmp_path: Path, number: int
) -> None:
    out = tmp_path / "run"
    code, result, _ = _train_then_signal(corpus_file, out, [number])
    assert code == 128 + number
    _assert_saved_at_the_stop(out, result)


@pytest.mark.slow
@pytest.mark.parametrize("number", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_ddp_on_one_device_saves_on_a_signal_too(
    corpus_file: Path, tmp_path: Path, number: int
) -> None:
    """`--ddp` with one device (or none) trains in this one process: the same stop."""
    out = tmp_path / "run"
    code, result, stderr = _train_then_signal(corpus_file, out, [number], "--ddp")
    assert "one process" in stderr
    assert code == 128 + number
    _assert_saved_at_the_stop(out, result)


TORCHRUN = Path(sys.executable).with_name("torchrun")


@pytest.mark.slow
@pytest.mark.skipif(not TORCHRUN.exists(), reason="torchrun is not installed")
def test_torchrun_ranks_save_when_torchrun_gets_sigterm(corpus_file: Path, tmp_path: Path) -> None:
    """torchrun passes SIGTERM on to its ranks: they stop at one agreed step, rank 0 saves."""
    out = tmp_path / "run"
    launcher = [str(TORCHRUN), "--standalone", "--nproc_per_node", "2"]
    code, result, _ = _train_then_signal(
        corpus_file, out, [signal.SIGTERM], "--ddp", launcher=launcher
    )
    assert code != 0  # torchrun reports its own SIGTERM however its ranks ended
    assert result["stop_signal"] == "SIGTERM"
    _assert_saved_at_the_stop(out, result)


@pytest.mark.slow
def test_a_repeated_sigterm_still_saves(corpus_file: Path, tmp_path: Path) -> None:
    """A service manager or a hung-up terminal may signal twice: the second is no abort."""
    out = tmp_path / "run"
    code, result, _ = _train_then_signal(corpus_file, out, [signal.SIGTERM, signal.SIGHUP])
    assert code in (128 + signal.SIGTERM, 128 + signal.SIGHUP)
    _assert_saved_at_the_stop(out, result)
