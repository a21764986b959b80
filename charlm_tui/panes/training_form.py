"""The training form: model type, preset and the main hyperparameters, validated as typed.

Picking a model type or a preset fills the fields with the preset's values
(engine/config/presets.py is plain data, so this needs no torch); `command()` turns the
fields into a protocol `Train` command, or says which field is wrong.
"""

from __future__ import annotations

from dataclasses import dataclass

from textual import on
from textual.app import ComposeResult
from textual.containers import Horizontal, VerticalScroll
from textual.validation import Number
from textual.widgets import Checkbox, Input, Label, Select, Static

from charlm_tui.widgets.tick_box import TickBox
from engine.config.presets import PRESET_NAMES, PRESETS, preset
from engine.worker import protocol as p

MODEL_TYPES = tuple(PRESETS)
DEFAULT_MODEL = "lstm"
# The seed notebook's model: good text on the small sample corpora within the default
# time limit, and the shape the course teaches. `tiny` is there for a 20-second look.
# The CLI defaults to `cpu`/`gpu` instead (by device): tuned for the lowest loss in a
# fixed budget on a big corpus, which is what a script is for; the help says so.
DEFAULT_PRESET = "notebook"
# The app is for watching a model learn: runs stop after this unless the field is cleared.
DEFAULT_TIME_LIMIT_S = 120.0


@dataclass(frozen=True)
class Field:
    name: str
    label: str
    kind: type  # int or float
    minimum: float
    optional: bool = False
    exclusive: bool = False  # minimum itself not allowed

    @property
    def input_type(self) -> str:
        return "integer" if self.kind is int else "number"


FIELDS = (
    Field("layers", "layers", int, 1),
    Field("width", "width", int, 1),
    Field("lr", "learning rate", float, 0.0, exclusive=True),
    Field("batch_size", "batch size", int, 1),
    Field("seq_len", "context", int, 2),
    Field("max_steps", "max steps", int, 1, optional=True),
    Field("time_budget", "time limit s", float, 0.0, optional=True, exclusive=True),
    Field("eval_interval", "eval every", int, 1),
    Field("patience", "patience", int, 1, optional=True),
    Field("seed", "random seed", int, 0, optional=True),
)
TENSORBOARD_SUBDIR = "tensorboard"  # inside the run directory

# The form's "layers" and "width" are these settings of each architecture.
_SIZE_KEYS = {
    "transformer": ("n_layer", "n_embd"),
    "lstm": ("num_layers", "hidden_size"),
    "gru": ("num_layers", "hidden_size"),
    "rnn": ("num_layers", "hidden_size"),
}


