"""A time budget too short for even one step (issue 21, bad input): one line that says
what budget would do, exit 2, and nothing written: no new run directory, and an old
run that `--force` or `--resume` named stays exactly as it was."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from engine.training.checkpoint import load_checkpoint
from tests.cli.test_promises_cli import TINY, fails_after_progress, train
from tests.cli.test_run_dir_cli import snapshot
from tests.helpers import cli_json, run_cli, write_markov

# The budget keeps at least a save and the exit (about 1.1 s) after the last step, so a
# 1 s budget never fits a step, however fast the machine.
TOO_SHORT = ("--time-budget", "1")


@pytest.fixture(scope="module")
def corpus_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path, _ = write_markov(tmp_path_factory.mktemp("short-budget") / "markov.txt", 20_000)
    return path


@pytest.fixture(scope="module")
def finished_run(corpus_file: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("short-budget-run") / "run"
    cli_json(run_cli("train", "--corpus", corpus_file, "--out", out, *TINY, "--max-steps", "6",
                     "--set", "eval_interval=3", "--json"))  # fmt: skip
    return out


@pytest.fixture
def run_dir(finished_run: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "run"
    shutil.copytree(finished_run, copy, symlinks=True)
    (copy / ".lock").unlink(missing_ok=True)
    return copy


def advised_seconds(error: str) -> int:
    match = re.search(r"give (\d+) s or more", error)
    assert match, error
    return int(match.group(1))


def test_a_budget_with_no_time_to_train_is_one_line_and_leaves_nothing(
    cli_main, corpus_file: Path, tmp_path: Path
) -> None:
    out = tmp_path / "new-run"
    proc = train(cli_main, corpus_file, out, *TOO_SHORT)
    error = fails_after_progress(proc, "1 s --time-budget leaves no time to train", "nothing")
    assert advised_seconds(error) > 1
    assert not out.exists()


def test_force_with_a_budget_too_short_keeps_the_old_run(
    cli_main, corpus_file: Path, run_dir: Path
) -> None:
    before = snapshot(run_dir)
    proc = train(cli_main, corpus_file, run_dir, "--force", *TOO_SHORT)
    fails_after_progress(proc, "no time to train")
    assert snapshot(run_dir) == before
    assert load_checkpoint(run_dir, prefer="last").step == 6


def test_resume_with_a_budget_too_short_keeps_the_run(
    cli_main, corpus_file: Path, run_dir: Path
) -> None:
    before = snapshot(run_dir)
    proc = train(cli_main, corpus_file, run_dir, "--resume", *TOO_SHORT)
    fails_after_progress(proc, "no time to train")
    assert snapshot(run_dir) == before
