"""--tensorboard: real event files (read back with TensorBoard's own reader), or one install line."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from engine.errors import ConfigError
from tests.helpers import assert_user_error, cli_json, write_markov

pytest.importorskip("tensorboard")

ROOT = Path(__file__).resolve().parents[2]
TORCHRUN = shutil.which("torchrun", path=str(Path(sys.executable).parent)) or shutil.which(
    "torchrun"
)


def read_events(log_dir: Path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    accumulator = EventAccumulator(str(log_dir), size_guidance={"scalars": 0, "tensors": 0})
    accumulator.Reload()
    return accumulator


@pytest.fixture(scope="module")
def corpus_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path, _ = write_markov(tmp_path_factory.mktemp("tb") / "markov.txt", 20_000)
    return path


def test_cli_writes_scalars_and_samples(corpus_file: Path, tmp_path: Path, cli_main) -> None:
    board = tmp_path / "board"
    proc = cli_main(
        "train", "--corpus", corpus_file, "--out", tmp_path / "run", "--preset", "tiny",
        "--device", "cpu", "--max-steps", "20", "--set", "eval_interval=10",
        "--tensorboard", board, "--json",
    )  # fmt: skip
    result = cli_json(proc)
    events = read_events(board)
    scalars = events.Tags()["scalars"]
    assert {"train/loss", "train/lr", "train/grad_norm", "val/loss", "val/bpc"} <= set(scalars)
    assert [e.step for e in events.Scalars("train/loss")] == list(range(1, 21))
    val = events.Scalars("val/loss")
    assert [e.step for e in val] == [10, 20]
    assert min(e.value for e in val) == pytest.approx(result["best_val_loss"], rel=1e-5)
    samples = events.Tensors("sample/text_summary")
    assert [e.step for e in samples] == [10, 20]
    text = samples[-1].tensor_proto.string_val[0].decode("utf-8")
    assert text.startswith("```\n") and len(text) > 100


def test_without_the_extra_the_flag_says_how_to_install(
    tmp_path: Path, cli_main, monkeypatch: pytest.MonkeyPatch
) -> None:
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name == "tensorboard" else real(name, *a),
    )
    proc = cli_main(
        "train", "--corpus", "verse", "--out", tmp_path / "run", "--tensorboard", tmp_path / "tb"
    )  # fmt: skip
    assert_user_error(proc, "pip install 'charlm-tui[tensorboard]'")
    assert not (tmp_path / "run").exists()


def test_engine_writer_without_the_package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from engine.runs.tensorboard_log import TensorBoardLog, tensorboard_available

    monkeypatch.setitem(sys.modules, "tensorboard", None)  # import tensorboard -> ImportError
    assert not tensorboard_available()
    with pytest.raises(ConfigError, match=r"charlm-tui\[tensorboard\]"):
        TensorBoardLog(tmp_path / "tb")


def _check_board(board: Path, result: dict) -> None:
    events = read_events(board)
    val = events.Scalars("val/loss")
    assert [e.step for e in val] == [10, 20]
    assert min(e.value for e in val) == pytest.approx(result["best_val_loss"], rel=1e-5)
    assert [e.step for e in events.Scalars("train/loss")] == list(range(1, 21))
    samples = events.Tensors("sample/text_summary")
    assert [e.step for e in samples] == [10, 20]
    assert len(samples[-1].tensor_proto.string_val[0].decode("utf-8")) > 100


def test_ddp_on_one_device_writes_the_board(corpus_file: Path, tmp_path: Path, cli_main) -> None:
    board = tmp_path / "board"
    proc = cli_main(
        "train", "--corpus", corpus_file, "--out", tmp_path / "run", "--preset", "tiny",
        "--device", "cpu", "--max-steps", "20", "--set", "eval_interval=10", "--ddp",
        "--tensorboard", board, "--json",
    )  # fmt: skip
    _check_board(board, cli_json(proc))


@pytest.mark.skipif(TORCHRUN is None, reason="torchrun is not installed")
def test_torchrun_ranks_write_one_board_from_rank_0(corpus_file: Path, tmp_path: Path) -> None:
    board = tmp_path / "board"
    command = [
        str(TORCHRUN), "--standalone", "--nproc_per_node", "2", "-m", "charlm_tui", "train",
        "--corpus", str(corpus_file), "--out", str(tmp_path / "run"), "--preset", "tiny",
        "--device", "cpu", "--max-steps", "20", "--set", "eval_interval=10", "--ddp",
        "--tensorboard", str(board), "--json",
    ]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=120, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-2000:]
    _check_board(board, json.loads(done.stdout.strip()))
    assert len(list(board.glob("events.out.tfevents.*"))) == 1  # rank 0 alone writes
