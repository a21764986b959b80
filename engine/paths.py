"""Where charlm-tui keeps per-user files: a cache (downloads, encodings) and data (runs)."""

from __future__ import annotations

import os
from pathlib import Path


def _user_dir(variable: str, kind: str) -> Path:
    """`variable` overrides (tests, CI, shared machines); else the platform's user dir."""
    override = os.environ.get(variable)
    if override:
        path = Path(override)
    else:
        import platformdirs

        path = Path(getattr(platformdirs, f"user_{kind}_dir")("charlm-tui"))
    path.mkdir(parents=True, exist_ok=True)
    return path


def cache_dir() -> Path:
    """Downloads and encoding caches: safe to delete; `CHARLM_CACHE_DIR` overrides."""
    return _user_dir("CHARLM_CACHE_DIR", "cache")


def data_dir() -> Path:
    """Runs, recent corpora, the engine log: the user's work; `CHARLM_DATA_DIR` overrides."""
    return _user_dir("CHARLM_DATA_DIR", "data")
