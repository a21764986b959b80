"""The Inspect pane's words: its status line and the side panel's detail lines.

Pure functions of what the pane holds (panes/inspect.py), so the pane keeps to
its widgets and events. The status line names the view, the unit (its place in
the regex's ranked list after a search, else among all units), the text and
the model; the detail lines say what the character under the cursor shows.
"""

from __future__ import annotations

from typing import Any

from charlm_tui.widgets.inspect_render import map_label

InspectPane = Any  # panes/inspect.py's pane (not imported: it imports this module)


def unit_place(pane: InspectPane) -> str:
    """`(3/10 for /regex/, ↑↓)` while ↑↓ walk the ranked list, `(5/128, ↑↓)` otherwise."""
    ranked = pane.ranked_units()
    if ranked:
        return f"{ranked.index(pane.unit) + 1}/{len(ranked)} for /{pane.pattern}/, ↑↓"
    labels = pane.labels()
    index = labels.index(pane.unit) if pane.unit in labels else -1
    return f"{index + 1}/{len(labels)}, ↑↓"


def status_line(pane: InspectPane) -> str:
    if not pane.has_model:
        return "no model yet: train one (Training tab) or load a checkpoint"
    parts = []
    if pane.view == "units" and pane.unit:
        parts.append(f"unit {pane.unit} ({unit_place(pane)})")
    elif pane.view == "attention":
        heads = pane.heads()
        if pane.model_type != "transformer":
            parts.append("attention: Transformers only (saliency works for every model)")
        elif heads:
            layer, head = heads[pane.head % len(heads)]
            parts.append(f"layer {layer} head {head} (↑↓)")
        else:
            parts.append("attention: move the cursor")
    elif pane.view == "saliency":
        parts.append("saliency: gradient x input, shares sum to 1")
    if pane.text:
        parts.append(f"{len(pane.text):,} chars, {pane.source}")
    parts.append(pane.model_info)
    if pane.note:
        parts.append(pane.note)
    return " · ".join(parts)


def detail_lines(pane: InspectPane, cursor: int, value: float | None) -> list[str]:
    """What the side panel says of the character at `cursor` (`value`: the text's colour
    value there, for attention)."""
    char = pane.text[cursor]
    lines = [f"cursor {cursor}: {map_label(char)!r}"]
    if pane.view == "units" and pane.values and cursor < len(pane.values):
        lines.append(f"{pane.unit} = {pane.values[cursor]:+.3f}")
    elif pane.view == "saliency" and pane.saliency is not None:
        position, _, _, logprob = pane.saliency
        lines.append(f"log p({map_label(pane.text[position])!r}) = {logprob:.2f} at {position}")
    elif pane.view == "attention" and pane.attention is not None and value is not None:
        lines.append(f"attended {value:.3f}")
    elif pane.view == "map" and pane.char_map is not None and char in pane.char_map.chars:
        near = pane.char_map.neighbours[pane.char_map.chars.index(char)]
        lines.append("nearest: " + " ".join(f"{map_label(c)} {s:.2f}" for c, s in near))
    return lines


def finished_info(model_type: str, result: dict) -> str:
    """The model line once its training ended (no longer 'in training')."""
    steps = int(result.get("steps") or 0)
    how = "stopped" if result.get("stopped_by") == "stop" else "trained"
    return f"{model_type} {how} at step {steps:,} (u: latest weights)"
