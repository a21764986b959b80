"""Saved runs as a user sees them: the list, one run's summary and history, a CSV export.

Read from state.json and metrics.jsonl only, with no torch, so the UI and the
`runs` subcommands list runs without starting the engine. A run is named by
its directory, or by its name under the user's runs directory; `checkpoint_spec`
lets every `--checkpoint` take such a name too.

A damaged run (state.json unreadable, not JSON, or a field the list reads of the
wrong type or range: engine.runs.state_schema.check_listing) is listed with
`damaged` set to a one-line reason, after the others; it never hides the rest.

`export_csv` never writes inside a run directory (the run's own files are not a
destination), never replaces an existing file unless told to, and writes through
engine/files.py (a fresh temporary renamed into place: a planted link is replaced,
never followed).
"""

from __future__ import annotations

import csv
import io
import os
from datetime import datetime, timezone
from pathlib import Path

from engine.errors import CheckpointError, UserError, first_line
from engine.files import describe_write_error, read_json, show_path, user_path, write_atomic
from engine.paths import data_dir
from engine.runs.metrics_log import METRICS_FILE, read_metrics
from engine.runs.state_schema import check_listing

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


def _read_state(run: Path) -> tuple[dict, str | None]:
    """(state, None) for a sound run; ({}, one-line reason) for a damaged one."""
    path = _state_file(run)
    if path is None:
        return {}, "no checkpoint (state.json) in it"
    try:
        state = read_json(path, what="state.json", error=CheckpointError)
        if not isinstance(state, dict):
            raise CheckpointError("state.json is not a JSON object")
        check_listing(state)
    except UserError as exc:
        return {}, first_line(exc, "damaged")
    return state, None


def _summary(run: Path, state: dict, damaged: str | None = None) -> dict:
    history = state.get("history") or []
    saved_at = float(state.get("saved_at", 0.0) or 0.0)
    return {
        "run_dir": str(run),
        "name": run.name,
        "step": None if damaged else int(state.get("step", 0)),
        "model_type": (state.get("model") or {}).get("model_type", "?"),
        "corpus": (state.get("corpus") or {}).get("name", "?"),
        "val_loss": history[-1].get("val_loss") if history else None,
        "best_val_loss": state.get("best_val_loss"),
        "saved_at": saved_at,
        "date": datetime.fromtimestamp(saved_at, timezone.utc).isoformat(timespec="seconds")
        if saved_at
        else None,
        "damaged": damaged,
    }


def list_runs(root: Path | None = None, limit: int | None = 50) -> list[dict]:
    """Saved runs under `root` (default: the user's runs directory), newest first."""
    root = root or runs_dir()
    runs = []
    for run in root.iterdir() if root.is_dir() else ():
        if not run.is_dir() or run.name.startswith("."):
            continue
        if _state_file(run) is None:
            continue  # not a run (or one that never saved)
        runs.append(_summary(run, *_read_state(run)))
    runs.sort(key=lambda r: r["name"])
    runs.sort(key=lambda r: (r["damaged"] is None, r["saved_at"]), reverse=True)
    return runs if limit is None else runs[:limit]


def _is_dir(path: Path) -> bool:
    """`path.is_dir()`, with a name too long for the file system (or any error) as no."""
    try:
        return path.is_dir()
    except OSError:
        return False


def _named(spec: str | os.PathLike) -> tuple[Path, Path | None]:
    """The path as given and, for a bare name, where a saved run of that name would be."""
    path = user_path(spec)
    if path.is_absolute() or len(path.parts) != 1 or path.name in (".", ".."):
        return path, None
    return path, data_dir() / "runs" / path


def find_run(spec: str | os.PathLike) -> Path:
    """A run directory from a path (a run, or one of its checkpoints) or a run's name."""
    path, named = _named(spec)
    for candidate in (path, named):
        if candidate is None or not _is_dir(candidate):
            continue
        if _state_file(candidate) is not None:
            return candidate
        if (candidate / "state.json").is_file():  # a checkpoint inside a run
            return candidate.resolve().parent
    raise CheckpointError(
        f"no run '{show_path(spec)}': not a run directory or the name of one in "
        f"{show_path(data_dir() / 'runs')} (see `charlm-tui runs list`)"
    )


