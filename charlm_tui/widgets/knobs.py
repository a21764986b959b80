"""The sampling knobs: their ladders of values, their keys, and the one-line widget.

Every knob moves along a ladder of sensible values (temperature in tenths, top-k
over 1, 2, 3, 5, 10, ...) so one key press always makes a visible difference,
and each knob's keys are shown beside its value: the widget is its own legend.
Values here are UI values: 0 means "off" for top-k and min-p, 1.0 for top-p;
`sampling_params` turns them into an engine.decoding.params.SamplingParams.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from textual.binding import Binding
from textual.content import Content
from textual.reactive import reactive
from textual.widget import Widget

from engine.decoding.condition_spec import describe_condition, parse_condition
from engine.decoding.params import STRATEGIES, SamplingParams
from engine.errors import ConfigError

SAMPLING_KNOBS = ("temperature", "top_k", "top_p", "min_p", "repetition_penalty")


def _fixed(digits: int) -> Callable[[float], str]:
    return lambda value: f"{value:.{digits}f}"


def _off_when(off: float, fmt: Callable[[float], str]) -> Callable[[float], str]:
    return lambda value: "off" if value == off else fmt(value)


@dataclass(frozen=True)
class Knob:
    name: str  # the SamplingParams field
    label: str
    down: str  # key that lowers it
    up: str  # key that raises it
    ladder: tuple[float, ...]
    fmt: Callable[[float], str]
    strategies: tuple[str, ...]
    order: Callable[[float], float] = float  # position on the ladder ("off" may sort last)
    off: float | None = None  # the value that turns the filter off

    def step(self, value: float, direction: int, vocab_size: int = 0) -> float:
        """The next ladder value above (direction 1) or below (-1) `value`.

        From "off", either key turns the knob on: at the value next to off, and for
        top-k (whose off sorts last) at the largest value below the vocabulary size,
        the first that filters anything.
        """
        if value == self.off:
            on = [v for v in self.ladder if v != self.off]
            if self.order(self.off) == float("inf"):
                below = [v for v in on if not vocab_size or v < vocab_size]
                return max(below or on)
            stepped = self._step(value, direction)
            if stepped != value:
                return stepped
            return min(on, key=lambda v: abs(self.order(v) - self.order(value)))
        return self._step(value, direction)

    def _step(self, value: float, direction: int) -> float:
        key = self.order(value)
        if direction > 0:
            higher = [v for v in self.ladder if self.order(v) > key + 1e-9]
            return min(higher, key=self.order) if higher else value
        lower = [v for v in self.ladder if self.order(v) < key - 1e-9]
        return max(lower, key=self.order) if lower else value


_TEMPERATURES = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0, 1.1, 1.2, 1.3, 1.5, 1.7, 2.0)
_TEMPERATURES += (2.5, 3.0)

KNOBS: tuple[Knob, ...] = (
    Knob("temperature", "temp", "t", "T", _TEMPERATURES, _fixed(2), ("sample",)),
    Knob(
        "top_k",
        "top-k",
        "k",
        "K",
        (1, 2, 3, 5, 8, 10, 15, 20, 30, 40, 60, 100, 0),
        _off_when(0, lambda v: str(int(v))),
        ("sample",),
        order=lambda v: float("inf") if v == 0 else float(v),
        off=0,
    ),
    Knob(
        "top_p",
        "top-p",
        "p",
        "P",
        (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.85, 0.9, 0.95, 0.98, 1.0),
        _off_when(1.0, _fixed(2)),
        ("sample",),
        off=1.0,
    ),
    Knob(
        "min_p",
        "min-p",
        "m",
        "M",
        (0.0, 0.01, 0.02, 0.05, 0.1, 0.15, 0.2, 0.3, 0.5),
        _off_when(0.0, _fixed(2)),
        ("sample",),
        off=0.0,
    ),
    Knob(
        "repetition_penalty",
        "rep",
        "e",
        "E",
        (1.0, 1.05, 1.1, 1.15, 1.2, 1.3, 1.5, 1.75, 2.0),
        _off_when(1.0, _fixed(2)),
        ("greedy", "sample"),
        off=1.0,
    ),
    Knob(
        "beam_width",
        "beam",
        "b",
        "B",
        tuple(range(1, 17)),
        lambda v: str(int(v)),
        ("beam",),
    ),
    Knob(
        "length",
        "len",
        "l",
        "L",
        (20, 50, 100, 150, 200, 300, 400, 500, 750, 1000, 1500, 2000),
        lambda v: str(int(v)),
        STRATEGIES,
    ),
)
KNOB_BY_NAME = {knob.name: knob for knob in KNOBS}

# A conditional model's two knobs: the label (a key cycles none, each label, an even
# mix of all) and classifier-free guidance (1: plain conditioning). They show only
# when the model has labels, and are not SamplingParams fields (`condition_of` reads them).
CONDITION_KEY = "n"
GUIDANCE_KNOB = Knob(
    "guidance",
    "guide",
    "g",
    "G",
    (0.0, 0.5, 1.0, 1.25, 1.5, 2.0, 2.5, 3.0, 4.0, 5.0),
    _fixed(2),
    STRATEGIES,
)


def condition_cycle(labels: tuple[str, ...]) -> list[str]:
    """What the condition key steps through: none (""), each label, then all labels evenly."""
    steps = ["", *labels]
    if len(labels) >= 2:
        steps.append(",".join(f"{label}=1" for label in labels))
    return steps


def condition_words(spec: str, labels: tuple[str, ...]) -> str:
    """`none`, `verse`, or `code 50% + verse 50%`: the engine's own description of the
    condition a Generate will ask for (the spec itself while it names no label of `labels`)."""
    if not spec:
        return describe_condition(None)
    try:
        return describe_condition(parse_condition(spec, labels))
    except ConfigError:
        return spec


def condition_of(values: dict) -> tuple[str | None, float | None]:
    """(condition, guidance) for a Generate command: None when no label is chosen."""
    spec = str(values.get("condition") or "")
    if not spec:
        return None, None
    guidance = float(values.get("guidance", 1.0))
    return spec, (None if guidance == 1.0 else guidance)


def default_values() -> dict[str, float | int | str]:
    return {
        "strategy": "sample",
        "temperature": 0.8,
        "top_k": 0,
        "top_p": 1.0,
        "min_p": 0.0,
        "repetition_penalty": 1.0,
        "beam_width": 5,
        "length": 200,
        "seed": 1,
        "condition": "",
        "guidance": 1.0,
    }


def sampling_params(values: dict) -> SamplingParams:
    """UI knob values as the engine's SamplingParams (None where a filter is off).

    The one place the knobs turn into parameters, so they are checked once, here, on
    construction: the branch, the Generate command and the engine's generation job
    carry this object as it is. The knobs move along valid ladders and the saved
    knobs are checked on restore (panes/knob_actions.py), so this does not raise.
    """
    return SamplingParams(
        strategy=str(values["strategy"]),
        temperature=float(values["temperature"]),
        top_k=int(values["top_k"]) or None,
        top_p=None if float(values["top_p"]) >= 1.0 else float(values["top_p"]),
        min_p=float(values["min_p"]) or None,
        repetition_penalty=float(values["repetition_penalty"]),
        beam_width=int(values["beam_width"]),
        length=int(values["length"]),
        seed=int(values["seed"]),
    )


class KnobBar(Widget):
    """All knobs on one or two lines: key hints, names, values; the last changed one lit."""

    DEFAULT_CSS = """
    KnobBar {
        height: auto;
        padding: 0 1;
    }
    """

    values: reactive[dict] = reactive(default_values, always_update=True, layout=True)
    changed: reactive[str] = reactive("")
    auto: reactive[bool] = reactive(True)
    labels: reactive[tuple] = reactive(tuple, layout=True)  # the model's labels, if any

    def render(self) -> Content:
        values = self.values
        strategy = str(values["strategy"])
        lit = "bold reverse $accent"
        cells = [
            Content.assemble(
                ("s", "bold $accent"),
                ("\u00a0strategy\u00a0", "dim"),
                (strategy, lit if self.changed == "strategy" else "bold"),
            )
        ]
        for knob in KNOBS:
            active = strategy in knob.strategies
            value_style = "bold" if active else "dim strike"
            cells.append(
                Content.assemble(
                    (f"{knob.down}/{knob.up}", "bold $accent" if active else "dim"),
                    (f"\u00a0{knob.label}\u00a0", "dim"),
                    (
                        knob.fmt(values[knob.name]),
                        lit if knob.name == self.changed else value_style,
                    ),
                )
            )
        cells.append(
            Content.assemble(
                ("d/D", "bold $accent"),
                ("\u00a0seed\u00a0", "dim"),
                (str(values["seed"]), lit if self.changed == "seed" else "bold"),
            )
        )
        if self.labels:
            spec = str(values.get("condition") or "")
            cells.append(
                Content.assemble(
                    (CONDITION_KEY, "bold $accent"),
                    ("\u00a0label\u00a0", "dim"),
                    (
                        condition_words(spec, self.labels).replace(" ", "\u00a0"),
                        lit if self.changed == "condition" else "bold",
                    ),
                )
            )
            guided = bool(spec)
            cells.append(
                Content.assemble(
                    (
                        f"{GUIDANCE_KNOB.down}/{GUIDANCE_KNOB.up}",
                        "bold $accent" if guided else "dim",
                    ),
                    (f"\u00a0{GUIDANCE_KNOB.label}\u00a0", "dim"),
                    (
                        GUIDANCE_KNOB.fmt(float(values.get("guidance", 1.0))),
                        lit if self.changed == "guidance" else ("bold" if guided else "dim strike"),
                    ),
                )
            )
        cells.append(
            Content.assemble(
                ("a", "bold $accent"),
                ("\u00a0auto\u00a0", "dim"),
                ("on" if self.auto else "off", lit if self.changed == "auto" else "bold"),
            )
        )
        return wrap_items(cells, self.content_size.width)


def wrap_items(cells: list[Content], width: int, gap: int = 3) -> Content:
    """The cells on as few lines as fit in `width`, breaking only between cells, never
    inside one (a knob's keys, name and value stay together)."""
    lines: list[list[Content]] = [[]]
    used = 0
    for cell in cells:
        size = cell.cell_length
        if lines[-1] and width > 0 and used + gap + size > width:
            lines.append([])
            used = 0
        used += (gap if lines[-1] else 0) + size
        lines[-1].append(cell)
    return Content("\n").join(Content(" " * gap).join(line) for line in lines)


def knob_bindings() -> list[Binding]:
    """Two keys per knob, none in the footer: the knob bar shows every knob with its keys
    (and the footer keeps room for ^q Quit at 80 columns)."""
    bindings = []
    for knob in KNOB_BY_NAME.values():
        temp = knob.name == "temperature"
        bindings.append(
            Binding(
                knob.down,
                f"knob('{knob.name}', -1)",
                "temp" if temp else f"{knob.label} down",
                show=False,
                key_display=f"{knob.down}/{knob.up}" if temp else None,
            )
        )
        bindings.append(Binding(knob.up, f"knob('{knob.name}', 1)", f"{knob.label} up", show=False))
    return bindings
