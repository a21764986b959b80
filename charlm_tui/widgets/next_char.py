"""The panel beside the output: what the model thought at the character under the cursor.

It shows the chosen character, the probability the model gave it and the one it
had after the sampling filters, and the model's top alternatives as bars: the
distribution the character was drawn from.
"""

from __future__ import annotations

import math

from textual.content import Content
from textual.reactive import reactive
from textual.widget import Widget

from charlm_tui.widgets.token_view import prob_hex, visible

BLOCKS = " ▏▎▍▌▋▊▉█"


def bar(fraction: float, width: int) -> str:
    """A horizontal bar of `width` cells filled to `fraction`, in eighths."""
    fraction = min(1.0, max(0.0, fraction))
    eighths = round(fraction * width * 8)
    full, rest = divmod(eighths, 8)
    text = "█" * full + (BLOCKS[rest] if rest else "")
    return text.ljust(width)


def shown(char: str) -> str:
    return "␣" if char == " " else visible(char)


def _percent(prob: float) -> str:
    return "   ?  " if not math.isfinite(prob) else f"{prob * 100:5.1f}%"


class NextCharPanel(Widget):
    """Chosen character, its probabilities, and the top-5 bars, for one position."""

    DEFAULT_CSS = """
    NextCharPanel {
        width: 28;
        height: auto;
        padding: 0 1;
    }
    """

    entry: reactive[tuple | None] = reactive(None, layout=True)
    index: reactive[int] = reactive(-1)

    def show(self, index: int, entry: tuple | None) -> None:
        self.index = index
        self.entry = entry

    def render(self) -> Content:
        entry = self.entry
        if entry is None:
            return Content.from_markup(
                "[dim]Move the cursor through the output with the arrow keys to see the "
                "model's choices.[/]"
            )
        char, prob, model_prob, top = entry
        width = max(4, self.content_size.width - 12)
        lines = [
            Content.assemble(
                ("char ", "dim"),
                (f"#{self.index + 1} ", "dim"),
                (f" {shown(char)} ", f"bold reverse {prob_hex(model_prob)}"),
            ),
            Content.assemble(("model p   ", "dim"), (_percent(model_prob), prob_hex(model_prob))),
            Content.assemble(("sampled p ", "dim"), (_percent(prob), "bold")),
            Content.styled("alternatives (1-9 branch)", "dim underline"),
        ]
        if not top:
            lines.append(Content.styled("(not known for beam search)", "dim"))
        for rank, (alt, alt_prob) in enumerate(top, start=1):
            style = "bold" if alt == char else ""
            lines.append(
                Content.assemble(
                    (f"{rank} ", "$accent"),
                    (f"{shown(alt)} ", f"bold {prob_hex(alt_prob)}" if alt == char else "bold"),
                    (bar(alt_prob, width), prob_hex(alt_prob)),
                    (_percent(alt_prob), style),
                )
            )
        return Content("\n").join(lines)
