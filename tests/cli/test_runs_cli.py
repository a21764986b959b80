"""`charlm-tui runs list|show|export` and metrics.jsonl as the CLI leaves it on disk."""

from __future__ import annotations

import csv
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from engine.runs.metrics_log import METRICS_FILE, read_metrics, step_records
from tests.helpers import REPO, assert_user_error, cli_env, cli_json, run_cli, write_markov


@pytest.fixture(scope="module")
def corpus_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path, _ = write_markov(tmp_path_factory.mktemp("runs-corpus") / "markov.txt", 20_000)
    return path


@pytest.fixture(scope="module")
def runs_root(tmp_path_factory: pytest.TempPathFactory, corpus_file: Path) -> Path:
    """Two tiny runs trained in this process (the CLI test is below)."""
    from engine.config.train import TrainConfig
    from engine.data.corpus import load_corpus
    from engine.training.trainer import Trainer
    from tests.helpers import tiny_config

    root = tmp_path_factory.mktemp("runs")
    corpus = load_corpus(str(corpus_file))
    for name, model, steps in (("older", "gru", 12), ("newer", "lstm", 20)):
        config = TrainConfig(
            batch_size=4, seq_len=16, max_steps=steps, eval_interval=10, eval_chars=256,
            device="cpu",
        )  # fmt: skip
        Trainer(corpus, tiny_config(model), config, out_dir=root / name).run()
    return root


def test_runs_list_json(runs_root: Path, cli_main) -> None:
    proc = cli_main("runs", "list", "--dir", runs_root, "--json")
    payload = cli_json(proc)
    names = [(r["name"], r["model_type"], r["step"]) for r in payload["runs"]]
    assert names == [("newer", "lstm", 20), ("older", "gru", 12)]
    for run in payload["runs"]:
        assert run["corpus"] == "markov.txt"
        assert run["best_val_loss"] > 0 and run["date"].startswith("20")


def test_runs_show_json_has_every_evaluation(runs_root: Path, cli_main) -> None:
    payload = cli_json(cli_main("runs", "show", runs_root / "newer", "--json"))
    assert payload["step"] == 20 and payload["logged_steps"] == 20
    assert [e["step"] for e in payload["evaluations"]] == [10, 20]
    assert payload["final"]["step"] == 20
    assert payload["model"]["model_type"] == "lstm"
    assert payload["best_val_loss"] == min(e["val_loss"] for e in payload["evaluations"])
    human = cli_main("runs", "show", runs_root / "older")
    assert human.returncode == 0 and "older" in human.stdout and "step" in human.stdout


def test_runs_by_name_in_the_data_dir(runs_root: Path, cli_main, monkeypatch) -> None:
    data = runs_root.parent / "data"
    (data / "runs").mkdir(parents=True, exist_ok=True)
    link = data / "runs" / "newer"
    if not link.exists():
        link.symlink_to(runs_root / "newer")
    monkeypatch.setenv("CHARLM_DATA_DIR", str(data))
    assert cli_json(cli_main("runs", "show", "newer", "--json"))["step"] == 20
    listed = cli_json(cli_main("runs", "list", "--json"))
    assert [r["name"] for r in listed["runs"]] == ["newer"]


def test_runs_export_csv(runs_root: Path, tmp_path: Path, cli_main) -> None:
    out = tmp_path / "newer.csv"
    payload = cli_json(cli_main("runs", "export", runs_root / "newer", "--csv", out, "--json"))
    with open(out, encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert payload["rows"] == len(rows) == 20 + 2 + 1  # steps, evaluations, the final one
    steps = [r for r in rows if r["kind"] == "step"]
    assert [int(r["step"]) for r in steps] == list(range(1, 21))
    assert all(float(r["train_loss"]) > 0 and float(r["grad_norm"]) > 0 for r in steps)
    evals = [r for r in rows if r["kind"] == "eval"]
    records = read_metrics(runs_root / "newer" / METRICS_FILE)
    assert [float(r["val_loss"]) for r in evals] == [
        r["val_loss"] for r in records if r["kind"] == "eval"
    ]


def test_runs_bad_input_is_one_line(runs_root: Path, tmp_path: Path) -> None:
    assert_user_error(run_cli("runs", "show", tmp_path / "nothing-here"), "no run")
    assert_user_error(
        run_cli("runs", "export", runs_root / "newer", "--csv", tmp_path), "directory"
    )
    assert_user_error(run_cli("runs", "list", "--dir", tmp_path / "missing"), "not a directory")


@pytest.mark.slow
def test_killed_training_leaves_whole_lines_and_resumes(corpus_file: Path, tmp_path: Path) -> None:
    """Lines reach the disk while the CLI trains; SIGKILL; read; resume without duplicates."""
    out = tmp_path / "run"
    args = [
        sys.executable, "-m", "charlm_tui", "train", "--corpus", str(corpus_file),
        "--out", str(out), "--preset", "tiny", "--device", "cpu", "--max-steps", "100000",
        "--set", "eval_interval=20",
    ]  # fmt: skip
    proc = subprocess.Popen(
        args, cwd=REPO, env=cli_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            if (out / "last").exists() and len(step_records(read_metrics(out / METRICS_FILE))) > 30:
                break
            time.sleep(0.2)
        assert proc.poll() is None, "training ended before it was killed"
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    killed = read_metrics(out / METRICS_FILE)
    assert len(step_records(killed)) > 30
    saved_step = json.loads((out / "last" / "state.json").read_text(encoding="utf-8"))["step"]
    target = saved_step + 5
    resume_args = [
        "train", "--corpus", corpus_file, "--out", out, "--preset", "tiny", "--device", "cpu",
        "--resume", "--max-steps", target, "--set", "eval_interval=20", "--json",
    ]  # fmt: skip
    result = cli_json(run_cli(*resume_args))
    assert result["steps"] == target
    steps = [r["step"] for r in step_records(read_metrics(out / METRICS_FILE))]
    assert steps == list(range(1, target + 1))
