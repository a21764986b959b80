"""Every file the project reads or writes goes through here, so the hostile cases are handled once.

Reading: a file is opened without blocking (a FIFO planted where a file should be
cannot hang the reader), checked to be a regular file on the open descriptor (so a
link to `/dev/zero` or a directory is refused, and a swap after the check cannot
fool it), and read up to a stated size cap (a sparse 2 GB file is refused, never
read whole). JSON is parsed with a nesting guard: a document nested 100,000 levels
deep is a one-line error, not a RecursionError.

Writing: the final path component is never followed if it is a symlink
(`O_NOFOLLOW`), so a link planted in a run directory cannot make us truncate the
file it points at; temporaries get unique names created with `O_EXCL`, are fsynced,
and are renamed into place (a rename replaces a link, never writes through it).
Temporary names carry the writer's pid (`.NAME.tmp-PID-HEX`), which is how a later
process tells a dead writer's leftovers from a live one's.

Errors are `UserError`s (or the subclass a caller names) with one-line messages
that quote the path with `repr`-style escaping, so a newline in a path cannot cut
the message.
"""

from __future__ import annotations

import contextlib
import json
import os
import stat
import uuid
from pathlib import Path
from typing import Any

from engine.errors import UserError

KIB = 1 << 10
MIB = 1 << 20
# Small JSON documents the project writes itself (state.json, app-state.json, ...).
MAX_JSON_BYTES = 64 * MIB
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_NONBLOCK = getattr(os, "O_NONBLOCK", 0)
_CLOEXEC = getattr(os, "O_CLOEXEC", 0)


def show_path(path: str | os.PathLike[str]) -> str:
    """A path as it can be printed on one line: control characters escaped."""
    text = os.fspath(path)
    if text.isprintable():
        return text
    return repr(text)[1:-1]


def user_path(path: str | os.PathLike[str]) -> Path:
    """`path` with a leading `~` or `~user` expanded. pathlib raises RuntimeError for a
    user this machine does not know (`~bob/names.txt`, a typo of `~/`), which would end
    a command in a traceback or the app in a crash: here it is bad input, in one line."""
    try:
        return Path(path).expanduser()
    except RuntimeError:
        user = os.fspath(path).split(os.sep, 1)[0]
        raise UserError(
            f"{show_path(path)}: this machine has no user '{show_path(user[1:])}' "
            "to expand its ~ (your own home is ~/)"
        ) from None


def _size_text(size: int) -> str:
    if size >= 1 << 30:
        return f"{size / (1 << 30):.1f} GB"
    if size >= MIB:
        return f"{size / MIB:.1f} MB"
    if size >= KIB:
        return f"{size / KIB:.0f} KB"
    return f"{size} bytes"


size_text = _size_text  # for callers that state a cap of their own in the same words


