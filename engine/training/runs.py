"""Saved runs as a user sees them: the list, one run's summary and history, a CSV export.

Read from state.json and metrics.jsonl only, with no torch, so the UI and the
`runs` subcommands list runs without starting the engine. A run is named by
its directory, or by its name under the user's runs directory.
"""

from __future__ import annotations

import csv
import json
import os
from datetime import datetime, timezone
from pathlib import Path

from engine.errors import CheckpointError
from engine.paths import data_dir
from engine.training.metrics_log import METRICS_FILE, read_metrics

CSV_COLUMNS = (
    "kind",
    "step",
    "elapsed_s",
    "train_loss",
    "lr",
    "chars_per_s",
    "grad_norm",
    "val_loss",
    "val_bpc",
    "best",
)


def runs_dir() -> Path:
    """Where the TUI starts new runs (`CHARLM_DATA_DIR`/runs)."""
    path = data_dir() / "runs"
    path.mkdir(parents=True, exist_ok=True)
    return path


def _state_file(run: Path) -> Path | None:
    for tag in ("last", "best"):
        path = run / tag / "state.json"
        if path.exists():
            return path
    return None


def _read_state(run: Path) -> dict | None:
    path = _state_file(run)
    if path is None:
        return None
    try:
        state = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return state if isinstance(state, dict) else None


def _summary(run: Path, state: dict) -> dict:
    history = state.get("history") or []
    saved_at = float(state.get("saved_at", 0.0) or 0.0)
    return {
        "run_dir": str(run),
        "name": run.name,
        "step": int(state.get("step", 0)),
        "model_type": (state.get("model") or {}).get("model_type", "?"),
        "corpus": (state.get("corpus") or {}).get("name", "?"),
        "val_loss": history[-1].get("val_loss") if history else None,
        "best_val_loss": state.get("best_val_loss"),
        "saved_at": saved_at,
        "date": datetime.fromtimestamp(saved_at, timezone.utc).isoformat(timespec="seconds")
        if saved_at
        else None,
    }


def list_runs(root: Path | None = None, limit: int | None = 50) -> list[dict]:
    """Saved runs under `root` (default: the user's runs directory), newest first."""
    root = root or runs_dir()
    runs = []
    for run in root.iterdir() if root.is_dir() else ():
        if not run.is_dir() or run.name.startswith("."):
            continue
        state = _read_state(run)
        if state is not None:
            runs.append(_summary(run, state))
    runs.sort(key=lambda r: r["saved_at"], reverse=True)
    return runs if limit is None else runs[:limit]


def find_run(spec: str | os.PathLike) -> Path:
    """A run directory from a path (a run, or one of its checkpoints) or a run's name."""
    path = Path(spec).expanduser()
    candidates = [path]
    if not path.is_absolute() and len(path.parts) == 1:
        candidates.append(runs_dir() / path)
    for candidate in candidates:
        if candidate.is_dir():
            if _state_file(candidate) is not None:
                return candidate
            if (candidate / "state.json").is_file():  # a checkpoint inside a run
                return candidate.resolve().parent
    raise CheckpointError(
        f"no run '{spec}': not a run directory or the name of one in {runs_dir()} "
        "(see `charlm-tui runs list`)"
    )


def run_history(run: Path) -> list[dict]:
    """Every record of the run: metrics.jsonl, or for older runs state.json's evaluations."""
    records = read_metrics(run / METRICS_FILE)
    if records:
        return records
    state = _read_state(run) or {}
    return [
        {
            "kind": "eval",
            "step": int(h.get("step", 0)),
            "val_loss": h.get("val_loss"),
            "val_bpc": h["val_loss"] / 0.6931471805599453
            if isinstance(h.get("val_loss"), (int, float))
            else None,
            "train_loss": h.get("train_loss"),
            "best": h.get("best"),
            "elapsed_s": h.get("elapsed_s"),
        }
        for h in state.get("history") or []
    ]


def show_run(spec: str | os.PathLike) -> dict:
    """One run: its summary, model and training settings, evaluations and final figures."""
    run = find_run(spec)
    state = _read_state(run) or {}
    records = run_history(run)
    evals = [r for r in records if r.get("kind") == "eval"]
    finals = [r for r in records if r.get("kind") == "final"]
    return {
        **_summary(run, state),
        "model": state.get("model") or {},
        "train": state.get("train") or {},
        "metrics_file": str(run / METRICS_FILE) if (run / METRICS_FILE).exists() else None,
        "logged_steps": sum(1 for r in records if r.get("kind") == "step"),
        "evaluations": evals,
        "final": finals[-1] if finals else None,
    }


def export_csv(spec: str | os.PathLike, destination: str | os.PathLike) -> int:
    """Write the run's records as CSV (one row per record); returns the number of rows."""
    records = run_history(find_run(spec))
    destination = Path(destination)
    if destination.is_dir():
        raise CheckpointError(f"{destination} is a directory: give a file name for the CSV")
    try:
        with open(destination, "w", encoding="utf-8", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=CSV_COLUMNS, extrasaction="ignore")
            writer.writeheader()
            for record in records:
                writer.writerow(
                    {k: "" if record.get(k) is None else record.get(k) for k in CSV_COLUMNS}
                )
    except OSError as exc:
        raise CheckpointError(f"cannot write {destination}: {exc.strerror or exc}") from None
    return len(records)


def thin(records: list[dict], max_steps: int = 2000) -> list[dict]:
    """Every evaluation, and at most `max_steps` step records evenly spread (for a plot)."""
    steps = [i for i, r in enumerate(records) if r.get("kind") == "step"]
    if len(steps) <= max_steps:
        return list(records)
    stride = len(steps) / max_steps
    keep = {steps[int(i * stride)] for i in range(max_steps)} | {steps[-1]}
    return [r for i, r in enumerate(records) if r.get("kind") != "step" or i in keep]
