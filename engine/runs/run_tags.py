"""A run directory's `last`/`best` tags, its temporaries, and pruning.

The tags are the only links a run directory holds by design. Contracts:

- A tag names a `step-*` directory directly inside the run. Its text may be
  relative (`step-...`, `./step-...`) or absolute; it is resolved (`tag_target`)
  before anything is decided from it, so prune keeps what a tag really names,
  however the link is written. A tag that names anything else is refused.
- Any other link in a run directory (`.lock`, `metrics.jsonl`, a temporary's
  name, a `step-*` entry) is refused by `check_run_entries` before the engine
  writes anything there; every write also opens with `O_NOFOLLOW` or `O_EXCL`
  (engine/files.py), so a link planted after the check is not written through.
- Prune never deletes outside the run, never what a tag resolves to, and never
  leaves a half-deleted checkpoint under its own name: a doomed directory is
  renamed (one atomic step) to a temporary name and only then removed. A reader
  holding the old name sees the whole checkpoint or no directory at all, and then
  resolves its tag again (engine/runs/checkpoint_read.py).
- Temporaries carry their writer's pid (`.tmp-PID-...`, `.last.PID.HEX`,
  `.NAME.tmp-PID-HEX`): only a dead writer's are removed by others.
"""

from __future__ import annotations

import os
import shutil
import stat
import uuid
from pathlib import Path

from engine.errors import CheckpointError
from engine.files import show_path

TAGS = ("last", "best")
# Files the engine writes in a run directory: when present they must be regular files.
RUN_FILES = (".lock", "metrics.jsonl")


def pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process: alive
    return True


def temp_owner(name: str) -> int | None:
    """The pid written into a temporary name (`.tmp-<pid>-...`, `.last.<pid>.<id>`,
    `.NAME.tmp-<pid>-<hex>`)."""
    if ".tmp-" in name:
        field = name.split(".tmp-", 1)[1].split("-", 1)[0]
    else:
        parts = name.split(".")
        field = parts[2] if len(parts) > 3 else ""
    return int(field) if field.isdigit() else None


def is_temp(name: str) -> bool:
    return name.startswith((".tmp-", ".last.", ".best.")) or (
        name.startswith(".") and ".tmp-" in name
    )


def remove_stale_temps(run_dir: Path) -> None:
    """Remove temporaries whose writer is dead (a crash mid-save); never a live one's."""
    for entry in run_dir.iterdir():
        if not is_temp(entry.name):
            continue
        owner = temp_owner(entry.name)
        if owner is None or owner == os.getpid() or pid_alive(owner):
            continue
        if entry.is_symlink() or entry.is_file():
            entry.unlink(missing_ok=True)
        elif entry.is_dir():
            shutil.rmtree(entry, ignore_errors=True)


def tag_target(run_dir: Path, tag: str) -> str | None:
    """The name of the `step-*` directory inside `run_dir` that `tag` resolves to.

    None when there is no such link, or it names anything else (outside the run,
    not a checkpoint directory). A link whose checkpoint is gone still names it.
    """
    link = run_dir / tag
    if not link.is_symlink():
        return None
    target = Path(os.path.realpath(link))
    inside = target.parent == Path(os.path.realpath(run_dir))
    if inside and target.name.startswith("step-") and (target.is_dir() or not target.exists()):
        return target.name
    return None


def referenced(run_dir: Path) -> set[str]:
    """The checkpoint names the tags protect."""
    return {name for tag in TAGS if (name := tag_target(run_dir, tag)) is not None}


def check_run_entries(run_dir: Path) -> None:
    """Refuse a run directory holding links other than valid tags, or special files where
    the engine writes (one line naming the entry)."""
    shown = show_path(run_dir)
    for entry in run_dir.iterdir():
        name = show_path(entry.name)
        if entry.is_symlink():
            if entry.name in TAGS:
                if tag_target(run_dir, entry.name) is None:
                    raise CheckpointError(
                        f"{shown}: the tag {name} does not name a checkpoint (step-*) inside "
                        f"the run (it points to {show_path(os.readlink(entry))}): remove it"
                    )
                continue
            raise CheckpointError(
                f"{shown}: {name} is a symbolic link; a run directory holds no links but its "
                "last/best tags: remove it"
            )
        if entry.name in RUN_FILES:
            mode = entry.lstat().st_mode
            if not stat.S_ISREG(mode):
                raise CheckpointError(f"{shown}: {name} is not a regular file: remove it")


def swap_symlink(run_dir: Path, tag: str, target_name: str) -> None:
    """Point `tag` at `target_name` in one rename (a reader sees the old or the new)."""
    temp = run_dir / f".{tag}.{os.getpid()}.{uuid.uuid4().hex[:8]}"
    os.symlink(target_name, temp)
    try:
        os.replace(temp, run_dir / tag)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise


def prune(run_dir: Path) -> None:
    """Remove checkpoint dirs no tag resolves to, and temporaries of writers that died."""
    remove_stale_temps(run_dir)
    keep = referenced(run_dir)
    for entry in run_dir.iterdir():
        if entry.is_symlink() or not entry.name.startswith("step-"):
            continue
        if entry.name in keep or not entry.is_dir():
            continue
        doomed = run_dir / f".tmp-{os.getpid()}-gone-{uuid.uuid4().hex[:6]}-{entry.name}"
        try:
            os.rename(entry, doomed)  # readers now see it whole, or not at all
        except OSError:
            continue
        shutil.rmtree(doomed, ignore_errors=True)
