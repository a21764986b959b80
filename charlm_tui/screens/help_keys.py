"""The help screen's key column, read from the bindings the keys really have.

A help row names actions (`knob('temperature', -1)`), not keys: the keys are
looked up in the BINDINGS of the pane or widget that owns them, so rebinding a
key changes the help too, and a row naming an action that nothing binds fails
(a KeyError when the help is built, which a test opens).

A row's keys are groups joined by " · "; a group's items are joined by spaces.
An item is an action (all its keys, joined by " / "), an action with `#n` (its
n-th key only, where one action has keys shown in different rows), or `=text`,
shown as written (prose such as "path + enter", or a separator).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from textual.binding import Binding, BindingType

from charlm_tui.pane_keys import ESC_DIGIT_KEYS

# How a key name reads on screen; any other name reads as itself (ctrl+s, enter, x).
KEY_WORDS = {
    "escape": "esc",
    "question_mark": "?",
    "slash": "/",
    "plus": "+",
    "minus": "-",
    "left_square_bracket": "[",
    "right_square_bracket": "]",
    "left": "←",
    "right": "→",
    "up": "↑",
    "down": "↓",
}

Group = tuple[str, ...]
KeySpec = tuple[Group, ...]


def key_word(key: str) -> str:
    """`f2` -> `F2`, `escape` -> `esc`, `left` -> `←`; other keys as they are."""
    if key[:1] == "f" and key[1:].isdigit():
        return key.upper()
    return KEY_WORDS.get(key, key)


def keys_by_action(bindings: Iterable[BindingType]) -> dict[str, list[str]]:
    """{action: its keys in binding order}; esc+digit's characters (¡ ™ £ ¢) are left out,
    help names alt+N for them."""
    found: dict[str, list[str]] = {}
    for binding in bindings:
        if not isinstance(binding, Binding):
            key, action = binding[0], binding[1]
        else:
            key, action = binding.key, binding.action
        for one in key.split(","):
            one = one.strip()
            if one in ESC_DIGIT_KEYS:
                continue
            keys = found.setdefault(action, [])
            if one not in keys:
                keys.append(one)
    return found


def item_text(item: str, keys: dict[str, list[str]]) -> str:
    """One item of a group: literal text, an action's keys, or its n-th key."""
    if item.startswith("="):
        return item[1:]
    action, _, index = item.partition("#")
    bound = keys.get(action)
    if not bound:
        raise KeyError(f"help names the action {action!r}, which no key is bound to")
    if index:
        return key_word(bound[int(index)])
    return " / ".join(key_word(key) for key in bound)


def keys_text(spec: KeySpec, bindings: Sequence[BindingType]) -> str:
    """The key column of one help row, e.g. `k K · p P · m M`."""
    keys = keys_by_action(bindings)
    return " · ".join(" ".join(item_text(item, keys) for item in group) for group in spec)
