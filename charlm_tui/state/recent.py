"""Recently opened corpora (files and directories), remembered between sessions.

A small JSON list in the user data directory; a missing or damaged file is just
an empty list, and paths that no longer exist are left out when read.
"""

from __future__ import annotations

import contextlib
import json
from pathlib import Path

from engine.paths import data_dir

MAX_RECENT = 8


def _file() -> Path:
    return data_dir() / "recent.json"


def load_recent() -> list[str]:
    try:
        items = json.loads(_file().read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []
    if not isinstance(items, list):
        return []
    return [str(item) for item in items if isinstance(item, str) and Path(item).exists()]


def remember(path: str) -> list[str]:
    """Put `path` first in the list (once) and save it; returns the new list."""
    path = str(Path(path).expanduser().resolve())
    items = [path, *(item for item in load_recent() if item != path)][:MAX_RECENT]
    with contextlib.suppress(OSError):
        _file().write_text(json.dumps(items, indent=1), encoding="utf-8")
    return items
