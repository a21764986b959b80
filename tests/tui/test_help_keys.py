"""The help screen's keys come from the bindings: a rebound key shows, an unbound action fails."""

from __future__ import annotations

import pytest
from textual.binding import Binding

from charlm_tui.screens.help_keys import keys_text


def test_keys_are_read_from_the_bindings() -> None:
    bindings = [
        Binding("t", "knob('temperature', -1)"),
        Binding("T", "knob('temperature', 1)"),
        Binding("f1,question_mark", "help"),
        Binding("x", "export('text')"),
        Binding("ctrl+s", "export('text')"),
    ]
    spec = (("knob('temperature', -1)", "knob('temperature', 1)"), ("help",))
    assert keys_text(spec, bindings) == "t T · F1 / ?"
    assert keys_text((("export('text')#1", "=…"),), bindings) == "ctrl+s …"


def test_an_action_nothing_binds_fails() -> None:
    with pytest.raises(KeyError, match="no key is bound"):
        keys_text((("vanished",),), [Binding("t", "knob('temperature', -1)")])
