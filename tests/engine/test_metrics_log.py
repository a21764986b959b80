"""metrics.jsonl: what a run writes on disk, how a resume continues it, damaged files."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from engine.config.train import TrainConfig
from engine.data.corpus import Corpus, load_corpus
from engine.runs.metrics_log import (
    METRICS_FILE,
    MetricsLog,
    eval_records,
    read_metrics,
    step_records,
)
from engine.training.trainer import Trainer
from tests.helpers import tiny_config, write_markov


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Corpus:
    path, _ = write_markov(tmp_path_factory.mktemp("metrics") / "markov.txt", 20_000, seed=4)
    return load_corpus(str(path))


def quick(**values: object) -> TrainConfig:
    base = dict(
        batch_size=4,
        seq_len=16,
        lr=1e-2,
        warmup_steps=3,
        max_steps=15,
        eval_interval=10,
        eval_chars=256,
        device="cpu",
        seed=5,
    )
    base.update(values)
    return TrainConfig(**base)  # type: ignore[arg-type]


def train(corpus: Corpus, out: Path, resume: bool = False, force: bool = False, **values: object):
    trainer = Trainer(
        corpus, tiny_config("lstm"), quick(**values), out_dir=out, resume=resume, force=force
    )
    return trainer.run()


def test_a_run_writes_every_step_and_evaluation(corpus: Corpus, tmp_path: Path) -> None:
    out = tmp_path / "run"
    result = train(corpus, out)
    records = read_metrics(out / METRICS_FILE)
    steps = step_records(records)
    assert [r["step"] for r in steps] == list(range(1, 16))  # the CPU logs every step
    for r in steps:
        assert set(r) >= {"train_loss", "lr", "chars_per_s", "elapsed_s", "grad_norm"}
        assert r["train_loss"] > 0 and r["lr"] > 0 and r["grad_norm"] > 0
    evals = eval_records(records)
    assert [r["step"] for r in evals] == [10, 15]
    for r in evals:
        assert r["val_bpc"] == pytest.approx(r["val_loss"] / math.log(2))
    final = [r for r in records if r["kind"] == "final"]
    assert len(final) == 1 and final[0]["val_loss"] == pytest.approx(result.val_loss)
    # The evaluations agree with the checkpoint's own history.
    state = json.loads((out / "last" / "state.json").read_text(encoding="utf-8"))
    assert [h["val_loss"] for h in state["history"]] == [r["val_loss"] for r in evals]
    elapsed = [r["elapsed_s"] for r in records]
    assert elapsed == sorted(elapsed)


def test_resume_continues_without_duplicates(corpus: Corpus, tmp_path: Path) -> None:
    out = tmp_path / "run"
    train(corpus, out, max_steps=15)
    path = out / METRICS_FILE
    before = read_metrics(path)
    # A crash after step 15's checkpoint: steps it logged but never saved, and half a line.
    with open(path, "a", encoding="utf-8") as handle:
        for step in (16, 17, 18):
            handle.write(json.dumps({"kind": "step", "step": step, "train_loss": 9.0}) + "\n")
        handle.write('{"kind": "step", "step": 19, "train_lo')
    train(corpus, out, resume=True, max_steps=25)
    records = read_metrics(path)
    steps = [r["step"] for r in step_records(records)]
    assert steps == list(range(1, 26))
    assert all(r["train_loss"] != 9.0 for r in step_records(records))
    assert records[: len(before) - 1] == before[:-1]  # the first leg is kept as it was
    assert [r["step"] for r in eval_records(records)] == [10, 15, 20, 25]
    # One closing evaluation per leg, never two at the same step.
    assert [r["step"] for r in records if r["kind"] == "final"] == [25]
    elapsed = [r["elapsed_s"] for r in records]
    assert elapsed == sorted(elapsed)  # the clock continues across the resume
    # Every line of the file is whole JSON: the half line is gone.
    for line in path.read_text(encoding="utf-8").splitlines():
        json.loads(line)


def test_resume_with_nothing_left_replaces_the_closing_record(
    corpus: Corpus, tmp_path: Path
) -> None:
    out = tmp_path / "run"
    train(corpus, out, max_steps=12)
    train(corpus, out, resume=True, max_steps=12)
    records = read_metrics(out / METRICS_FILE)
    assert [r["step"] for r in records if r["kind"] == "final"] == [12]
    assert [r["step"] for r in step_records(records)] == list(range(1, 13))


def test_a_fresh_run_starts_a_fresh_file(corpus: Corpus, tmp_path: Path) -> None:
    out = tmp_path / "run"
    train(corpus, out, max_steps=12)
    train(corpus, out, max_steps=5, force=True)  # replacing a run takes --force (issue 9)
    assert [r["step"] for r in step_records(read_metrics(out / METRICS_FILE))] == [1, 2, 3, 4, 5]


def test_damaged_files_are_read_up_to_the_last_whole_line(tmp_path: Path) -> None:
    path = tmp_path / METRICS_FILE
    good = [{"kind": "step", "step": i, "train_loss": 1.0 / i} for i in (1, 2, 3)]
    body = "".join(json.dumps(r) + "\n" for r in good)
    path.write_text(body + '{"kind": "step", "step": 4, "tra', encoding="utf-8")
    assert read_metrics(path) == good
    # A torn write in the middle (then more lines), binary garbage, a non-record.
    path.write_bytes(
        (json.dumps(good[0]) + "\n").encode()
        + b'{"kind": "st\n'
        + b"\xff\xfe\x00garbage\n"
        + b"[1, 2]\n"
        + (json.dumps(good[1]) + "\n").encode()
    )
    assert read_metrics(path) == good[:2]
    assert read_metrics(tmp_path / "missing.jsonl") == []
    path.write_bytes(b"")
    assert read_metrics(path) == []


def test_lines_reach_the_file_while_training(tmp_path: Path) -> None:
    """Written through to the OS at each evaluation: readable before close()."""
    from engine.training.events import EvalEvent

    log = MetricsLog(tmp_path)
    log.record(EvalEvent(1, 1.0, 1.44, 2.7, 10, None, True, elapsed_s=0.5))
    assert [r["kind"] for r in read_metrics(tmp_path / METRICS_FILE)] == ["eval"]
    log.close()
