"""What the app restores on its next start: the corpus, the training form, the knobs, the prompt.

One small JSON object in the user data directory, written when the app closes
(atomically, through `engine.files.write_atomic`: a planted link is replaced,
never written through). Reading never fails and never blocks: it goes through
`engine.files.read_json` (a regular file of at most `MAX_STATE_BYTES`, the nesting
guard). A missing file is a first start; a damaged or hostile one (not JSON, not
an object, a field of the wrong type, a named pipe, a link to a device, huge,
nested too deeply) is ignored with a one-line notice for the user, the app
starting from its defaults. The same notice reports a damaged `recent.json`, so
the app opens with one notice whatever the state files hold.
"""

from __future__ import annotations

import contextlib
import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

from charlm_tui.state.recent import recent_notice
from engine.errors import UserError
from engine.files import MIB, read_json, show_path, write_atomic
from engine.paths import data_dir

VERSION = 1
MAX_STATE_BYTES = 1 * MIB  # the prompt box holds 8,192 characters: far below this


@dataclass
class AppState:
    corpus: str = ""
    form: dict = field(default_factory=dict)  # TrainForm.values()
    knobs: dict = field(default_factory=dict)  # the generation pane's knob values
    prompt: str = ""


def state_file() -> Path:
    return data_dir() / "app-state.json"


def load_state() -> tuple[AppState, str]:
    """The saved state and a notice ("" when all is well); defaults if there is none."""
    try:
        path = state_file()
    except OSError as exc:  # an unusable data directory (engine.paths says why, once)
        return AppState(), f"{exc}: nothing saved is restored."
    state, notice = _read_state(path)
    recent = recent_notice()
    return state, " ".join(n for n in (notice, recent[:1].upper() + recent[1:]) if n)


def _read_state(path: Path) -> tuple[AppState, str]:
    if not os.path.lexists(path):
        return AppState(), ""
    try:
        data = read_json(path, MAX_STATE_BYTES, "the saved app state")
    except UserError as exc:
        return AppState(), f"{str(exc)[:1].upper()}{str(exc)[1:]}: ignored, using defaults."
    try:
        if not isinstance(data, dict):
            raise ValueError("not an object")
        state = AppState(
            corpus=_typed(data, "corpus", str, ""),
            form=_typed(data, "form", dict, {}),
            knobs=_typed(data, "knobs", dict, {}),
            prompt=_typed(data, "prompt", str, ""),
        )
    except ValueError:
        shown = show_path(path)
        return AppState(), f"The saved app state in {shown} is damaged: ignored, using defaults."
    return state, ""


def save_state(state: AppState) -> None:
    """Write the state; a failure to write is not worth interrupting a quit for."""
    with contextlib.suppress(OSError, ValueError):
        payload = json.dumps({"version": VERSION, **asdict(state)}, indent=1)
        write_atomic(state_file(), payload, durable=False)


def _typed(data: dict, key: str, kind: type, default: object):
    value = data.get(key, default)
    if not isinstance(value, kind):
        raise ValueError(f"{key} is not a {kind.__name__}")
    return value
