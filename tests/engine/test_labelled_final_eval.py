"""A conditional run's final evaluation keeps to the time budget like any other (issue 22,
item 5): it has a deadline and reports progress, and scoring every label's whole span
is the whole split (not "N-1 of N chars")."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from tests.helpers import write_styles


def test_labelled_evaluation_stops_at_its_deadline_and_reports_progress(tmp_path: Path) -> None:
    from engine.data.labels import load_labelled_corpus
    from engine.training.evaluate_labelled import evaluate_labelled
    from tests.helpers import tiny_model

    corpus = load_labelled_corpus(str(write_styles(tmp_path)))
    model = tiny_model("lstm", vocab_size=len(corpus.vocab), num_labels=2)
    ids, segments = np.asarray(corpus.ids), corpus.segments
    whole, _ = evaluate_labelled(model, ids, segments, corpus.labels, with_label=True)
    assert whole.chars == sum(end - start - 1 for start, end, _ in segments.tolist())
    seen: list[tuple[int, int]] = []
    started = time.monotonic()
    cut, _ = evaluate_labelled(
        model,
        ids,
        segments,
        corpus.labels,
        with_label=True,
        deadline=time.monotonic(),  # already due
        progress=lambda done, total: seen.append((done, total)),
    )
    assert time.monotonic() - started < 5
    assert cut.chars < whole.chars


def test_a_conditional_run_scoring_its_whole_split_is_not_partial(tmp_path: Path) -> None:
    from engine.config.train import TrainConfig
    from engine.data.labels import load_labelled_corpus
    from engine.training.trainer import Trainer
    from tests.helpers import tiny_config

    corpus = load_labelled_corpus(str(write_styles(tmp_path)))
    config = TrainConfig(
        batch_size=4, seq_len=16, max_steps=4, eval_interval=4, eval_chars=256,
        conditional=True, batching="random", time_budget=60, device="cpu",
    )  # fmt: skip
    trainer = Trainer(corpus, tiny_config("lstm"), config, out_dir=tmp_path / "run")
    progress: list[object] = []
    trainer.on_event = lambda event: progress.append(event)
    result = trainer.run()
    assert not result.partial_eval, (result.val_chars, result.val_split_chars)
    assert result.val_chars == result.val_split_chars
    assert any(type(e).__name__ == "EvalProgressEvent" for e in progress)


def test_train_conditional_with_a_budget_scores_the_whole_split(cli_main, tmp_path) -> None:
    from tests.helpers import cli_json

    out = tmp_path / "run"
    proc = cli_main(
        "train", "--corpus", write_styles(tmp_path), "--out", out, "--conditional", "--preset",
        "tiny", "--max-steps", "4", "--time-budget", "60", "--json",
    )  # fmt: skip
    result = cli_json(proc)
    assert result["partial_eval"] is False
    assert result["val_chars"] == result["val_split_chars"]
