"""`runs list/show/export` with damaged runs and hostile destinations, through the CLI.

A run whose state.json is wrong is listed as damaged with a one-line reason and
never hides the others; `runs export` never writes inside a run directory and never
replaces a file without --force.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from tests.helpers import assert_user_error, cli_json, write_markov


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from engine.config.train import TrainConfig
    from engine.data.corpus import load_corpus
    from engine.training.trainer import Trainer
    from tests.helpers import tiny_config

    root = tmp_path_factory.mktemp("damaged-runs")
    path, _ = write_markov(root / "markov.txt", 5_000)
    config = TrainConfig(
        batch_size=4, seq_len=16, max_steps=10, eval_interval=10, eval_chars=128, device="cpu"
    )
    Trainer(load_corpus(str(path)), tiny_config("gru"), config, out_dir=root / "run").run()
    return root / "run"


@pytest.fixture
def runs(tmp_path: Path, trained: Path) -> Path:
    """A runs folder holding a sound run `good` and a copy `bad` to damage."""
    root = tmp_path / "runs"
    for name in ("good", "bad"):
        shutil.copytree(trained, root / name, symlinks=True)
    return root


def _state_path(run: Path) -> Path:
    return Path(os.path.realpath(run / "last")) / "state.json"


def _damage(run: Path, field: str, value: object) -> None:
    path = _state_path(run)
    state = json.loads(path.read_text(encoding="utf-8"))
    state[field] = value
    path.write_text(json.dumps(state), encoding="utf-8")


DAMAGE = {
    "step-text": ("step", "x", "step"),
    "step-negative": ("step", -1, "step"),
    "history-not-a-list": ("history", "nope", "history"),
    "history-bad-step": ("history", [{"step": "a"}], "history step"),
    "history-bad-loss": ("history", [{"step": 1, "val_loss": "low"}], "history val_loss"),
    "model-list": ("model", [1], "model"),
    "model-type-number": ("model", {"model_type": 3}, "model_type"),
    "corpus-number": ("corpus", 3, "corpus"),
    "corpus-name-number": ("corpus", {"name": 5}, "corpus name"),
    "saved-at-text": ("saved_at", "yesterday", "saved_at"),
    "saved-at-huge": ("saved_at", 1e300, "saved_at"),
    "best-text": ("best_val_loss", "low", "best_val_loss"),
}


@pytest.mark.parametrize("case", sorted(DAMAGE))
def test_a_damaged_run_is_listed_as_damaged_and_the_rest_still_are(
    case: str, runs: Path, cli_main
) -> None:
    field, value, fragment = DAMAGE[case]
    _damage(runs / "bad", field, value)
    payload = cli_json(cli_main("runs", "list", "--dir", runs, "--json"))
    by_name = {run["name"]: run for run in payload["runs"]}
    assert by_name["good"]["damaged"] is None and by_name["good"]["step"] == 10
    reason = by_name["bad"]["damaged"]
    assert reason and "\n" not in reason and fragment in reason, reason
    assert [run["name"] for run in payload["runs"]] == ["good", "bad"]  # sound runs first

    proc = cli_main("runs", "list", "--dir", runs)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert any(line.startswith("good ") for line in lines), proc.stdout
    assert any(line.startswith("bad ") and f"damaged: {reason}" in line for line in lines)

    shown = cli_main("runs", "show", runs / "bad")
    assert shown.returncode == 0, shown.stderr
    assert f"damaged: {reason}" in shown.stdout.splitlines()


@pytest.mark.parametrize(
    ("content", "fragment"),
    [("{not json", "not valid JSON"), ("[" * 100_000 + "]" * 100_000, "nested too deeply")],
)
def test_unreadable_state_json_is_damaged(runs: Path, cli_main, content: str, fragment: str):
    _state_path(runs / "bad").write_text(content, encoding="utf-8")
    payload = cli_json(cli_main("runs", "list", "--dir", runs, "--json"))
    reasons = {run["name"]: run["damaged"] for run in payload["runs"]}
    assert reasons["good"] is None and fragment in reasons["bad"], reasons


@pytest.mark.timeout(30)
def test_a_state_json_fifo_neither_hangs_nor_hides_the_list(runs: Path, cli_main) -> None:
    path = _state_path(runs / "bad")
    path.unlink()
    os.mkfifo(path)
    payload = cli_json(cli_main("runs", "list", "--dir", runs, "--json"))
    reasons = {run["name"]: run["damaged"] for run in payload["runs"]}
    assert reasons["good"] is None and "named pipe" in reasons["bad"], reasons


# ----- export ---------------------------------------------------------------------------


@pytest.mark.parametrize("target", ["metrics.jsonl", "last/state.json", "new.csv", "last/x.csv"])
def test_export_refuses_any_path_inside_a_run(
    target: str, runs: Path, cli_main, tmp_path: Path
) -> None:
    run = runs / "good"
    destination = run / target
    before = destination.read_bytes() if destination.exists() else None
    proc = cli_main("runs", "export", run, "--csv", destination, "--force")
    assert_user_error(proc, "inside the run directory")
    if before is None:
        assert not destination.exists()
    else:
        assert destination.read_bytes() == before


def test_export_refuses_to_export_a_run_into_another_run(runs: Path, cli_main) -> None:
    proc = cli_main("runs", "export", runs / "good", "--csv", runs / "bad" / "metrics.jsonl")
    assert_user_error(proc, "inside the run directory", str(runs / "bad"))


def test_export_refuses_an_existing_file_without_force(
    runs: Path, cli_main, tmp_path: Path
) -> None:
    destination = tmp_path / "out.csv"
    destination.write_text("keep me", encoding="utf-8")
    proc = cli_main("runs", "export", runs / "good", "--csv", destination)
    assert_user_error(proc, "already exists", "--force")
    assert destination.read_text(encoding="utf-8") == "keep me"
    proc = cli_main("runs", "export", runs / "good", "--csv", destination, "--force", "--json")
    assert cli_json(proc)["rows"] > 0
    assert destination.read_text(encoding="utf-8").startswith("kind,step,")


def test_export_with_force_replaces_a_link_and_never_writes_through_it(
    runs: Path, cli_main, tmp_path: Path
) -> None:
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me", encoding="utf-8")
    destination = tmp_path / "out.csv"
    destination.symlink_to(victim)
    assert_user_error(cli_main("runs", "export", runs / "good", "--csv", destination))
    proc = cli_main("runs", "export", runs / "good", "--csv", destination, "--force")
    assert proc.returncode == 0, proc.stderr
    assert victim.read_text(encoding="utf-8") == "keep me"
    assert not destination.is_symlink()
    assert destination.read_text(encoding="utf-8").startswith("kind,step,")


def test_export_never_replaces_a_device_and_writes_stdout_with_a_dash(
    runs: Path, cli_main, tmp_path: Path
) -> None:
    device = tmp_path / "stdout-link"
    device.symlink_to("/dev/null")
    proc = cli_main("runs", "export", runs / "good", "--csv", device, "--force")
    assert_user_error(proc, "not a regular file", "--csv -")
    assert device.is_symlink() and os.readlink(device) == "/dev/null"
    proc = cli_main("runs", "export", runs / "good", "--csv", "-")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("kind,step,") and len(proc.stdout.splitlines()) > 1
    assert_user_error(cli_main("runs", "export", runs / "good", "--csv", "-", "--json"), "--json")
