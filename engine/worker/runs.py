"""Where the engine keeps things: run directories, the run list, the engine log.

No torch here: the UI lists runs without starting the engine.
"""

from __future__ import annotations

import json
import re
import traceback
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from engine.paths import data_dir

if TYPE_CHECKING:  # pragma: no cover
    pass


def runs_dir() -> Path:
    path = data_dir() / "runs"
    path.mkdir(parents=True, exist_ok=True)
    return path


def log_path() -> Path:
    return data_dir() / "engine.log"


def new_run_dir(corpus_name: str, model_type: str) -> Path:
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "-", corpus_name).strip("-.")[:40] or "corpus"
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    path = runs_dir() / f"{slug}-{model_type}-{stamp}"
    suffix = 1
    while path.exists():
        suffix += 1
        path = runs_dir() / f"{slug}-{model_type}-{stamp}-{suffix}"
    return path


def list_runs(root: Path | None = None, limit: int = 50) -> list[dict]:
    """Saved runs, newest first, read from their state.json (no torch needed)."""
    root = root or runs_dir()
    runs = []
    for run in root.iterdir() if root.exists() else ():
        if not run.is_dir() or run.name.startswith("."):
            continue
        state_file = next(
            (run / tag / "state.json" for tag in ("last", "best") if (run / tag).exists()), None
        )
        if state_file is None or not state_file.exists():
            continue
        try:
            state = json.loads(state_file.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        history = state.get("history") or []
        runs.append(
            {
                "run_dir": str(run),
                "name": run.name,
                "step": int(state.get("step", 0)),
                "model_type": (state.get("model") or {}).get("model_type", "?"),
                "corpus": (state.get("corpus") or {}).get("name", "?"),
                "val_loss": history[-1].get("val_loss") if history else None,
                "best_val_loss": state.get("best_val_loss"),
                "saved_at": float(state.get("saved_at", 0.0)),
            }
        )
    runs.sort(key=lambda r: r["saved_at"], reverse=True)
    return runs[:limit]


def log_exception(context: str) -> None:
    """Write a traceback to the engine log: the user sees one line, a developer the rest."""
    try:
        with open(log_path(), "a", encoding="utf-8") as log:
            log.write(f"--- {datetime.now().isoformat()} {context}\n")
            traceback.print_exc(file=log)
    except OSError:
        pass