def _kind(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISFIFO(mode):
        return "a named pipe"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a regular file"


def open_regular(
    path: str | os.PathLike[str],
    max_bytes: int | None,
    what: str = "file",
    error: type[UserError] = UserError,
) -> tuple[int, int]:
    """Open `path` for reading as a regular file of at most `max_bytes`: (fd, size).

    The caller owns the descriptor. Links are followed (a user may link a corpus),
    but whatever they reach must be a regular file.
    """
    shown = show_path(path)
    try:
        fd = os.open(path, os.O_RDONLY | _NONBLOCK | _CLOEXEC)
    except FileNotFoundError:
        raise error(f"{what} not found: {shown}") from None
    except IsADirectoryError:
        raise error(f"{what} is a directory, not a file: {shown}") from None
    except PermissionError:
        raise error(f"{what} cannot be read (permission denied): {shown}") from None
    except OSError as exc:
        raise error(f"{what} cannot be opened: {shown} ({exc.strerror or exc})") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise error(f"{what} is {_kind(info.st_mode)}, not a regular file: {shown}")
        if max_bytes is not None and info.st_size > max_bytes:
            raise error(
                f"{what} is too large ({_size_text(info.st_size)}; at most "
                f"{_size_text(max_bytes)}): {shown}"
            )
        if _NONBLOCK:
            os.set_blocking(fd, True)
    except BaseException:
        os.close(fd)
        raise
    return fd, info.st_size


def read_bytes(
    path: str | os.PathLike[str],
    max_bytes: int | None,
    what: str = "file",
    error: type[UserError] = UserError,
) -> bytes:
    """The whole content of a regular file of at most `max_bytes` (a growing file is cut there)."""
    fd, size = open_regular(path, max_bytes, what, error)
    limit = max_bytes if max_bytes is not None else size
    chunks: list[bytes] = []
    total = 0
    try:
        while total <= limit:
            chunk = os.read(fd, min(limit + 1 - total, 8 * MIB))
            if not chunk:
                break
            chunks.append(chunk)
            total += len(chunk)
    except OSError as exc:
        raise error(f"{what} cannot be read: {show_path(path)} ({exc.strerror or exc})") from None
    finally:
        os.close(fd)
    if max_bytes is not None and total > max_bytes:
        raise error(f"{what} grew past {_size_text(max_bytes)} while read: {show_path(path)}")
    return b"".join(chunks)


def read_text(
    path: str | os.PathLike[str],
    max_bytes: int | None,
    what: str = "file",
    error: type[UserError] = UserError,
    encoding: str = "utf-8",
) -> str:
    """A regular text file of at most `max_bytes`, decoded strictly."""
    data = read_bytes(path, max_bytes, what, error)
    try:
        return data.decode(encoding)
    except UnicodeDecodeError as exc:
        raise error(
            f"{what} is not valid {encoding} (byte {exc.start}): {show_path(path)}"
        ) from None


def parse_json(text: str | bytes, what: str = "JSON", error: type[UserError] = UserError) -> Any:
    """`json.loads` whose failures, deep nesting included, are one-line `error`s."""
    try:
        return json.loads(text)
    except RecursionError:
        raise error(f"{what} is nested too deeply to be read") from None
    except (ValueError, TypeError) as exc:
        raise error(f"{what} is not valid JSON ({str(exc).splitlines()[0]})") from None


def read_json(
    path: str | os.PathLike[str],
    max_bytes: int = MAX_JSON_BYTES,
    what: str = "file",
    error: type[UserError] = UserError,
) -> Any:
    """A JSON document from a regular file of bounded size, parsed with the nesting guard."""
    text = read_text(path, max_bytes, what, error)
    return parse_json(text, f"{what} {show_path(path)}", error)


def open_for_write(path: str | os.PathLike[str], append: bool = False, mode: int = 0o644) -> int:
    """A descriptor for writing `path` that never follows a symlink at the last component.

    Raises `OSError` as `os.open` does (ELOOP for a link); callers turn it into
    their own one-line message with `describe_write_error`.
    """
    flags = os.O_WRONLY | os.O_CREAT | _NOFOLLOW | _CLOEXEC
    flags |= os.O_APPEND if append else os.O_TRUNC
    fd = os.open(path, flags | _NONBLOCK, mode)
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise OSError(
                0, f"{_kind(info.st_mode)} is in the way, not a regular file", os.fspath(path)
            )
        if _NONBLOCK:
            os.set_blocking(fd, True)
    except BaseException:
        os.close(fd)
        raise
    return fd


def temp_name(path: Path) -> Path:
    """A fresh temporary sibling of `path` that names its writer (`.NAME.tmp-PID-HEX`)."""
    return path.with_name(f".{path.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}")


def remove_dead_temps(path: Path) -> None:
    """Remove the temporaries of `path` (`temp_name`'s) whose writer is dead: a killed
    process leaves its partial file behind, and the next writer clears it."""
    prefix = f".{path.name}.tmp-"
    with contextlib.suppress(OSError):
        for entry in path.parent.iterdir():
            pid = entry.name[len(prefix) :].split("-", 1)[0]
            if not entry.name.startswith(prefix) or not pid.isdigit() or int(pid) == os.getpid():
                continue
            try:
                os.kill(int(pid), 0)
                continue  # a live writer's (or another user's: PermissionError)
            except ProcessLookupError:
                pass
            except (PermissionError, OverflowError):
                continue
            with contextlib.suppress(OSError):
                entry.unlink()  # a file or a link; never a directory


def fsync_dir(directory: Path) -> None:
    """Make a rename in `directory` durable (ignored where directories cannot be fsynced)."""
    try:
        fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | _CLOEXEC)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def write_atomic(path: str | os.PathLike[str], data: bytes | str, durable: bool = True) -> None:
    """Replace `path` with `data` all at once: readers see the old file or the new one.

    The temporary is created exclusively (never an existing file or link) and
    removed again if anything fails. Raises `OSError`.
    """
    target = Path(path)
    payload = data.encode("utf-8") if isinstance(data, str) else data
    temp = temp_name(target)
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW | _CLOEXEC, 0o644)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(payload)
            handle.flush()
            if durable:
                os.fsync(handle.fileno())
        os.replace(temp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temp)
        raise
    if durable:
        fsync_dir(target.parent)


def describe_write_error(path: str | os.PathLike[str], exc: OSError) -> str:
    """One line for a failed write: a planted link, a full disk, a read-only place."""
    import errno

    shown = show_path(path)
    if exc.errno == errno.ELOOP:
        return f"refusing to write through a symbolic link: {shown}"
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return f"no space left to write {shown}"
    if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return f"cannot write {shown} (permission denied or read-only)"
    if exc.errno == errno.ENAMETOOLONG:
        return f"file name too long: {shown}"
    reason = exc.strerror or str(exc)
    return f"cannot write {shown} ({reason})"
