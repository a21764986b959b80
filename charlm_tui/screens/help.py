"""The help screen (F1 or ?): every key, what the colours mean, where things are saved."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import ClassVar

from textual.app import App, ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.content import Content
from textual.screen import ModalScreen, Screen
from textual.widgets import OptionList, Static

from charlm_tui.screens.help_keys import KeySpec, keys_text
from charlm_tui.widgets.next_char import NextCharPanel
from charlm_tui.widgets.token_view import TokenView, prob_hex
from charlm_tui.widgets.value_text import ValueText
from engine.decoding.params import STRATEGIES


def _knob(name: str) -> KeySpec:
    """A knob's two keys (down, up) as one group."""
    return ((f"knob('{name}', -1)", f"knob('{name}', 1)"),)


# Each section: its title, whose bindings its keys come from (see `section_bindings`),
# and its rows: the actions whose keys make the key column (help_keys.py), and the words.
SECTIONS: tuple[tuple[str, str, tuple[tuple[KeySpec, str], ...]], ...] = (
    (
        "Everywhere (in text fields too: there, letters and digits type)",
        "app",
        (
            (
                (
                    (
                        "tab('corpus')#0",
                        "tab('training')#0",
                        "tab('generate')#0",
                        "tab('inspect')#0",
                    ),
                ),
                "Corpus, Training, Generate, Inspect",
            ),
            (
                (("tab('corpus')#1", "=…", "tab('inspect')#1"),),
                "the same (in tmux: outside text fields)",
            ),
            ((("runs",),), "saved runs: Enter loads one with its corpus and form"),
            ((("leave_input",),), "leave a text field"),
            ((("command_palette",),), "command palette: every action by name"),
            ((("help",),), "this help (? outside text fields)"),
            ((("app.focus_next", "=/", "app.focus_previous"),), "move between fields"),
            ((("restart_engine",),), "restart the engine"),
            ((("quit",),), "quit (stops the engine; the run is saved)"),
        ),
    ),
    (
        "Corpus",
        "corpus",
        (
            ((("select",),), "load the highlighted corpus"),
            ((("browse",),), "browse for a file or directory"),
            ((("=path + enter",),), "open a path (Right arrow accepts the completion)"),
        ),
    ),
    (
        "Training",
        "training",
        (
            ((("train",),), "train; over a model: continue it, new run or cancel"),
            ((("pause_resume",),), "pause / resume"),
            ((("stop",),), "stop (evaluates and saves)"),
            ((("save",),), "save a checkpoint now"),
            ((("evaluate",),), "evaluate on the whole held-out split"),
            ((("lr_find",),), "learning-rate range test (“Use lr” fills the form)"),
            ((("=enter on a run",),), "load it: model, settings and loss history"),
            (
                (("=preset",),),
                "notebook here (the course's model, good text in 2 min); the CLI",
            ),
            ((("=",),), "defaults to cpu/gpu by device: tuned for the lowest loss per budget"),
        ),
    ),
    (
        "Generate (keys act when the output has focus)",
        "generate",
        (
            ((("generate",),), "generate (in the prompt too)"),
            ((("focus_prompt",), ("escape",)), "edit the prompt · leave it (or stop a generation)"),
            ((("regenerate",),), "regenerate with a new seed"),
            ((("cycle_strategy",),), "strategy: " + " → ".join(STRATEGIES)),
            (_knob("temperature"), "temperature down / up"),
            (
                (*_knob("top_k"), *_knob("top_p"), *_knob("min_p")),
                "top-k · top-p · min-p (off at one end)",
            ),
            (_knob("repetition_penalty"), "repetition penalty"),
            (_knob("beam_width"), "beam width"),
            ((*_knob("length"), ("seed(-1)", "seed(1)")), "length · seed"),
            ((("toggle_auto",),), "auto-regenerate after a knob change (same seed)"),
            (
                (("move(-1)", "move(1)", "line(-1)", "line(1)", "jump(0)", "jump(-1)"),),
                "walk the output; the side panel shows the model's choice",
            ),
            ((("compare",),), "compare strategies (there: h cuts a held-out prompt, adds chrF)"),
            (
                (("pick(1)", "=…", "pick(9)"),),
                "put the model's alternative of that rank at the cursor and go on",
            ),
            (
                (("=tab", "select(-1)", "select(1)", "branch"),),
                "the same from the side panel: pick an alternative, branch",
            ),
            (
                (("sibling(-1)", "sibling(1)"), ("parent", "child")),
                "previous / next branch · up to the parent / back down",
            ),
            (
                (("export('text')#0", "export('tree')"), ("export('text')#1",)),
                "write the text · the branch tree (JSON) · the text, to ./",
            ),
            (
                (("cycle_condition",), ("guidance(-1)", "guidance(1)")),
                "a conditional model: label (none, each, an even mix) · guidance",
            ),
            ((("compare(True)",),), "compare the labels side by side"),
            (
                (("add_to_blend",), ("clear_blend",)),
                "add a run to the blend (a mixture) · generate alone again",
            ),
        ),
    ),
    (
        "Inspect (the current model, or a snapshot of it while it trains)",
        "inspect",
        (
            (
                (("excerpt",), ("use_generated",), ("paste",)),
                "held-out excerpt · the generated text · paste or type a text",
            ),
            ((("refresh",),), "recompute with the latest weights"),
            ((("unit(-1)", "unit(1)"),), "previous / next unit (attention: layer and head)"),
            (
                (("cursor(-1)", "cursor(1)", "jump(0)", "jump(-1)"),),
                "move the cursor; attention and saliency follow it",
            ),
            (
                (("focus_find", "=+", "=enter"),),
                'units that track a regex (Pearson r), e.g. "[^"\\n]*"',
            ),
            ((("cycle_view",),), "view: units → attention → saliency → character map"),
        ),
    ),
)


def section_bindings(owner: str, panes: Mapping[str, Sequence[BindingType]]) -> list[BindingType]:
    """The bindings a section's keys come from: the app's or a pane's (`panes`, given by
    the app: screens do not import panes), with those of the widgets inside it."""
    extra: dict[str, list[BindingType]] = {
        "app": [*Screen.BINDINGS, Binding(App.COMMAND_PALETTE_BINDING, "command_palette")],
        "corpus": list(OptionList.BINDINGS),
        "generate": [*TokenView.BINDINGS, *NextCharPanel.BINDINGS],
        "inspect": list(ValueText.BINDINGS),
    }
    return [*panes.get(owner, ()), *extra.get(owner, [])]


def help_content(panes: Mapping[str, Sequence[BindingType]]) -> Content:
    """Every section's keys (from `panes`: {"app" or a pane's name: its BINDINGS}) and words,
    then the colour legend."""
    lines: list[Content] = []
    for title, owner, rows in SECTIONS:
        bindings = section_bindings(owner, panes)
        lines.append(Content.styled(title, "bold $accent"))
        for spec, what in rows:
            keys = keys_text(spec, bindings)
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

    def __init__(self, panes: Mapping[str, Sequence[BindingType]]) -> None:
        super().__init__()
        self.panes = panes

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="help-box"):
            yield Static(help_content(self.panes), id="help-text")

    def on_mount(self) -> None:
        box = self.query_one("#help-box")
        box.border_title = "charlm-tui help"
        box.border_subtitle = "esc closes"
