"""Owning a run directory: one writer at a time, found writable before training starts.

A run directory is written by one training process. `claim_run_dir` takes an
exclusive OS lock on `DIR/.lock` (flock: the kernel drops it when the process
ends, however it ends), so a second `train --out DIR` stops at once with one
line instead of interleaving checkpoints with the first. Within one process the
claim is shared (the engine worker never trains twice at once, and a resumed
trainer may be built while the previous one is still referenced).

The claim also refuses to train over a run that is already there unless asked
(`--resume` continues it, `--force` replaces it), and checks that the directory
can be written and has room for a checkpoint, so that a read-only or full disk
is reported at start-up and not by the first save after minutes of training.

A run directory holding links other than its `last`/`best` tags (a `.lock` or
`metrics.jsonl` planted as a symlink) is refused in one line before anything is
written; the lock itself is opened with `O_NOFOLLOW` and never written through.

`--force` replaces the old run only when the new one has saved its first
checkpoint: until then the old run's checkpoints, tags and metrics.jsonl stay as
they were (`RunClaim.replacing`), so a new start that fails (bad settings, a kill)
leaves the old run loadable. That first save takes both tags, prune removes the
old checkpoints, and the new metrics (written to a temporary) replace the old.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import stat
import threading
from pathlib import Path

from engine.errors import CheckpointError
from engine.files import describe_write_error, temp_name
from engine.runs.checkpoint import (
    describe_os_error,
    read_state,
    remove_stale_temps,
    resolve_checkpoint_dir,
)
from engine.runs.run_tags import check_run_entries

try:  # POSIX; elsewhere runs are not locked (a documented limitation)
    import fcntl
except ImportError:  # pragma: no cover
    fcntl = None  # type: ignore[assignment]

LOCK_FILE = ".lock"
# Room kept beyond one checkpoint's size: state.json, the filesystem's own overhead.
SPACE_MARGIN_BYTES = 4 << 20

_held: dict[str, tuple[int, int]] = {}  # resolved dir -> (fd, claims in this process)
_held_lock = threading.Lock()


class RunClaim:
    """This process's hold on a run directory; `release()` gives it back (idempotent)."""

    def __init__(self, run_dir: Path, key: str) -> None:
        self.run_dir = run_dir
        self._key = key
        self._released = False
        self.created = False  # the claim made the directory (bad input leaves nothing behind)
        # --force over a run: the old one stays until this run's first checkpoint is saved.
        self.replacing = False

    def abandon(self, written: tuple[str, ...] = ()) -> None:
        """Release after a failed start: a directory this claim created goes again,
        with the files named in `written` that the start wrote into it."""
        if self.created and not self._released:
            with contextlib.suppress(OSError):
                for name in written:
                    (self.run_dir / name).unlink(missing_ok=True)
                (self.run_dir / LOCK_FILE).unlink()
                self.run_dir.rmdir()  # only if nothing else was written
        self.release()

    def release(self) -> None:
        with _held_lock:
            if self._released:
                return
            self._released = True
            fd, count = _held.get(self._key, (-1, 0))
            if count > 1:
                _held[self._key] = (fd, count - 1)
                return
            _held.pop(self._key, None)
        if fd >= 0:
            with contextlib.suppress(OSError):
                os.close(fd)  # closing the descriptor drops the flock

    def __del__(self) -> None:  # a trainer dropped without run() still lets go
        with contextlib.suppress(Exception):
            self.release()


def _lock(run_dir: Path) -> RunClaim:
    key = str(run_dir.resolve())
    with _held_lock:
        if key in _held:
            fd, count = _held[key]
            _held[key] = (fd, count + 1)
            return RunClaim(run_dir, key)
        fd = _open_lock(run_dir / LOCK_FILE)
        if fcntl is not None:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                owner = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
                os.close(fd)
                who = f" (pid {owner})" if owner.isdigit() else ""
                raise CheckpointError(
                    f"{run_dir} is in use by another training process{who}: "
                    "wait for it to finish, or pick another --out"
                ) from None
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, str(os.getpid()).encode("ascii"), 0)
        except OSError as exc:
            os.close(fd)
            raise CheckpointError(describe_os_error(run_dir, exc)) from None
        _held[key] = (fd, 1)
        return RunClaim(run_dir, key)


def _open_lock(path: Path) -> int:
    """The lock file, never through a link (O_NOFOLLOW) nor blocking on a FIFO."""
    flags = os.O_RDWR | os.O_CREAT | os.O_NONBLOCK | getattr(os, "O_NOFOLLOW", 0)
    try:
        fd = os.open(path, flags | getattr(os, "O_CLOEXEC", 0), 0o644)
    except OSError as exc:
        raise CheckpointError(describe_write_error(path, exc)) from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise CheckpointError(f"{path} is not a regular file: remove it")
    os.set_blocking(fd, True)
    return fd


def run_summary(run_dir: Path) -> str | None:
    """`step 1,500, val 1.84` for a directory that holds a run; None if it holds none."""
    last = run_dir / "last"
    if not (last.is_symlink() or any(run_dir.glob("step-*"))):
        return None
    try:
        state = read_state(resolve_checkpoint_dir(run_dir, "last"))
    except CheckpointError:
        return "unreadable checkpoints"
    step = state.get("step")
    val = state.get("best_val_loss")
    parts = [f"step {step:,}" if isinstance(step, int) else "step ?"]
    if isinstance(val, (int, float)):
        parts.append(f"val {val:.2f}")
    return ", ".join(parts)


def claim_run_dir(run_dir: Path, *, resume: bool, force: bool) -> RunClaim:
    """Lock `run_dir` for this process, creating it; refuse to overwrite a run by accident."""
    run_dir = Path(run_dir)
    if run_dir.exists() and not run_dir.is_dir():
        raise CheckpointError(f"cannot use {run_dir} as a run directory: it is a file")
    created = not run_dir.exists()
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise CheckpointError(describe_os_error(run_dir, exc)) from None
    check_run_entries(run_dir)  # before the lock is opened: a planted .lock is named
    claim = _lock(run_dir)
    claim.created = created
    try:
        remove_stale_temps(run_dir)
        check_run_entries(run_dir)
        if not resume:
            summary = run_summary(run_dir)
            if summary is not None and not force:
                raise CheckpointError(
                    f"{run_dir} already holds a run ({summary}): "
                    "use --resume, or --force to replace it"
                )
            claim.replacing = summary is not None
    except BaseException:
        claim.release()
        raise
    return claim


def check_room(run_dir: Path, checkpoint_bytes: int) -> None:
    """A checkpoint of `checkpoint_bytes` can be written into `run_dir`, or one line says why not.

    A probe file is written and fsynced (a read-only mount, a quota), and the free
    space must hold a new checkpoint beside the previous one.
    """
    probe = temp_name(run_dir / "probe")
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
    try:
        with os.fdopen(os.open(probe, flags, 0o644), "wb") as handle:
            handle.write(b"\0" * 4096)
            handle.flush()
            os.fsync(handle.fileno())
    except OSError as exc:
        raise CheckpointError(describe_os_error(run_dir, exc)) from None
    finally:
        with contextlib.suppress(OSError):
            probe.unlink()
    free = shutil.disk_usage(run_dir).free
    needed = checkpoint_bytes + SPACE_MARGIN_BYTES
    if free < needed:
        raise CheckpointError(
            f"not enough space for checkpoints in {run_dir}: about {needed / 1e6:,.0f} MB "
            f"needed, {free / 1e6:,.0f} MB free"
        )
