"""The corpus pane: pick a sample, a recent corpus or any file or directory; see what's in it.

The sample list is read from the manifest here (plain JSON, instant); loading
and the statistics come from the engine. A download (tinyshakespeare) shows a
progress bar, and whatever goes wrong is shown in the pane as the engine's own
one-line message.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import ClassVar

from textual import events, on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.content import Content
from textual.message import Message
from textual.suggester import Suggester
from textual.validation import ValidationResult, Validator
from textual.widgets import Button, Input, Label, OptionList, ProgressBar, Static
from textual.widgets.option_list import Option

from charlm_tui.messages import EngineCommand, EngineEventHandler
from charlm_tui.state.recent import load_recent
from charlm_tui.widgets.next_char import bar, shown
from engine.data.samples import default_sample_name, list_samples
from engine.errors import UserError, first_line
from engine.files import show_path, user_path
from engine.worker import protocol as p

# Printable keys the corpus list keeps for the app (help); any other begins a path. Only
# '/', '~' and '.' used to: 'names.txt' typed there reached the field as '.txt'.
LIST_KEYS = ("?",)


def _begins_path(event: events.Key) -> bool:
    character = (event.character or "").strip()
    return bool(event.is_printable and character and character not in LIST_KEYS)


class PathField(Input):
    """The corpus path field, which a path typed on the corpus list starts."""

    _start: str | None = None
    _submit_on_focus = False

    @property
    def starting(self) -> bool:
        """A path has begun on the list and the focus has not reached this field yet."""
        return self._start is not None

    def start_with(self, text: str) -> None:
        """Focus holding `text`, the cursor after it. Set once focused: focusing selects the
        whole value, and the next key typed would replace it."""
        self._start = text
        self._submit_on_focus = False
        self.focus()

    def add_to_start(self, text: str) -> None:
        """More of the path begun, arrived before the focus."""
        if self._start is not None:
            self._start += text

    def take_early_key(self, event: events.Key) -> bool:
        """A key that reached the list while the focus was on its way here: a burst (a fast
        typist, a paste without bracketed paste) outruns the focus. Text and Backspace edit
        the path begun, Enter submits it once focused; anything else is not taken."""
        if self._start is None:
            return False
        if event.is_printable and event.character:
            self.add_to_start(event.character)
        elif event.key == "backspace":
            self._start = self._start[:-1]
        elif event.key == "enter":
            self._submit_on_focus = True
        else:
            return False
        return True

    def _on_focus(self, event: events.Focus) -> None:
        if self._start is None:
            return  # Textual then calls Input's own handler (it walks the class hierarchy)
        super()._on_focus(event)
        event.prevent_default()  # not Input's again, which would select the value
        self.value, self._start = self._start, None
        self.cursor_position = len(self.value)
        if self._submit_on_focus:
            self._submit_on_focus = False
            self.call_later(self.action_submit)


class PathExists(Validator):
    """A corpus path must name an existing file or directory."""

    def validate(self, value: str) -> ValidationResult:
        if not value.strip():
            return self.failure("type a path to a text file or a directory")
        # A typed path may name an unknown ~user or be too long for the file system:
        # asking the disk then raises instead of answering no.
        try:
            path = user_path(value)
            if not path.exists():
                return self.failure(f"no such file or directory: {show_path(value)}")
            if not (path.is_file() or path.is_dir()):
                return self.failure(f"not a regular file or directory: {show_path(value)}")
        except UserError as exc:
            return self.failure(first_line(exc))
        except OSError as exc:
            return self.failure(f"cannot use {show_path(value)[:80]}: {exc.strerror or exc}")
        return self.success()


class PathSuggester(Suggester):
    """Completes the last component of a path from what is on disk (Right arrow accepts)."""

    def __init__(self) -> None:
        super().__init__(use_cache=False, case_sensitive=True)

    async def get_suggestion(self, value: str) -> str | None:
        if not value:
            return None
        expanded = os.path.expanduser(value)
        folder, stem = os.path.split(expanded)
        try:
            names = sorted(os.listdir(folder or "."))
        except OSError:
            return None
        for name in names:
            if name.startswith(stem) and name != stem and not name.startswith("."):
                full = os.path.join(folder, name)
                suffix = "/" if os.path.isdir(full) else ""
                return value + name[len(stem) :] + suffix
        return None


def _human_bytes(count: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if count < 1024 or unit == "GB":
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1024
    return f"{count:.1f} GB"


def _clip(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def _label_source(stats: dict) -> str:
    return "from label<TAB>text lines" if stats.get("files", 0) <= 1 else "one per folder entry"


def _next_step(labelled: bool) -> Content:
    """The hint under a loaded corpus: what to do with it."""
    then = ", tick 'conditional' to learn the labels" if labelled else ": train a model on it"
    return Content.assemble(("next: ", "dim"), ("F3", "bold"), f" Training{then}")


class CorpusPane(EngineEventHandler, Horizontal):
    """Sample and recent corpora, a path input; stats, common characters and a preview."""

    class OpenFileRequested(Message):
        """Show the file browser to pick a corpus file or directory."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("ctrl+o", "browse", "Browse files")]

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.req = 0
        self.current_spec = ""
        self.loaded_name = ""

    def compose(self) -> ComposeResult:
        with Vertical(id="corpus-side"):
            yield Label("corpora (Enter loads)", classes="section")
            yield OptionList(id="corpus-list")
            yield Label("open a file or directory", classes="section")
            yield PathField(
                placeholder="path: → completes, Enter opens",
                validators=[PathExists()],
                validate_on=["submitted"],
                suggester=PathSuggester(),
                id="corpus-path",
            )
            yield Button("Browse… (ctrl+o)", id="browse", compact=True)
        with Vertical(id="corpus-main"):
            yield Static(id="corpus-title")
            yield ProgressBar(id="download", show_eta=True)
            yield Static(id="corpus-error")
            with Horizontal(id="corpus-facts"):
                yield Static(id="corpus-stats")
                yield Static(id="corpus-common")
            yield Static(id="corpus-next")
            yield Label("preview", classes="section")
            with VerticalScroll(id="corpus-preview-box"):
                yield Static(id="corpus-preview", markup=False)

    def on_mount(self) -> None:
        self.query_one("#download", ProgressBar).display = False
        self.query_one("#corpus-error", Static).display = False
        self.refresh_list()
        self.query_one("#corpus-title", Static).update("[dim]starting the engine…[/]")

    def refresh_list(self) -> None:
        """Samples first, then recent files and directories."""
        options: list[Option | None] = []
        default = default_sample_name()
        for sample in list_samples():
            note = " (default)" if sample.name == default else ""
            if not sample.available_offline:
                size = f"{sample.size / 1e6:.1f}M" if sample.size else ""
                note += f" [dim]↓{size}[/]"
            options.append(Option(f"[b]{sample.name}[/]{note}", id=f"sample:{sample.name}"))
        recent = load_recent()
        if recent:
            options.append(None)
            for path in recent:
                full = Path(path)
                kind = "dir" if full.is_dir() else "file"
                where = full.parent.name or "/"
                options.append(
                    Option(
                        Content.from_markup(
                            "$name [dim]$kind in $where[/]", name=full.name, kind=kind, where=where
                        ),
                        id=f"path:{path}",
                    )
                )
        option_list = self.query_one("#corpus-list", OptionList)
        highlighted = option_list.highlighted
        option_list.clear_options()
        option_list.add_options(options)
        if highlighted is not None and highlighted < option_list.option_count:
            option_list.highlighted = highlighted
        else:
            ids = [option.id for option in options if option is not None]
            option_list.highlighted = ids.index(f"sample:{default}")

    def load(self, spec: str) -> None:
        """Ask the engine for a corpus; the pane shows 'loading' until it answers."""
        self.req = p.new_request_id()
        self.current_spec = spec
        self._show_error("")
        self.query_one("#corpus-title", Static).update(
            Content.from_markup("[b]$spec[/] [dim]loading…[/]", spec=spec)
        )
        self.post_message(EngineCommand(p.LoadCorpus(spec, req=self.req)))

    def action_browse(self) -> None:
        self.post_message(self.OpenFileRequested())

    # ----- widgets -------------------------------------------------------------------

    def on_key(self, event: events.Key) -> None:
        """A path typed while the list has focus goes to the path field: the list takes no
        text, and a typed `/tmp/names.txt` used to vanish without a word. A space is no
        path's first character either."""
        if self.app.focused is not self.query_one("#corpus-list", OptionList):
            return
        field = self.query_one("#corpus-path", PathField)
        if field.take_early_key(event) or _begins_path(event):
            if not field.starting:
                field.start_with(event.character or "")
            event.stop()
            event.prevent_default()  # not the list's binding (Enter would load its option)

    def on_paste(self, event: events.Paste) -> None:
        """A path pasted while the list has focus goes to the path field too (a terminal
        with bracketed paste sends it as one Paste, which the list drops)."""
        corpus_list = self.query_one("#corpus-list", OptionList)
        text = event.text.strip().splitlines()[0].strip() if event.text.strip() else ""
        if self.app.focused is not corpus_list or not text:
            return
        event.stop()
        field = self.query_one("#corpus-path", PathField)
        if field.starting:
            field.add_to_start(text)
        else:
            field.start_with(text)

    @on(OptionList.OptionSelected, "#corpus-list")
    def _chosen(self, event: OptionList.OptionSelected) -> None:
        event.stop()
        option_id = event.option.id or ""
        kind, _, value = option_id.partition(":")
        if kind in ("sample", "path") and value:
            self.load(value)

    @on(Input.Submitted, "#corpus-path")
    def _path_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        if event.validation_result is not None and not event.validation_result.is_valid:
            self._show_error(event.validation_result.failure_descriptions[0])
            return
        self.load(str(user_path(event.value.strip())))

    @on(Button.Pressed, "#browse")
    def _browse(self, event: Button.Pressed) -> None:
        event.stop()
        self.action_browse()

    # ----- engine events -------------------------------------------------------------

    def _show_error(self, message: str) -> None:
        error = self.query_one("#corpus-error", Static)
        error.display = bool(message)
        error.update(Content.from_markup("[b]✗[/] $message", message=message))

    def _got_DownloadProgress(self, event: p.DownloadProgress) -> None:
        if event.req != self.req:
            return
        progress = self.query_one("#download", ProgressBar)
        progress.display = True
        progress.update(total=event.total, progress=event.done)
        total = f" of {_human_bytes(event.total)}" if event.total else ""
        self.query_one("#corpus-title", Static).update(
            Content.from_markup(
                "[b]$name[/] [dim]downloading $done$total…[/]",
                name=event.name,
                done=_human_bytes(event.done),
                total=total,
            )
        )

    def _got_CorpusLoaded(self, event: p.CorpusLoaded) -> None:
        if event.req != self.req:
            return
        self.query_one("#download", ProgressBar).display = False
        self.loaded_name = event.name
        self._show_stats(event)
        self.refresh_list()

    def _got_ErrorEvent(self, event: p.ErrorEvent) -> None:
        if event.req != self.req or not self.req:
            return
        self.query_one("#download", ProgressBar).display = False
        title = self.loaded_name or "no corpus loaded"
        self.query_one("#corpus-title", Static).update(
            Content.from_markup(
                "[b]$title[/] [dim](could not load $spec)[/]",
                title=title,
                spec=self.current_spec,
            )
        )
        self._show_error(event.message)

    def _got_EngineReady(self, event: p.EngineReady) -> None:
        if not self.loaded_name:
            self.query_one("#corpus-title", Static).update("[dim]engine ready, loading…[/]")

    def _show_stats(self, event: p.CorpusLoaded) -> None:
        stats = event.stats
        self.query_one("#corpus-title", Static).update(
            Content.from_markup(
                "[b]$name[/] [dim]$spec[/]",
                name=event.name,
                spec="" if event.spec == event.name else event.spec,
            )
        )
        skipped = stats.get("skipped_binary", 0) + stats.get("skipped_undecodable", 0)
        lines = [
            ("characters", f"{stats.get('chars', 0):,}"),
            ("vocabulary", f"{stats.get('vocab_size', 0)} symbols"),
            ("entropy", f"{stats.get('entropy_bits', 0.0):.3f} bits/char"),
            ("files", f"{stats.get('files', 0):,}"),
        ]
        items = stats.get("items")
        if items:
            lines.append(
                (
                    "items",
                    f"{items['items']:,} one per line, {items['unique']:,} unique, "
                    f"{items['duplicates']:,} duplicates",
                )
            )
        sizes = stats.get("label_sizes") or []
        if len(sizes) >= 2:
            lines.append(("labels", f"{len(sizes)}, {_label_source(stats)}"))
            lines += [(f"  {_clip(row['name'], 9)}", f"{row['chars']:,} chars") for row in sizes]
        if skipped:
            lines.append(
                (
                    "skipped",
                    f"{stats.get('skipped_binary', 0)} binary, "
                    f"{stats.get('skipped_undecodable', 0)} undecodable",
                )
            )
        self.query_one("#corpus-stats", Static).update(
            Content("\n").join(
                Content.assemble((f"{label:<11}", "dim"), (value, "bold")) for label, value in lines
            )
        )
        common = stats.get("most_common", [])[:8]
        total = max(1, stats.get("chars", 1))
        rows = [Content.styled("most common", "dim")]
        top = max((count for _, count in common), default=1)
        for char, count in common:
            rows.append(
                Content.assemble(
                    (f"{shown(char)} ", "bold"),
                    (f"{count / total * 100:4.1f}% ", "dim"),
                    (bar(count / top, 14).rstrip(), "$accent"),
                )
            )
        self.query_one("#corpus-common", Static).update(Content("\n").join(rows))
        self.query_one("#corpus-preview", Static).update(stats.get("preview", ""))
        self.query_one("#corpus-next", Static).update(_next_step(len(sizes) >= 2))
