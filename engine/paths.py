"""Where charlm-tui keeps per-user data (downloads, encoding cache)."""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir() -> Path:
    """The user cache root; `CHARLM_CACHE_DIR` overrides it (tests, CI, shared machines)."""
    override = os.environ.get("CHARLM_CACHE_DIR")
    if override:
        path = Path(override)
    else:
        from platformdirs import user_cache_dir

        path = Path(user_cache_dir("charlm-tui"))
    path.mkdir(parents=True, exist_ok=True)
    return path
