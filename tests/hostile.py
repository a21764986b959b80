"""Hostile files planted where the project expects a small regular file (issue 19).

Each maker puts one at `path`: a named pipe (a plain open would block), a link to
/dev/zero (it never ends), a sparse file of gigabytes (read whole it would take them),
a JSON document nested 100,000 levels deep (a RecursionError for a plain json.loads).
`HOSTILE` names them with a fragment of the one-line error each one earns.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

DEEP_JSON = "[" * 100_000 + "]" * 100_000


def make_fifo(path: Path) -> Path:
    os.mkfifo(path)
    return path


def link_to_zero(path: Path) -> Path:
    path.symlink_to("/dev/zero")
    return path


def make_sparse(path: Path, size: int = 3 << 30) -> Path:
    with open(path, "wb") as handle:
        handle.truncate(size)
    return path


def write_deep(path: Path) -> Path:
    path.write_text(DEEP_JSON, encoding="utf-8")
    return path


HOSTILE: dict[str, tuple[Callable[[Path], Path], str]] = {
    "fifo": (make_fifo, "named pipe"),
    "zero-link": (link_to_zero, "device"),
    "sparse": (make_sparse, "too large"),
}
HOSTILE_JSON = {**HOSTILE, "deep": (write_deep, "nested too deeply")}