def _format(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


class TrainForm(VerticalScroll):
    """Select boxes and compact inputs; invalid fields turn red and the first error shows."""

    def compose(self) -> ComposeResult:
        choices = (
            ("model", MODEL_TYPES, DEFAULT_MODEL, "model-type"),
            ("preset", PRESET_NAMES, DEFAULT_PRESET, "preset"),
        )
        for label, names, default, select_id in choices:
            yield Label(label, classes="field-label")
            yield Select(
                [(name, name) for name in names],
                value=default,
                allow_blank=False,
                compact=True,
                id=select_id,
            )
        # What kind of run, above the numbers (a long form scrolls: these must show).
        yield TickBox("continue this run", id="resume", compact=True)
        yield TickBox("conditional (labels)", id="conditional", compact=True)
        for field in FIELDS:
            with Horizontal(classes="field"):
                yield Label(field.label, classes="field-label")
                yield Input(
                    type=field.input_type,
                    validators=[
                        Number(
                            minimum=field.minimum + (1e-12 if field.exclusive else 0.0),
                            failure_description=f"{field.label} must be "
                            + (
                                f"above {field.minimum:g}"
                                if field.exclusive
                                else f"at least {field.minimum:g}"
                            ),
                        )
                    ],
                    valid_empty=field.optional,
                    placeholder=(
                        {"patience": "off", "seed": "default"}.get(field.name, "no limit")
                        if field.optional
                        else ""
                    ),
                    compact=True,
                    id=f"f-{field.name}",
                )
        yield TickBox("one item per line", id="items", compact=True)
        yield TickBox("word tokens", id="words", compact=True)
        yield TickBox("TensorBoard log", id="tensorboard", compact=True)
        yield Static(id="form-error")

    def on_mount(self) -> None:
        import importlib.util

        self.query_one("#resume", Checkbox).display = False
        board = self.query_one("#tensorboard", Checkbox)
        if importlib.util.find_spec("tensorboard") is None:
            board.disabled = True
            board.tooltip = "needs the tensorboard package: pip install 'charlm-tui[tensorboard]'"
        else:
            board.tooltip = f"event files in the run directory's {TENSORBOARD_SUBDIR}/"
        self.query_one(
            "#items", Checkbox
        ).tooltip = "windows start at items (lines); ticked when the corpus looks like a list"
        words = self.query_one("#words", Checkbox)
        words.tooltip = "the top 2,000 words, every character as fallback; losses stay per char"
        self.query_one("#conditional", Checkbox).display = False
        self.fill_from_preset()

    def show_conditional(self, labels: list[str]) -> None:
        """Offer conditional training when the corpus has labels (at least two)."""
        box = self.query_one("#conditional", Checkbox)
        box.display = len(labels) >= 2
        box.tooltip = "one embedding per label: " + ", ".join(labels) if labels else None
        if not box.display:
            box.value = False

    def set_items(self, items: bool) -> None:
        """Tick "one item per line" for a corpus that looks like a list (the user may untick)."""
        self.query_one("#items", Checkbox).value = items

    def set_lr(self, lr: float) -> None:
        """Put a learning rate into the form (the range test's suggestion)."""
        self.query_one("#f-lr", Input).value = f"{lr:.3g}"

    @property
    def model_type(self) -> str:
        return str(self.query_one("#model-type", Select).value)

    @property
    def preset_name(self) -> str:
        return str(self.query_one("#preset", Select).value)

    def fill_from_preset(self) -> None:
        model, train = preset(self.model_type, self.preset_name)
        layers_key, width_key = _SIZE_KEYS[self.model_type]
        values = {
            "layers": model.get(layers_key),
            "width": model.get(width_key),
            **{k: train.get(k) for k in ("lr", "batch_size", "seq_len", "max_steps")},
            "time_budget": train.get("time_budget")
            or (None if self.preset_name == "tiny" else DEFAULT_TIME_LIMIT_S),
            "eval_interval": train.get("eval_interval", 250),
            "patience": train.get("patience"),
            "seed": train.get("seed"),
        }
        for name, value in values.items():
            self.query_one(f"#f-{name}", Input).value = _format(value)
        self.query_one("#form-error", Static).update("")

    def fill_from_checkpoint(
        self, model_type: str, model: dict, train: dict, preset_name: str = ""
    ) -> None:
        """Show the settings a loaded checkpoint was trained with (and its preset, if known)."""
        with self.prevent(Select.Changed):
            self.query_one("#model-type", Select).value = model_type
            if preset_name in PRESET_NAMES:
                self.query_one("#preset", Select).value = preset_name
        layers_key, width_key = _SIZE_KEYS.get(model_type, ("num_layers", "hidden_size"))
        values = {
            "layers": model.get(layers_key),
            "width": model.get(width_key),
            **{
                k: train.get(k) for k in ("lr", "batch_size", "seq_len", "max_steps", "time_budget")
            },
            "eval_interval": train.get("eval_interval", 250),
            "patience": train.get("patience"),
            "seed": train.get("seed"),
        }
        for name, value in values.items():
            self.query_one(f"#f-{name}", Input).value = _format(value)
        self.query_one("#items", Checkbox).value = bool(train.get("items"))
        self.query_one("#words", Checkbox).value = train.get("tokens") == "word"
        self.query_one("#conditional", Checkbox).value = bool(train.get("conditional"))

    def values(self) -> dict[str, str]:
        """The form as typed (model, preset, every field's text), to restore next time."""
        return {
            "model_type": self.model_type,
            "preset": self.preset_name,
            **{f.name: self.query_one(f"#f-{f.name}", Input).value for f in FIELDS},
        }

    def restore_fields(self, values: dict) -> None:
        """Put the fields of saved `values()` back, leaving model type and preset alone."""
        for f in FIELDS:
            text = values.get(f.name)
            if isinstance(text, str):
                self.query_one(f"#f-{f.name}", Input).value = text

    def max_steps(self) -> int | None:
        """The max steps field as a number (None when empty or not a whole number)."""
        text = self.query_one("#f-max_steps", Input).value.strip()
        return int(text) if text.isdigit() else None

    def restore(self, values: dict) -> None:
        """Put saved `values()` back; unknown names and values are left at their defaults."""
        model_type, preset_name = values.get("model_type"), values.get("preset")
        with self.prevent(Select.Changed):
            if model_type in MODEL_TYPES:
                self.query_one("#model-type", Select).value = model_type
            if preset_name in PRESET_NAMES:
                self.query_one("#preset", Select).value = preset_name
        self.fill_from_preset()
        self.restore_fields(values)

    def show_resume(self, available: bool) -> None:
        box = self.query_one("#resume", Checkbox)
        box.display = available
        box.value = available

    @on(Select.Changed)
    def _select_changed(self, event: Select.Changed) -> None:
        self.fill_from_preset()

    def show_error(self, message: str) -> None:
        self._show_under_fields(message)

    def show_reasons(self, reasons: list[str]) -> None:
        """What the engine resolved the form to, and why (engine/training/request.py: the
        same lines `charlm-tui train` prints), one per line under the fields."""
        from rich.text import Text

        self._show_under_fields(Text("\n".join(reasons), style="dim"))

    def _show_under_fields(self, content: object) -> None:
        """Below the last field, where a form taller than the terminal hides it: scrolled
        into view, or the choices and errors said there go unseen."""
        line = self.query_one("#form-error", Static)
        line.update(content)  # type: ignore[arg-type]
        if content:
            self.call_after_refresh(line.scroll_visible, animate=False)

    def command(self) -> p.Train | str:
        """The Train command these fields describe, or the first problem with them."""
        values: dict[str, float | int | None] = {}
        for field in FIELDS:
            widget = self.query_one(f"#f-{field.name}", Input)
            text = widget.value.strip()
            if not text:
                if field.optional:
                    values[field.name] = None
                    continue
                widget.focus()
                return f"{field.label} is required"
            result = widget.validate(text)
            if result is not None and not result.is_valid:
                widget.focus()
                return result.failure_descriptions[0]
            try:
                values[field.name] = field.kind(float(text)) if field.kind is int else float(text)
            except ValueError:
                widget.focus()
                return f"{field.label}: not a number"
        if values.get("seed") is None:
            values.pop("seed", None)  # the training default
        model_type = self.model_type
        layers_key, width_key = _SIZE_KEYS[model_type]
        model = {layers_key: values.pop("layers"), width_key: values.pop("width")}
        if model_type == "transformer":
            preset_model, _ = preset(model_type, self.preset_name)
            model["block_size"] = max(int(preset_model["block_size"]), int(values["seq_len"] or 0))
        conditional = self.query_one("#conditional", Checkbox)
        items = bool(self.query_one("#items", Checkbox).value)
        if conditional.display and conditional.value:
            values["conditional"] = True
            items = False  # a conditional run's windows keep to a label, not to items
        if items:
            values["batching"] = "random"  # type: ignore[assignment]  (items start windows)
        if self.query_one("#words", Checkbox).value:
            values["tokens"] = "word"  # type: ignore[assignment]
        board = self.query_one("#tensorboard", Checkbox)
        return p.Train(
            model_type=model_type,
            preset=self.preset_name,
            model=model,
            train={**values, "items": items},
            tensorboard_dir=TENSORBOARD_SUBDIR if board.value and not board.disabled else None,
            resume=bool(self.query_one("#resume", Checkbox).value)
            and self.query_one("#resume", Checkbox).display,
        )
