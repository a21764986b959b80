"""`metrics.jsonl`: every logged step and evaluation of a run, one JSON object a line.

The file lives in the run directory beside the checkpoints, so a run keeps its
whole history (train and val curves) and not only the evaluation points that
state.json holds. Records:

    {"kind": "step", "step", "train_loss", "lr", "chars_per_s", "elapsed_s", "grad_norm"}
    {"kind": "eval", "step", "val_loss", "val_bpc", "train_loss", "best", "elapsed_s"}
    {"kind": "final", "step", "val_loss", "val_bpc", "val_chars", "elapsed_s"}

Contracts:
- Lines are appended and flushed to the OS at least once a second and at every
  evaluation, so a killed writer loses at most the last second of step lines.
- A killed writer can leave half a line: readers take every whole line that
  parses and ignore the rest (`read_metrics` never raises on a damaged file).
- Resuming from a checkpoint at step S keeps the records up to S and drops the
  rest (steps logged after S were never saved, and are trained again), so a
  resumed run continues the same file without duplicates.
- `elapsed_s` continues across resumes: it is the previous leg's last elapsed
  time plus this leg's wall clock.
- Written without following links: the rewrite goes through a fresh O_EXCL
  temporary renamed into place, appends open with O_NOFOLLOW (engine/files.py).
- A run that replaces another (`--force`) or resumes one logs into a temporary
  (`pending`) that replaces the old run's file only at its first checkpoint
  (`commit`); a start that fails before that (a budget too short for one step)
  removes it and leaves the old file as it was.
"""

from __future__ import annotations

import json
import math
import os
import time
from pathlib import Path
from typing import IO

from engine.errors import CheckpointError, UserError
from engine.files import (
    KIB,
    MIB,
    describe_write_error,
    open_for_write,
    parse_json,
    read_bytes,
    temp_name,
    write_atomic,
)

METRICS_FILE = "metrics.jsonl"
FLUSH_EVERY_S = 1.0
MAX_METRICS_BYTES = 256 * MIB  # about 1.5 million records
MAX_RECORD_BYTES = 64 * KIB  # a record is about 200 bytes


def metrics_path(run_dir: str | Path) -> Path:
    return Path(run_dir) / METRICS_FILE


