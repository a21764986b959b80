"""A file browser for picking a corpus: a file, or a directory of text files."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import ClassVar

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, DirectoryTree, Static


class CorpusTree(DirectoryTree):
    """A directory tree without hidden entries (the engine skips them in a corpus too)."""

    def filter_paths(self, paths: Iterable[Path]) -> Iterable[Path]:
        return [path for path in paths if not path.name.startswith(".")]


class FileOpenScreen(ModalScreen[str | None]):
    """Enter on a file opens it; "Open directory" (ctrl+d) opens the highlighted directory."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "cancel", "Cancel"),
        Binding("ctrl+d", "open_directory", "Open directory"),
        Binding("backspace,ctrl+u", "parent", "Parent directory"),
    ]

    def __init__(self, start: Path | None = None, title: str = "Open a corpus") -> None:
        super().__init__()
        self.start = start or Path.cwd()
        self.title_text = title
        self.highlighted: Path = self.start

    def compose(self) -> ComposeResult:
        with Vertical(id="file-box"):
            yield Static(id="file-current")
            yield CorpusTree(self.start, id="file-tree")
            with Horizontal(id="file-buttons"):
                yield Button("Parent (backspace)", id="parent", compact=True)
                yield Button("Open directory (ctrl+d)", id="open-dir", compact=True)
                yield Button("Cancel (esc)", id="cancel", compact=True)

    def on_mount(self) -> None:
        box = self.query_one("#file-box")
        box.border_title = self.title_text
        box.border_subtitle = "enter opens a file · ctrl+d opens the directory · backspace goes up"
        self._show(self.start)
        self.query_one(DirectoryTree).focus()

    def _show(self, path: Path) -> None:
        self.highlighted = path
        self.query_one("#file-current", Static).update(f"[dim]{path}[/]")

    @on(DirectoryTree.FileSelected)
    def _file(self, event: DirectoryTree.FileSelected) -> None:
        event.stop()
        self.dismiss(str(event.path))

    @on(DirectoryTree.NodeHighlighted)
    def _highlighted(self, event: DirectoryTree.NodeHighlighted) -> None:
        data = event.node.data
        if data is not None:
            self._show(Path(data.path))

    def action_open_directory(self) -> None:
        path = self.highlighted
        self.dismiss(str(path if path.is_dir() else path.parent))

    def action_cancel(self) -> None:
        self.dismiss(None)

    def action_parent(self) -> None:
        """Root the tree one directory up (the browser starts in the working directory)."""
        tree = self.query_one(DirectoryTree)
        parent = Path(tree.path).resolve().parent
        if parent != Path(tree.path).resolve():
            tree.path = parent
            self._show(parent)

    @on(Button.Pressed, "#parent")
    def _parent(self, event: Button.Pressed) -> None:
        self.action_parent()

    @on(Button.Pressed, "#open-dir")
    def _open_dir(self, event: Button.Pressed) -> None:
        self.action_open_directory()

    @on(Button.Pressed, "#cancel")
    def _cancel(self, event: Button.Pressed) -> None:
        self.action_cancel()
