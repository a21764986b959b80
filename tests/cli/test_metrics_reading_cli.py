"""Issue 19, `runs show` over a hostile `metrics.jsonl`: linear and fast over blank lines,
a line nested 100,000 deep skipped like any damaged line, and a file that is not a
regular file of bounded size (a named pipe, a link to /dev/zero, a sparse 2 GB file) one
line and exit 2, never a hang or an unbounded read."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import pytest

from engine.runs.metrics_log import METRICS_FILE, read_metrics
from tests.helpers import assert_user_error, cli_json, run_cli, write_markov
from tests.hostile import HOSTILE


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from engine.config.train import TrainConfig
    from engine.data.corpus import load_corpus
    from engine.training.trainer import Trainer
    from tests.helpers import tiny_config

    root = tmp_path_factory.mktemp("metrics-run")
    corpus_file, _ = write_markov(root / "markov.txt", 5_000)
    config = TrainConfig(
        batch_size=4, seq_len=16, max_steps=12, eval_interval=6, eval_chars=128, device="cpu"
    )
    Trainer(load_corpus(str(corpus_file)), tiny_config("lstm"), config, out_dir=root / "run").run()
    return root / "run"


@pytest.fixture
def run(trained: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "run"
    shutil.copytree(trained, copy, symlinks=True)
    return copy


def test_twenty_megabytes_of_blank_lines_show_at_once(run: Path) -> None:
    path = run / METRICS_FILE
    records = path.read_bytes()
    path.write_bytes(b"\n" * (10 << 20) + records + b" \r\n" * (4 << 20))
    started = time.monotonic()
    payload = cli_json(run_cli("runs", "show", run, "--json", timeout=60))
    assert time.monotonic() - started < 15  # 52 s before; ~3 s of it is the interpreter
    assert payload["logged_steps"] == 12 and [e["step"] for e in payload["evaluations"]] == [6, 12]
    started = time.perf_counter()
    assert len(read_metrics(path)) == len(records.splitlines())
    assert time.perf_counter() - started < 2.0


def test_a_line_nested_100000_deep_is_skipped_like_any_damaged_line(run: Path) -> None:
    path = run / METRICS_FILE
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    deep = '{"step": 3, "x": ' + "[" * 100_000 + "]" * 100_000 + "}\n"
    long = json.dumps({"kind": "step", "step": 5, "pad": "x" * (1 << 20)}) + "\n"
    path.write_text("".join([*lines[:3], deep, long, *lines[3:]]), encoding="utf-8")
    payload = cli_json(run_cli("runs", "show", run, "--json", timeout=60))
    assert payload["logged_steps"] == 12
    assert [r["step"] for r in read_metrics(path)] == [json.loads(x)["step"] for x in lines]


@pytest.mark.parametrize("kind", sorted(HOSTILE))
def test_a_metrics_file_that_is_not_a_bounded_regular_file_is_one_line(
    run: Path, kind: str
) -> None:
    make, fragment = HOSTILE[kind]
    path = run / METRICS_FILE
    path.unlink()
    make(path)
    started = time.monotonic()
    assert_user_error(run_cli("runs", "show", run, "--json", timeout=60), "metrics", fragment)
    assert time.monotonic() - started < 30
