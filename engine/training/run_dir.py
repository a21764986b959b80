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
"""

from __future__ import annotations

import contextlib
import os
import shutil
import threading
from pathlib import Path

from engine.errors import CheckpointError
from engine.training.checkpoint import (
    describe_os_error,
    read_state,
    remove_stale_temps,
    resolve_checkpoint_dir,
)

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

    def abandon(self) -> None:
        """Release after a failed start: a directory this claim created goes again."""
        if self.created and not self._released:
            with contextlib.suppress(OSError):
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
        try:
            fd = os.open(run_dir / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise CheckpointError(describe_os_error(run_dir, exc)) from None
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


def _clear_run(run_dir: Path) -> None:
    for entry in run_dir.iterdir():
        if entry.name in ("last", "best") and entry.is_symlink():
            entry.unlink()
        elif entry.name.startswith("step-") and entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)


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
    claim = _lock(run_dir)
    claim.created = created
    try:
        remove_stale_temps(run_dir)
        if not resume:
            summary = run_summary(run_dir)
            if summary is not None and not force:
                raise CheckpointError(
                    f"{run_dir} already holds a run ({summary}): "
                    "use --resume, or --force to replace it"
                )
            if summary is not None:
                _clear_run(run_dir)
    except BaseException:
        claim.release()
        raise
    return claim


def check_room(run_dir: Path, checkpoint_bytes: int) -> None:
    """A checkpoint of `checkpoint_bytes` can be written into `run_dir`, or one line says why not.

    A probe file is written and fsynced (a read-only mount, a quota), and the free
    space must hold a new checkpoint beside the previous one.
    """
    probe = run_dir / f".tmp-{os.getpid()}-probe"
    try:
        with open(probe, "wb") as handle:
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
