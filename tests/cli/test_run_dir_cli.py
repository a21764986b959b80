"""Issue 19 through the real entry point: planted links in a run directory, `--force` that
fails or is killed, weights of another dtype, checkpoint files that are FIFOs; and a time
budget too short for one step (issue 21): one line, exit 2, nothing written."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from safetensors.torch import load_file, save_file

from engine.runs.checkpoint import MODEL_FILE, STATE_FILE, load_checkpoint
from engine.runs.metrics_log import METRICS_FILE, read_metrics
from tests.cli.test_promises_cli import TINY, fails_after_progress, train
from tests.engine.test_run_links import assert_untouched, plant_link
from tests.helpers import REPO, assert_user_error, cli_env, cli_json, run_cli, write_markov


@pytest.fixture(scope="module")
def corpus_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path, _ = write_markov(tmp_path_factory.mktemp("run-dir-corpus") / "markov.txt", 20_000)
    return path


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory: pytest.TempPathFactory, corpus_file: Path) -> Path:
    """A finished 10-step run (checkpoints at steps 5 and 10), copied by each test."""
    out = tmp_path_factory.mktemp("run-dir-runs") / "run"
    cli_json(run_cli("train", "--corpus", corpus_file, "--out", out, *TINY, "--max-steps", "10",
                     "--set", "eval_interval=5", "--json"))  # fmt: skip
    return out


@pytest.fixture
def run_dir(finished_run: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "runs" / "run"
    shutil.copytree(finished_run, copy, symlinks=True)
    (copy / ".lock").unlink(missing_ok=True)
    return copy


def snapshot(run: Path) -> dict[str, bytes]:
    """Every file of the run (through the tags) and where the tags point."""
    files = {}
    for path in sorted(run.rglob("*")):
        rel = str(path.relative_to(run))
        if path.is_symlink():
            files[rel] = os.readlink(path).encode()
        elif path.is_file() and path.name != ".lock":
            files[rel] = path.read_bytes()
    return files


# ----- planted links -------------------------------------------------------------------


@pytest.mark.parametrize("name", [".lock", ".metrics.jsonl.tmp", METRICS_FILE])
@pytest.mark.parametrize("target_exists", [True, False])
def test_train_refuses_a_run_dir_with_a_planted_link(
    cli_main, corpus_file: Path, tmp_path: Path, name: str, target_exists: bool
) -> None:
    out = tmp_path / "out"
    victim = plant_link(out, name, target_exists)
    proc = train(cli_main, corpus_file, out, "--max-steps", "3")
    fails_after_progress(proc, name, "symbolic link")
    assert_untouched(victim, target_exists)


def test_resume_refuses_a_link_planted_beside_a_run(
    cli_main, corpus_file: Path, run_dir: Path, tmp_path: Path
) -> None:
    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n", encoding="utf-8")
    (run_dir / METRICS_FILE).unlink()
    (run_dir / METRICS_FILE).symlink_to(victim)
    proc = train(cli_main, corpus_file, run_dir, "--resume", "--max-steps", "12")
    fails_after_progress(proc, METRICS_FILE, "symbolic link")
    assert victim.read_text(encoding="utf-8") == "precious\n"


@pytest.mark.parametrize("where", ["outside", "not-a-checkpoint"])
def test_train_refuses_a_tag_that_names_no_checkpoint_of_the_run(
    cli_main, corpus_file: Path, run_dir: Path, tmp_path: Path, where: str
) -> None:
    (run_dir / "best").unlink()
    target = run_dir / METRICS_FILE
    if where == "outside":
        target = tmp_path / "elsewhere"
        target.mkdir()
    (run_dir / "best").symlink_to(target)
    before = snapshot(run_dir)
    proc = train(cli_main, corpus_file, run_dir, "--resume", "--max-steps", "12")
    fails_after_progress(proc, "best", "inside the run")
    assert snapshot(run_dir) == before


def test_resume_accepts_best_as_an_absolute_link_inside_the_run(
    cli_main, corpus_file: Path, run_dir: Path
) -> None:
    best = (run_dir / "best").resolve()
    (run_dir / "best").unlink()
    (run_dir / "best").symlink_to(best)  # absolute, inside the run: allowed
    proc = train(cli_main, corpus_file, run_dir, "--resume", "--max-steps", "15")
    assert proc.returncode == 0, proc.stderr
    assert load_checkpoint(run_dir, prefer="last").step == 15


# ----- --force replaces the old run only once the new one has a checkpoint -------------


@pytest.mark.parametrize(
    "setting", ["hidden_size=65536", "seq_len=4096", "val_fraction=0.99999", "lr=1e30"]
)
def test_force_with_a_bad_config_keeps_the_old_run(
    cli_main, corpus_file: Path, run_dir: Path, setting: str
) -> None:
    before = snapshot(run_dir)
    proc = train(cli_main, corpus_file, run_dir, "--max-steps", "3", "--force", "--set", setting)
    fails_after_progress(proc)
    assert snapshot(run_dir) == before
    assert load_checkpoint(run_dir, prefer="last").step == 10


def test_a_killed_force_start_leaves_the_old_run_loadable(corpus_file: Path, run_dir: Path) -> None:
    before = snapshot(run_dir)
    old_metrics = read_metrics(run_dir / METRICS_FILE)
    proc = subprocess.Popen(
        [sys.executable, "-m", "charlm_tui", "train", "--corpus", str(corpus_file), "--out",
         str(run_dir), *TINY, "--force", "--max-steps", "100000", "--set", "eval_interval=100000"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=cli_env(), cwd=REPO,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and proc.poll() is None:  # until steps are logged
            logs = [p for p in run_dir.glob(".metrics.jsonl.tmp-*") if p.stat().st_size > 200]
            if logs:
                break
            time.sleep(0.1)
        assert proc.poll() is None, "the new run was still training"
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert load_checkpoint(run_dir, prefer="last").step == 10
    assert read_metrics(run_dir / METRICS_FILE) == old_metrics
    after = snapshot(run_dir)
    assert {k: v for k, v in after.items() if not k.startswith(".")} == before


def test_force_replaces_the_run_and_its_metrics_at_the_first_checkpoint(
    cli_main, corpus_file: Path, run_dir: Path
) -> None:
    old = {p.name for p in run_dir.glob("step-*")}
    proc = train(cli_main, corpus_file, run_dir, "--max-steps", "4", "--force", "--set",
                 "eval_interval=2")  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert load_checkpoint(run_dir, prefer="last").step == 4
    assert load_checkpoint(run_dir, prefer="best").step in (2, 4)
    assert not old & {p.name for p in run_dir.glob("step-*")}, "the old checkpoints are gone"
    steps = [r["step"] for r in read_metrics(run_dir / METRICS_FILE) if r["kind"] == "step"]
    assert steps == [1, 2, 3, 4]
    assert not [p.name for p in run_dir.iterdir() if ".tmp" in p.name]


# ----- weights of another dtype, files that are not files ------------------------------


def test_generate_refuses_weights_of_another_dtype(cli_main, run_dir: Path) -> None:
    model = (run_dir / "last").resolve() / MODEL_FILE
    tensors = load_file(str(model))
    save_file({k: v.half() for k, v in tensors.items()}, str(model))
    proc = cli_main("generate", "--checkpoint", run_dir, "--length", "5", "--json")
    assert_user_error(proc, "F16", "F32", MODEL_FILE)


@pytest.mark.parametrize("name", [STATE_FILE, MODEL_FILE])
def test_generate_and_runs_list_do_not_hang_on_a_fifo(run_dir: Path, name: str) -> None:
    for tag in ("last", "best"):
        path = (run_dir / tag).resolve() / name
        path.unlink(missing_ok=True)
        os.mkfifo(path)
    proc = run_cli("generate", "--checkpoint", run_dir, "--length", "5", "--json", timeout=60)
    assert_user_error(proc, name, "named pipe")
    proc = run_cli("runs", "list", "--dir", run_dir.parent, "--json", timeout=60)
    assert proc.returncode in (0, 2), proc.stderr
    assert "Traceback" not in proc.stderr


# ----- a budget too short for one step writes nothing ---------------------------------

# The budget keeps at least a save and the exit (about 1.1 s) after the last step, so a
# 1 s budget never fits a step, however fast the machine.
TOO_SHORT = ("--time-budget", "1")


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


@pytest.mark.parametrize("flag", ["--force", "--resume"])
def test_a_budget_too_short_keeps_the_run_that_force_or_resume_names(
    cli_main, corpus_file: Path, run_dir: Path, flag: str
) -> None:
    before = snapshot(run_dir)
    proc = train(cli_main, corpus_file, run_dir, flag, *TOO_SHORT)
    fails_after_progress(proc, "no time to train")
    assert snapshot(run_dir) == before
    assert load_checkpoint(run_dir, prefer="last").step == 10
