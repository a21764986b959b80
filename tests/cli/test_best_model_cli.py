"""train / eval / generate: a run whose val loss turned up reports, scores and loads its best model."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tests.helpers import run_cli

# A big model on 3,000 random letters: learnt to log(8) in a few steps, then memorised.
OVERFIT = ("--set", "hidden_size=128", "--set", "lr=0.01", "--set", "eval_interval=10",
           "--set", "eval_chars=300", "--set", "warmup_steps=0")  # fmt: skip


@pytest.fixture(scope="module")
def overfit_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, object]:
    where = tmp_path_factory.mktemp("best")
    rng = np.random.default_rng(0)
    corpus = where / "noise.txt"
    corpus.write_text("".join(rng.choice(list("abcdefgh"), 3000)), encoding="utf-8")
    out = where / "run"
    proc = run_cli(
        "train", "--corpus", corpus, "--out", out, "--preset", "tiny", "--device", "cpu",
        "--time-budget", "60", *OVERFIT,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    return corpus, out, proc


def test_train_stops_past_the_best_and_says_the_result_is_the_best(overfit_run) -> None:
    _, out, proc = overfit_run
    state = json.loads((out / "last" / "state.json").read_text(encoding="utf-8"))
    best = min(state["history"], key=lambda h: h["val_loss"])
    assert f"stopped at step {state['step']:,}:" in proc.stderr
    assert "overfitting" in proc.stderr
    assert f"the result is the best model (best at step {best['step']:,}" in proc.stderr


def test_train_json_and_eval_agree_on_the_best_model(overfit_run, tmp_path: Path) -> None:
    corpus, _, _ = overfit_run
    out = tmp_path / "run"
    proc = run_cli(
        "train", "--corpus", corpus, "--out", out, "--preset", "tiny", "--device", "cpu",
        "--time-budget", "60", "--json", *OVERFIT,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert result["stopped_by"] == "overfitting"
    assert result["reported"] == "best"
    assert result["best_step"] < result["steps"]
    assert result["last_val_loss"] > result["best_val_loss"]
    assert not result["partial_eval"]
    # eval loads the best by default: the same model, the same split, the same figure.
    proc = run_cli("eval", "--checkpoint", out, "--corpus", corpus, "--json")
    assert proc.returncode == 0, proc.stderr
    scored = json.loads(proc.stdout)
    assert scored["step"] == result["best_step"]
    assert scored["loss"] == pytest.approx(result["val_loss"], abs=1e-4)
    assert f"best at step {result['best_step']:,}" in scored["model_note"]
    proc = run_cli("eval", "--checkpoint", out, "--corpus", corpus)
    assert f"best at step {result['best_step']:,}" in proc.stderr
    proc = run_cli("generate", "--checkpoint", out, "--length", "20", "--json")
    assert proc.returncode == 0, proc.stderr
    assert f"best at step {result['best_step']:,}" in json.loads(proc.stdout)["model_note"]
    # --resume continues from the last weights, not the best.
    proc = run_cli(
        "train", "--corpus", corpus, "--out", out, "--resume", "--device", "cpu",
        "--max-steps", str(result["steps"] + 3), "--json",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["steps"] == result["steps"] + 3
