"""Recently opened corpora (files and directories), remembered between sessions.

A small JSON list in the user data directory, read through `engine.files` (a
regular file of at most `MAX_RECENT_BYTES`, the nesting guard): a missing file is
an empty list, a damaged or hostile one (a named pipe, a link to a device, huge,
nested too deeply) is an empty list too, and `recent_notice` says why in one line
for the app's start-up notice. Paths that no longer exist are left out when read.
Writing replaces the file atomically and never writes through a planted link.
"""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path

from engine.errors import UserError
from engine.files import KIB, read_json, show_path, user_path, write_atomic
from engine.paths import data_dir

MAX_RECENT = 8
MAX_RECENT_BYTES = 256 * KIB


def _file() -> Path:
    return data_dir() / "recent.json"


def _read() -> tuple[list[str], str]:
    """(the stored paths, a notice: "" when the file is fine or missing)."""
    try:
        path = _file()
        if not os.path.lexists(path):
            return [], ""
        items = read_json(path, MAX_RECENT_BYTES, "the recent corpora list")
    except OSError:  # the data directory itself is unusable: the app says so once
        return [], ""
    except UserError as exc:
        return [], f"{exc}: ignored."
    if not isinstance(items, list):
        return [], f"the recent corpora list {show_path(path)} is not a list: ignored."
    return [item for item in items if isinstance(item, str)], ""


def recent_notice() -> str:
    """One line when recent.json is damaged or hostile ("" when it is fine or missing)."""
    return _read()[1]


def load_recent() -> list[str]:
    """The remembered paths that still exist, most recent first (never raises)."""
    items, _ = _read()
    existing = []
    for item in items:
        with contextlib.suppress(OSError, ValueError):
            if Path(item).exists():
                existing.append(item)
    return existing


def remember(path: str) -> list[str]:
    """Put `path` first in the list (once) and save it; returns the new list."""
    path = str(user_path(path).resolve())
    items = [path, *(item for item in load_recent() if item != path)][:MAX_RECENT]
    with contextlib.suppress(OSError):
        write_atomic(_file(), json.dumps(items, indent=1), durable=False)
    return items
