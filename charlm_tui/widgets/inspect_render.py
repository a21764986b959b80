"""Plain renderings of inspection results: unit strips, diverging colours, a scatter grid.

Shared by the `inspect` subcommand (human output) and the Inspect pane. Pure
Python over lists of floats: no torch, no numpy, so the TUI imports it freely.
"""

from __future__ import annotations

from collections.abc import Sequence

from charlm_tui.widgets.glyphs import visible

RAMP = "▁▂▃▄▅▆▇█"


def map_label(char: str) -> str:
    """Like `visible`, but a space shows as ␣ (a label must not vanish on a plot)."""
    return "␣" if char == " " else visible(char)


def scale_of(values: Sequence[float]) -> float:
    """The largest magnitude, so 0 stays the middle of a diverging scale (never 0 itself)."""
    biggest = max((abs(v) for v in values), default=0.0)
    return biggest if biggest > 0 else 1.0


def ramp_char(value: float, scale: float) -> str:
    """A bar from ▁ (most negative) through ▄/▅ (zero) to █ (most positive)."""
    level = (max(-1.0, min(1.0, value / scale)) + 1.0) / 2.0
    return RAMP[min(len(RAMP) - 1, int(level * len(RAMP)))]


def sparkline(values: Sequence[float], width: int) -> str:
    """`values` squeezed into `width` bars (bucket means), on a min..max ramp."""
    if not values or width < 1:
        return ""
    buckets = []
    count = len(values)
    for i in range(min(width, count)):
        lo, hi = i * count // min(width, count), (i + 1) * count // min(width, count)
        chunk = values[lo : max(hi, lo + 1)]
        buckets.append(sum(chunk) / len(chunk))
    low, high = min(buckets), max(buckets)
    span = high - low or 1.0
    return "".join(RAMP[min(len(RAMP) - 1, int((b - low) / span * len(RAMP)))] for b in buckets)


def diverging_colour(value: float, scale: float) -> str:
    """A background colour: blue below 0, red above, white-ish near 0 (hex, for Rich)."""
    t = max(-1.0, min(1.0, value / scale))
    strength = abs(t)
    fade = round(255 - 185 * strength)
    if t >= 0:
        return f"#ff{fade:02x}{fade:02x}"
    return f"#{fade:02x}{fade:02x}ff"


def window_values(length: int, start: int, values: Sequence[float]) -> list[float | None]:
    """`values` placed at [start, start + len(values)) of a text; None everywhere else."""
    placed: list[float | None] = [None] * length
    placed[start : start + len(values)] = list(values)[: max(0, length - start)]
    return placed


def strip_lines(text: str, values: Sequence[float], width: int = 80) -> list[tuple[str, str, int]]:
    """The text cut in lines of at most `width` (and after each newline), with a bar per char.

    Returns (text line, bar line, offset of the line's first character).
    """
    scale = scale_of(values)
    lines: list[tuple[str, str, int]] = []
    start = 0
    while start < len(text):
        end = min(len(text), start + width)
        newline = text.find("\n", start, end)
        if newline >= 0:
            end = newline + 1
        shown = "".join(visible(c) for c in text[start:end])
        bars = "".join(ramp_char(v, scale) for v in values[start:end])
        lines.append((shown, bars, start))
        start = end
    return lines


def scatter_grid(
    labels: Sequence[str], points: Sequence[Sequence[float]], width: int = 60, height: int = 20
) -> list[str]:
    """Labels placed on a character grid by their (x, y); later labels win a shared cell."""
    grid = [[" "] * width for _ in range(height)]
    if not points:
        return ["".join(row) for row in grid]
    xs = [p[0] for p in points]
    ys = [p[1] for p in points]
    x0, x1, y0, y1 = min(xs), max(xs), min(ys), max(ys)
    for label, (x, y) in zip(labels, points, strict=True):
        col = int((x - x0) / ((x1 - x0) or 1.0) * (width - 1))
        row = height - 1 - int((y - y0) / ((y1 - y0) or 1.0) * (height - 1))
        grid[row][col] = label[:1] or "?"
    return ["".join(row) for row in grid]