def checkpoint_spec(spec: str | os.PathLike) -> Path:
    """What a `--checkpoint` names: the path when it exists, else a saved run's name
    (the names `runs list` shows). A bare name that is neither is a one-line error."""
    path, named = _named(spec)
    try:
        if os.path.lexists(path) or named is None:
            return path
    except OSError:  # lexists says no to a name too long; kept for the loader's message
        return path
    if _is_dir(named):
        return named
    raise CheckpointError(
        f"no checkpoint '{show_path(spec)}': not a path, nor the name of a run in "
        f"{show_path(named.parent)} (see `charlm-tui runs list`)"
    )


def _history(run: Path, state: dict) -> list[dict]:
    """Every record of the run: metrics.jsonl, or for older runs state.json's evaluations."""
    records = read_metrics(run / METRICS_FILE)
    if records:
        return records
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


def run_history(run: Path) -> list[dict]:
    """Every record of the run (a damaged state.json adds none of its own)."""
    return _history(run, _read_state(run)[0])


def show_run(spec: str | os.PathLike) -> dict:
    """One run: its summary, model and training settings, evaluations and final figures.

    A damaged run is shown too: `damaged` says why, the rest is what metrics.jsonl holds.
    """
    run = find_run(spec)
    state, damaged = _read_state(run)
    records = _history(run, state)
    evals = [r for r in records if r.get("kind") == "eval"]
    finals = [r for r in records if r.get("kind") == "final"]
    train = state.get("train")
    return {
        **_summary(run, state, damaged),
        "model": state.get("model") or {},
        "train": train if isinstance(train, dict) else {},
        "metrics_file": str(run / METRICS_FILE) if (run / METRICS_FILE).exists() else None,
        "logged_steps": sum(1 for r in records if r.get("kind") == "step"),
        "evaluations": evals,
        "final": finals[-1] if finals else None,
    }


def _inside_a_run(path: Path) -> Path | None:
    """The run directory `path` would be written in (itself or any folder above), if any."""
    folder = path.parent.resolve()
    for candidate in (folder, *folder.parents):
        if _state_file(candidate) is not None or os.path.lexists(candidate / METRICS_FILE):
            return candidate
        if (candidate / "state.json").exists():  # a checkpoint directory
            return candidate
    return None


def export_csv(spec: str | os.PathLike, destination: str | os.PathLike, force: bool = False) -> int:
    """Write the run's records as CSV (one row per record); returns the number of rows.

    Refused: a destination inside any run directory, a directory, and an existing
    file unless `force` (which replaces it, a link included, never writing through it).
    """
    text, rows = csv_text(spec)
    destination = user_path(destination)
    shown = show_path(destination)
    run = _inside_a_run(destination)
    if run is not None:
        raise CheckpointError(
            f"refusing to write {shown}: it is inside the run directory {show_path(run)} "
            "(write the CSV somewhere else)"
        )
    if _is_dir(destination):
        raise CheckpointError(f"{shown} is a directory: give a file name for the CSV")
    if os.path.lexists(destination):
        if destination.exists() and not destination.is_file():  # /dev/stdout, a FIFO
            raise CheckpointError(f"{shown} is not a regular file (use --csv - for stdout)")
        if not force:
            raise CheckpointError(f"{shown} already exists: use --force to replace it")
    try:
        write_atomic(destination, text)
    except OSError as exc:
        raise CheckpointError(describe_write_error(destination, exc)) from None
    return rows


def csv_text(spec: str | os.PathLike) -> tuple[str, int]:
    """The run's records as CSV text (a header, one row per record) and the row count."""
    records = run_history(find_run(spec))
    text = io.StringIO(newline="")
    writer = csv.DictWriter(text, fieldnames=CSV_COLUMNS, extrasaction="ignore")
    writer.writeheader()
    for record in records:
        writer.writerow({k: "" if record.get(k) is None else record.get(k) for k in CSV_COLUMNS})
    return text.getvalue(), len(records)


def thin(records: list[dict], max_steps: int = 2000) -> list[dict]:
    """Every evaluation, and at most `max_steps` step records evenly spread (for a plot)."""
    steps = [i for i, r in enumerate(records) if r.get("kind") == "step"]
    if len(steps) <= max_steps:
        return list(records)
    stride = len(steps) / max_steps
    keep = {steps[int(i * stride)] for i in range(max_steps)} | {steps[-1]}
    return [r for i, r in enumerate(records) if r.get("kind") != "step" or i in keep]
