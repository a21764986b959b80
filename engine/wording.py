"""Settings named in engine messages, worded by each front end its own way.

The engine serves two front ends: the CLI, where a setting is a flag (`--guidance`),
and the app, where it is a knob, a switch or a choice (the `g`/`G` guidance knob).
So an error about a setting names the setting, not the flag: `setting("guidance")`
puts a mark in the message (`‹guidance›`), and a front end turns every mark into
its own words with `reword` before it shows the message (the CLI in
charlm_tui.cli_common.one_line, the app when an engine error arrives). A mark no
front end words reads as the setting's name.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

_MARK = re.compile(r"‹([a-z_]+)›")


def setting(name: str) -> str:
    """The mark for a setting in a message (its TrainConfig / SamplingParams name)."""
    return f"‹{name}›"


def reword(text: str, words: Mapping[str, str] | None = None) -> str:
    """`text` with each setting's mark replaced by `words[name]` (the name when missing)."""
    words = words or {}
    return _MARK.sub(lambda m: words.get(m.group(1), m.group(1).replace("_", " ")), text)


def in_cli_words(text: str) -> str:
    """The CLI's wording: every setting is its flag (`--name-with-dashes`)."""
    return _MARK.sub(lambda m: "--" + m.group(1).replace("_", "-"), text)
