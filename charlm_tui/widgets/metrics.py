"""Live training read-outs: a row of labelled numbers and the loss plot.

The plot redraws at most a few times a second whatever the event rate (plotext
renders the whole figure each time), and keeps at most a few hundred points per
series by thinning the oldest, so hours of training stay cheap to draw.
"""

from __future__ import annotations

import math

from textual.app import ComposeResult
from textual.containers import Container
from textual.reactive import reactive
from textual.widgets import Static
from textual_plotext import PlotextPlot

MAX_POINTS = 400
REDRAW_S = 0.5


def fmt_loss(value: float | None) -> str:
    return "–" if value is None or not math.isfinite(value) else f"{value:.4f}"


def fmt_rate(value: float | None) -> str:
    if value is None or not math.isfinite(value):
        return "–"
    if value >= 1e6:
        return f"{value / 1e6:.2f}M"
    if value >= 1e3:
        return f"{value / 1e3:.1f}k"
    return f"{value:.0f}"


def fmt_duration(seconds: float | None) -> str:
    if seconds is None or not math.isfinite(seconds):
        return "–"
    seconds = round(seconds)
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


class Metric(Static):
    """A name over a value."""

    DEFAULT_CSS = """
    Metric {
        width: 1fr;
        height: 2;
        text-wrap: nowrap;
        text-overflow: ellipsis;
    }
    """

    value: reactive[str] = reactive("–")

    def __init__(self, label: str, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.label = label

    def render(self) -> str:
        return f"[dim]{self.label}[/]\n[b]{self.value}[/]"


METRICS = (
    ("step", "step"),
    ("train", "train loss"),
    ("val", "val loss"),
    ("bpc", "val bpc"),
    ("ppl", "val ppl"),
    ("speed", "chars/s"),
    ("lr", "lr"),
    ("left", "patience"),
)


class MetricsRow(Container):
    """Step, losses, bits per char, perplexity, speed and learning rate, side by side."""

    def compose(self) -> ComposeResult:
        for key, label in METRICS:
            yield Metric(label, id=f"m-{key}")

    def set(self, **values: str) -> None:
        for key, value in values.items():
            self.query_one(f"#m-{key}", Metric).value = value

    def clear(self) -> None:
        self.set(**{key: "–" for key, _ in METRICS})


def _thin(points: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """Keep every other point of the older half once a series grows too long."""
    if len(points) <= MAX_POINTS:
        return points
    half = len(points) // 2
    return points[:half:2] + points[half:]


def _thin_all(points: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """At most MAX_POINTS points evenly spread (a whole loaded history at once)."""
    if len(points) <= MAX_POINTS:
        return points
    stride = len(points) / MAX_POINTS
    return [points[int(i * stride)] for i in range(MAX_POINTS)] + [points[-1]]


def step_ticks(lo: float, hi: float, count: int = 5) -> list[int]:
    """At most `count` whole-number steps from `lo` to `hi`, on a round spacing."""
    lo_i, hi_i = math.floor(lo), math.ceil(hi)
    span = max(hi_i - lo_i, 1)
    raw = span / max(count - 1, 1)
    magnitude = 10 ** math.floor(math.log10(raw)) if raw >= 1 else 1
    spacing = next(m * magnitude for m in (1, 2, 5, 10) if m * magnitude >= raw)
    spacing = max(1, int(spacing))
    first = math.ceil(lo_i / spacing) * spacing
    ticks = list(range(first, hi_i + 1, spacing))
    return ticks or [lo_i]


class LossPlot(PlotextPlot):
    """Train loss (every metric event) and val loss (every evaluation) against step."""

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.train_points: list[tuple[float, float]] = []
        self.val_points: list[tuple[float, float]] = []
        # A learning-rate range test shown instead of the loss curves: (lrs, smoothed, pick).
        self.lr_curve: tuple[list[float], list[float], float | None] | None = None
        self._dirty = True

    def on_mount(self) -> None:
        super().on_mount()
        self.set_interval(REDRAW_S, self._redraw_if_dirty)
        self._draw()

    def reset(self, history: list[dict] | None = None, metrics: list[dict] | None = None) -> None:
        """Start over from a run's past: its metrics.jsonl records when there are any
        (every logged step and evaluation), else state.json's evaluation history."""
        self.train_points = []
        self.val_points = []
        self.lr_curve = None
        if metrics:
            for row in metrics:
                step, kind = float(row.get("step", 0)), row.get("kind")
                value = row.get("train_loss" if kind == "step" else "val_loss")
                if kind in ("step", "eval") and value is not None and math.isfinite(value):
                    points = self.train_points if kind == "step" else self.val_points
                    points.append((step, float(value)))
            self.train_points = _thin_all(self.train_points)
            history = []
        for row in history or []:
            step = float(row.get("step", 0))
            train, val = row.get("train_loss"), row.get("val_loss")
            if train is not None and math.isfinite(train):
                self.train_points.append((step, float(train)))
            if val is not None and math.isfinite(val):
                self.val_points.append((step, float(val)))
        self._dirty = True
        self._redraw_if_dirty()

    def add_train(self, step: int, loss: float) -> None:
        if math.isfinite(loss):
            self.train_points = _thin([*self.train_points, (float(step), loss)])
            self._dirty = True

    def add_val(self, step: int, loss: float) -> None:
        if math.isfinite(loss):
            self.val_points.append((float(step), loss))
            self._dirty = True

    def _redraw_if_dirty(self) -> None:
        if self._dirty:
            self._dirty = False
            self._draw()

    def show_lr_curve(
        self, lrs: list[float], smoothed: list[float], suggestion: float | None = None
    ) -> None:
        """Draw a range test: smoothed loss against log10(lr), the suggestion marked."""
        self.lr_curve = (list(lrs), list(smoothed), suggestion)
        self._dirty = True

    def _draw_lr_curve(self) -> None:
        assert self.lr_curve is not None
        lrs, smoothed, suggestion = self.lr_curve
        plt = self.plt
        plt.title("learning-rate range test: smoothed loss against log10(lr)")
        plt.xlabel("log10 lr")
        xs = [math.log10(lr) for lr in lrs]
        if xs:
            plt.plot(xs, smoothed, label="loss", marker="braille", color="cyan")
        if suggestion:
            plt.vline(math.log10(suggestion), "green")
        self.refresh()

    def _draw(self) -> None:
        plt = self.plt
        plt.clear_data()
        plt.clear_figure()
        if self.lr_curve is not None:
            self._draw_lr_curve()
            return
        plt.title("loss (nats/char)")
        plt.xlabel("step")
        if self.train_points:
            xs, ys = zip(*self.train_points, strict=True)
            plt.plot(list(xs), list(ys), label="train", marker="braille", color="cyan")
        if self.val_points:
            xs, ys = zip(*self.val_points, strict=True)
            plt.plot(list(xs), list(ys), label="val", marker="braille", color="orange")
            # a lone evaluation draws no line: mark every one so each shows
            plt.scatter(list(xs), list(ys), marker="●", color="orange")
        steps = [x for x, _ in self.train_points + self.val_points]
        if steps:
            plt.xticks(step_ticks(min(steps), max(steps)))
        if not self.train_points and not self.val_points:
            plt.xlim(0, 1)
            plt.ylim(0, 1)
            plt.xticks([])
            plt.yticks([])
            plt.title("loss (nats/char): the curves appear once training starts")
        self.refresh()
