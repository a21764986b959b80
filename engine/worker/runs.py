"""Where the engine keeps things: new run directories and the engine log.

The run list itself is engine.runs.listing (the CLI reads it too). No torch here:
the UI lists runs without starting the engine.
"""

from __future__ import annotations

import re
import traceback
from datetime import datetime
from pathlib import Path

from engine.paths import UserDirError, data_dir
from engine.runs import listing as saved_runs
from engine.runs.listing import runs_dir

__all__ = ["list_runs", "log_exception", "log_path", "new_run_dir", "runs_dir"]


def list_runs(root: Path | None = None, limit: int | None = 50) -> list[dict]:
    """The app's saved-runs list; an unusable data directory lists none (the app
    already said why when it opened, and training says it again if tried)."""
    try:
        return saved_runs.list_runs(root, limit)
    except UserDirError:
        return []


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


def log_exception(context: str) -> None:
    """Write a traceback to the engine log: the user sees one line, a developer the rest."""
    try:
        with open(log_path(), "a", encoding="utf-8") as log:
            log.write(f"--- {datetime.now().isoformat()} {context}\n")
            traceback.print_exc(file=log)
    except OSError:
        pass
