"""Where charlm-tui keeps per-user files: a cache (downloads, encodings) and data (runs).

Either place may be unusable: `HOME` pointing to a file, an unwritable
`XDG_DATA_HOME`, `CHARLM_DATA_DIR=/etc/passwd`, a name too long for the file
system. The rules:

- The data directory holds the user's work. When it cannot be created (or is not
  a directory) `data_dir()` raises `UserDirError`, one line naming the place and
  the variable that moves it. It is a `UserError` (the CLI exits 2) and an
  `OSError` (code that already treats an unreadable file as "nothing saved", such
  as the app's state and recent-corpus readers, degrades the same way).
- The cache is optional: when the configured one is unusable, `cache_dir()` says
  so once (an `EngineWarning`) and returns a private temporary directory, created
  for this process alone and removed when it exits.
"""

from __future__ import annotations

import atexit
import contextlib
import errno
import os
import shutil
import tempfile
import warnings
from pathlib import Path

from engine.errors import EngineWarning, UserError
from engine.files import show_path, user_path

_FALLBACK_CACHE: Path | None = None


class UserDirError(UserError, OSError):
    """A per-user directory cannot be used; the message is one line for the user."""

    def __init__(self, message: str, code: int = errno.EIO) -> None:
        super().__init__(code, message)
        self.message = message

    def __str__(self) -> str:
        return self.message


def _configured(variable: str, kind: str) -> tuple[Path, str]:
    """The directory and what sets it: `variable` (tests, CI), else the platform's."""
    override = os.environ.get(variable)
    if override:
        try:
            return user_path(override), variable
        except UserError:  # `~bob/...` for a user this machine lacks: unusable, said so
            raise UserDirError(
                f"cannot use {variable}={show_path(override)} (no such user for its ~): "
                f"set {variable} to a writable directory",
                errno.ENOENT,
            ) from None
    import platformdirs

    xdg = "XDG_CACHE_HOME" if kind == "cache" else "XDG_DATA_HOME"
    return Path(getattr(platformdirs, f"user_{kind}_dir")("charlm-tui")), f"HOME/{xdg}"


def _reason(exc: OSError) -> str:
    if exc.errno == errno.EEXIST or exc.errno == errno.ENOTDIR:
        return "a file is in the way"
    if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return "permission denied or read-only"
    if exc.errno == errno.ENAMETOOLONG:
        return "a name in it is too long for the file system"
    return exc.strerror or str(exc)


def _make(path: Path, what: str, variable: str) -> Path:
    try:
        path.mkdir(parents=True, exist_ok=True)
        if not path.is_dir():
            raise NotADirectoryError(errno.ENOTDIR, "not a directory")
    except OSError as exc:
        raise UserDirError(
            f"cannot use {show_path(path)} as the {what} directory ({_reason(exc)}): "
            f"set {variable} to a writable directory",
            exc.errno or errno.EIO,
        ) from None
    return path


def _user_dir(variable: str, kind: str) -> Path:
    path, source = _configured(variable, kind)
    shown = "CHARLM_DATA_DIR" if kind == "data" else "CHARLM_CACHE_DIR"
    return _make(path, kind, source if source == variable else f"{shown} (or {source})")


def _private_cache(problem: str) -> Path:
    """A temporary cache for this process only, removed at exit; said once."""
    global _FALLBACK_CACHE
    if _FALLBACK_CACHE is None or not _FALLBACK_CACHE.is_dir():
        try:
            path = Path(tempfile.mkdtemp(prefix="charlm-tui-cache-"))
        except OSError as exc:
            raise UserDirError(
                f"{problem}; no temporary directory either ({_reason(exc)})",
                exc.errno or errno.EIO,
            ) from None
        atexit.register(shutil.rmtree, path, True)
        _FALLBACK_CACHE = path
        with contextlib.suppress(Exception):
            warnings.warn(f"{problem}; caching in a temporary directory", EngineWarning, 2)
    return _FALLBACK_CACHE


def cache_dir() -> Path:
    """Downloads and encoding caches: safe to delete; `CHARLM_CACHE_DIR` overrides.

    Never fails for an unusable cache directory: a private temporary one stands in.
    """
    try:
        path = _user_dir("CHARLM_CACHE_DIR", "cache")
    except UserDirError as exc:
        return _private_cache(exc.message.split(": set ")[0])
    if not os.access(path, os.W_OK | os.X_OK):
        return _private_cache(f"the cache directory {show_path(path)} is not writable")
    return path


def data_dir() -> Path:
    """Runs, recent corpora, the engine log: the user's work; `CHARLM_DATA_DIR` overrides.

    Raises `UserDirError` (one line) when the directory cannot be created.
    """
    return _user_dir("CHARLM_DATA_DIR", "data")
