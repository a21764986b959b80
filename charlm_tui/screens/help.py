"""The help screen (F1 or ?): every key, what the colours mean, where things are saved."""

from __future__ import annotations

from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.content import Content
from textual.screen import ModalScreen
from textual.widgets import Static

from charlm_tui.widgets.token_view import prob_hex

SECTIONS: tuple[tuple[str, tuple[tuple[str, str], ...]], ...] = (
    (
        "Everywhere (in text fields too: there, letters and digits type)",
        (
            ("F2 F3 F4 F10", "Corpus, Training, Generate, Inspect"),
            ("alt+1 … alt+4", "the same (in tmux: outside text fields)"),
            ("ctrl+l", "saved runs: Enter loads one with its corpus and form"),
            ("esc", "leave a text field"),
            ("ctrl+p", "command palette: every action by name"),
            ("F1 / ?", "this help (? outside text fields)"),
            ("tab / shift+tab", "move between fields"),
            ("ctrl+r", "restart the engine"),
            ("ctrl+q", "quit (stops the engine; the run is saved)"),
        ),
    ),
    (
        "Corpus",
        (
            ("enter", "load the highlighted corpus"),
            ("ctrl+o", "browse for a file or directory"),
            ("path + enter", "open a path (Right arrow accepts the completion)"),
        ),
    ),
    (
        "Training",
        (
            ("F5", "train; over a model: continue it, new run or cancel"),
            ("F6", "pause / resume"),
            ("F7", "stop (evaluates and saves)"),
            ("ctrl+s", "save a checkpoint now"),
            ("F8", "evaluate on the whole held-out split"),
            ("F9", "learning-rate range test (“Use lr” fills the form)"),
            ("enter on a run", "load it: model, settings and loss history"),
            ("preset", "notebook here (the course's model, good text in 2 min); the CLI"),
            ("", "defaults to cpu/gpu by device: tuned for the lowest loss per budget"),
        ),
    ),
    (
        "Generate (keys act when the output has focus)",
        (
            ("enter", "generate (in the prompt too)"),
            ("/ · esc", "edit the prompt · leave it (or stop a generation)"),
            ("r", "regenerate with a new seed"),
            ("s", "strategy: greedy → sample → beam"),
            ("t T", "temperature down / up"),
            ("k K · p P · m M", "top-k · top-p · min-p (off at one end)"),
            ("e E", "repetition penalty"),
            ("b B", "beam width"),
            ("l L · d D", "length · seed"),
            ("a", "auto-regenerate after a knob change (same seed)"),
            ("← → ↑ ↓ home end", "walk the output; the side panel shows the model's choice"),
            ("c", "compare strategies (there: h cuts a held-out prompt, adds chrF)"),
            ("1 … 9", "put the model's alternative of that rank at the cursor and go on"),
            ("tab ↑ ↓ enter", "the same from the side panel: pick an alternative, branch"),
            ("[ ] · u y", "previous / next branch · up to the parent / back down"),
            ("x X · ctrl+s", "write the text · the branch tree (JSON) · the text, to ./"),
            ("n · g G", "a conditional model: label (none, each, an even mix) · guidance"),
            ("C", "compare the labels side by side"),
            ("+ · -", "add a run to the blend (a mixture) · generate alone again"),
        ),
    ),
    (
        "Inspect (the current model, or a snapshot of it while it trains)",
        (
            ("e · g · p", "held-out excerpt · the generated text · paste or type a text"),
            ("u", "recompute with the latest weights"),
            ("↑ ↓", "previous / next unit (attention: layer and head)"),
            ("← → home end", "move the cursor; attention and saliency follow it"),
            ("/ + enter", 'units that track a regex (Pearson r), e.g. "[^"\\n]*"'),
            ("v", "view: units → attention → saliency → character map"),
        ),
    ),
)


def help_content() -> Content:
    lines: list[Content] = []
    for title, rows in SECTIONS:
        lines.append(Content.styled(title, "bold $accent"))
        for keys, what in rows:
            lines.append(Content.assemble((f"  {keys:<18}", "bold"), (what, "")))
        lines.append(Content(""))
    legend = [("Colours: the probability the model gave each character  ", "bold $accent")]
    for prob, label in ((0.001, "0.1%"), (0.01, "1%"), (0.1, "10%"), (0.5, "50%"), (0.99, "99%")):
        legend.append(("██", prob_hex(prob)))
        legend.append((f" {label}  ", ""))
    lines.append(Content.assemble(*legend))
    lines.append(
        Content.styled(
            "Unlikely spaces and newlines get a tinted cell. 'sampled p' is the probability "
            "after temperature and the filters.",
            "dim",
        )
    )
    return Content("\n").join(lines)


class HelpScreen(ModalScreen[None]):
    """Keys and legend; any of escape, q, F1 or ? closes it."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,q,f1,question_mark", "dismiss", "Close"),
    ]

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="help-box"):
            yield Static(help_content(), id="help-text")

    def on_mount(self) -> None:
        box = self.query_one("#help-box")
        box.border_title = "charlm-tui help"
        box.border_subtitle = "esc closes"
