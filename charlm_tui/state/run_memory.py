"""What the app remembers about runs: the last one open, and each run's corpus and preset.

A checkpoint names its corpus but not always where it came from (a folder's path is
not in it), and not the preset the form was on; the app notes both when a run starts,
so that loading the run later opens its corpus and puts its whole form back. The last
run loaded or trained is reopened on the next start.

One small JSON object in the user data directory, read through engine.files (bounded,
regular files only) and written atomically on every change. Reading never fails: a
missing or damaged file is an empty memory; runs whose directory is gone are dropped.
"""

from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass, field
from pathlib import Path

from engine.errors import UserError
from engine.files import KIB, read_json, user_path, write_atomic
from engine.paths import data_dir

MAX_RUNS = 200  # the oldest notes are forgotten past this
MAX_BYTES = 512 * KIB


@dataclass
class RunMemory:
    last_run: str = ""
    # run directory -> {"corpus": the spec it was trained on, "preset": the form's preset}
    runs: dict[str, dict[str, str]] = field(default_factory=dict)


def memory_file() -> Path:
    return data_dir() / "runs-seen.json"


def load_memory() -> RunMemory:
    try:
        data = read_json(memory_file(), MAX_BYTES, "the app's run notes")
    except (UserError, OSError):
        return RunMemory()
    if not isinstance(data, dict):
        return RunMemory()
    last = data.get("last_run")
    runs = data.get("runs")
    notes = {
        str(run): {k: v for k, v in note.items() if isinstance(v, str)}
        for run, note in (runs.items() if isinstance(runs, dict) else ())
        if isinstance(note, dict)
    }
    return RunMemory(last_run=last if isinstance(last, str) else "", runs=notes)


def _save(memory: RunMemory) -> None:
    runs = dict(list(memory.runs.items())[-MAX_RUNS:])
    with contextlib.suppress(OSError):
        memory_file().parent.mkdir(parents=True, exist_ok=True)
        payload = {"last_run": memory.last_run, "runs": runs}
        write_atomic(memory_file(), json.dumps(payload, indent=1), durable=False)


def _key(run_dir: str) -> str:
    return str(user_path(run_dir).resolve())


def note_run(run_dir: str, corpus: str = "", preset: str = "") -> None:
    """A run started (or was loaded): it is the last run, trained on `corpus`."""
    memory = load_memory()
    key = _key(run_dir)
    note = memory.runs.pop(key, {})
    if corpus:
        note["corpus"] = corpus
    if preset:
        note["preset"] = preset
    memory.runs[key] = note  # newest last
    memory.last_run = key
    _save(memory)


def run_note(run_dir: str) -> dict[str, str]:
    """What was noted about a run ({} when nothing)."""
    return dict(load_memory().runs.get(_key(run_dir), {}))


def last_run() -> str:
    """The run to reopen: the last one loaded or trained, if it is still there."""
    run = load_memory().last_run
    return run if run and Path(run).is_dir() else ""


def same_corpus(a: str, b: str) -> bool:
    """Two corpus specs name the same corpus (a sample's name, or the same path)."""
    if a == b:
        return True
    with contextlib.suppress(OSError, UserError):
        pa, pb = user_path(a), user_path(b)
        if pa.exists() and pb.exists():
            return pa.resolve() == pb.resolve()
    return False
