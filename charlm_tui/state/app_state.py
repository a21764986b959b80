"""What the app restores on its next start: the corpus, the training form, the knobs, the prompt.

One small JSON object in the user data directory, written when the app closes
(atomically: a temp file renamed over the old one). Reading never fails: a
missing file is a first start, and a damaged one (not JSON, not an object, a
field of the wrong type) is ignored with a one-line notice for the user, the
app starting from its defaults.
"""

from __future__ import annotations

import contextlib
import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

from engine.paths import data_dir

VERSION = 1


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
    path = state_file()
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return AppState(), ""
    except OSError as exc:
        return AppState(), f"Could not read the saved app state ({exc.strerror}): using defaults."
    try:
        data = json.loads(text)
        if not isinstance(data, dict):
            raise ValueError("not an object")
        state = AppState(
            corpus=_typed(data, "corpus", str, ""),
            form=_typed(data, "form", dict, {}),
            knobs=_typed(data, "knobs", dict, {}),
            prompt=_typed(data, "prompt", str, ""),
        )
    except ValueError:
        return AppState(), f"The saved app state in {path} is damaged: ignored, using defaults."
    return state, ""


def save_state(state: AppState) -> None:
    """Write the state; a failure to write is not worth interrupting a quit for."""
    path = state_file()
    temp = path.with_suffix(".tmp")
    with contextlib.suppress(OSError):
        temp.write_text(json.dumps({"version": VERSION, **asdict(state)}, indent=1), "utf-8")
        os.replace(temp, path)


def _typed(data: dict, key: str, kind: type, default: object):
    value = data.get(key, default)
    if not isinstance(value, kind):
        raise ValueError(f"{key} is not a {kind.__name__}")
    return value