def _finite(value: object) -> object:
    """JSON has no NaN: a loss that is not a number yet is written as null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def read_metrics(path: str | Path) -> list[dict]:
    """Every whole, parseable record of a metrics file (missing file: no records).

    Linear in the file's size: only lines that name a "step" are looked at (found
    by a byte search, so blank lines and other garbage cost nothing in Python),
    and lines longer than `MAX_RECORD_BYTES` or nested too deeply are skipped as
    damaged. The file must be a regular file of at most `MAX_METRICS_BYTES` (read
    through engine/files.py: a named pipe cannot block, a link to /dev/zero or a
    huge file is refused); otherwise a one-line `UserError`.
    """
    if not os.path.lexists(path):
        return []
    data = read_bytes(path, MAX_METRICS_BYTES, "metrics file")
    # The text after the last newline is an unfinished line (a killed writer): never a record.
    end = data.rfind(b"\n") + 1
    records = []
    found = data.find(b'"step"', 0, end)
    while found >= 0:
        start = data.rfind(b"\n", 0, found) + 1
        stop = data.find(b"\n", found, end)  # a newline follows: the search stops before `end`
        line = data[start:stop]
        found = data.find(b'"step"', stop, end)
        if len(line) > MAX_RECORD_BYTES or not line.lstrip().startswith(b"{"):
            continue
        try:
            record = parse_json(line.decode("utf-8"))
        except (UnicodeDecodeError, UserError):
            continue
        if isinstance(record, dict) and isinstance(record.get("step"), int):
            records.append(record)
    return records


def _rewrite(path: Path, records: list[dict]) -> None:
    """Replace the file atomically (a fresh O_EXCL temporary, fsync, rename)."""
    try:
        write_atomic(path, "".join(json.dumps(record) + "\n" for record in records))
    except OSError as exc:
        raise CheckpointError(describe_write_error(path, exc)) from None


class MetricsLog:
    """Appends a run's records to `metrics.jsonl`; `record(event)` takes trainer events."""

    def __init__(
        self, run_dir: str | Path, *, resume_step: int | None = None, pending: bool = False
    ) -> None:
        """Start the file afresh, or (resume_step = S) keep what was logged up to step S.

        `pending`: log into a temporary that replaces the file at `commit()` (a run
        replacing or resuming another keeps the old file until its first checkpoint).
        """
        self.path = metrics_path(run_dir)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.offset_s = 0.0
        self._pending: Path | None = temp_name(self.path) if pending else None
        kept: list[dict] = []
        if resume_step is not None:
            kept = [
                r
                for r in read_metrics(self.path)
                if r["step"] < resume_step
                or (r["step"] == resume_step and r.get("kind") != "final")
            ]
            elapsed = [r["elapsed_s"] for r in kept if isinstance(r.get("elapsed_s"), (int, float))]
            self.offset_s = float(elapsed[-1]) if elapsed else 0.0
        _rewrite(self._pending or self.path, kept)  # also drops a half-written last line
        target = self._pending or self.path
        try:
            fd = open_for_write(target, append=True)
        except OSError as exc:
            raise CheckpointError(describe_write_error(target, exc)) from None
        self._handle: IO[str] | None = os.fdopen(fd, "a", encoding="utf-8")
        self._flushed_at = time.monotonic()

    def commit(self) -> None:
        """A pending log becomes the run's metrics.jsonl (the open handle keeps appending)."""
        if self._pending is None:
            return
        if self._handle is not None:
            self._handle.flush()
        os.replace(self._pending, self.path)
        self._pending = None

    def write(self, record: dict, *, flush: bool = False) -> None:
        if self._handle is None:
            return
        clean = {k: _finite(v) for k, v in record.items()}
        self._handle.write(json.dumps(clean) + "\n")
        now = time.monotonic()
        if flush or now - self._flushed_at >= FLUSH_EVERY_S:
            self._handle.flush()
            self._flushed_at = now

    def record(self, event: object) -> None:
        """Log a trainer event: logged steps (those with a grad norm) and evaluations."""
        kind = getattr(event, "kind", "")
        if kind == "step" and getattr(event, "grad_norm", None) is not None:
            self.write(
                {
                    "kind": "step",
                    "step": event.step,  # type: ignore[attr-defined]
                    "train_loss": event.loss,  # type: ignore[attr-defined]
                    "lr": event.lr,  # type: ignore[attr-defined]
                    "chars_per_s": event.chars_per_s,  # type: ignore[attr-defined]
                    "elapsed_s": self.offset_s + event.elapsed_s,  # type: ignore[attr-defined]
                    "grad_norm": event.grad_norm,  # type: ignore[attr-defined]
                }
            )
        elif kind == "eval":
            self.write(
                {
                    "kind": "eval",
                    "step": event.step,  # type: ignore[attr-defined]
                    "val_loss": event.val_loss,  # type: ignore[attr-defined]
                    "val_bpc": event.val_bpc,  # type: ignore[attr-defined]
                    "train_loss": event.train_loss,  # type: ignore[attr-defined]
                    "best": event.best,  # type: ignore[attr-defined]
                    "elapsed_s": self.offset_s + getattr(event, "elapsed_s", 0.0),
                },
                flush=True,
            )

    def final(self, step: int, val_loss: float, val_chars: int, elapsed_s: float) -> None:
        """The closing full evaluation of a run (the figure `train` prints)."""
        self.write(
            {
                "kind": "final",
                "step": step,
                "val_loss": val_loss,
                "val_bpc": val_loss / math.log(2),
                "val_chars": val_chars,
                "elapsed_s": self.offset_s + elapsed_s,
            },
            flush=True,
        )

    def close(self) -> None:
        if self._handle is not None:
            self._handle.flush()
            os.fsync(self._handle.fileno())
            self._handle.close()
            self._handle = None
        if self._pending is not None:  # never committed: the old run's file stays
            self._pending.unlink(missing_ok=True)
            self._pending = None


def step_records(records: list[dict]) -> list[dict]:
    return [r for r in records if r.get("kind") == "step"]


def eval_records(records: list[dict]) -> list[dict]:
    return [r for r in records if r.get("kind") == "eval"]
