"""The app: four panes in tabs, the engine client, the command palette.

The app is the only thing that talks to the engine: panes post `EngineCommand`
messages, the app sends them, and every engine event comes back to the panes as
an `EngineEvent`. Errors become notifications; if the engine process dies the
app says why and starts a new one (once on its own, then on ctrl+r), reloading
the corpus and the last checkpoint (charlm_tui/app_engine.py keeps the app's record
of the engine). Nothing here imports torch: the first paint
happens while the engine warms up in the background.
"""

from __future__ import annotations

import atexit
import contextlib
import dataclasses
import time
from pathlib import Path
from typing import ClassVar

from textual import events, on, work
from textual.app import App, ComposeResult
from textual.binding import Binding, BindingType
from textual.css.query import NoMatches
from textual.widgets import Footer, Header, Input, Select, TabbedContent, TabPane

from charlm_tui.app_engine import EngineStatus
from charlm_tui.app_runs import RunLifecycle
from charlm_tui.messages import (
    NEED_CORPUS,
    SETTING_WORDS,
    EngineCommand,
    EngineEvent,
    EngineEventHandler,
    EngineEventReceiver,
    dispatch_engine_event,
)
from charlm_tui.palette import CharLMCommands
from charlm_tui.pane_keys import pane_bindings
from charlm_tui.panes.corpus import CorpusPane
from charlm_tui.panes.generation import GenerationPane
from charlm_tui.panes.inspect import InspectPane
from charlm_tui.panes.run_choice import StartChoiceAsked
from charlm_tui.panes.training import RUNNING, TrainingPane
from charlm_tui.panes.training_form import TrainForm
from charlm_tui.state.app_state import AppState, load_state, save_state
from charlm_tui.state.run_memory import last_run
from engine.data.samples import default_sample_name
from engine.wording import reword
from engine.worker import protocol as p
from engine.worker.client import EngineClient

# Quitting during training waits this long for the engine to save the run.
QUIT_SAVE_TIMEOUT_S = 120.0


class CharLMApp(RunLifecycle, EngineStatus, EngineEventReceiver, App[None]):
    """charlm-tui: pick a corpus, watch a model learn it, play with generation."""

    CSS_PATH = "app.tcss"
    TITLE = "charlm-tui"
    COMMANDS = App.COMMANDS | {CharLMCommands}
    HORIZONTAL_BREAKPOINTS: ClassVar[list[tuple[int, str]]] = [(0, "-narrow"), (110, "-wide")]
    VERTICAL_BREAKPOINTS: ClassVar[list[tuple[int, str]]] = [(0, "-short"), (32, "-tall")]
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("ctrl+q", "quit", "Quit", key_display="^q", priority=True),
        Binding("f1", "help", "Help"),
        Binding("question_mark", "help", "Help", show=False),
        *pane_bindings(),
        Binding("ctrl+l", "runs", "Saved runs", show=False, priority=True),
        Binding("escape", "leave_input", show=False),
        Binding("ctrl+r", "restart_engine", "Restart engine", show=False),
    ]

    def __init__(
        self,
        corpus: str | None = None,
        checkpoint: str | None = None,
        engine_mode: str = "process",
    ) -> None:
        super().__init__()
        self.saved, self._state_notice = load_state()
        self.initial_corpus = corpus or self.saved.corpus or default_sample_name()
        # With nothing named on the command line, the last run loaded or trained reopens.
        self.initial_checkpoint = checkpoint or (None if corpus else last_run() or None)
        self.engine = EngineClient(engine_mode)
        self.engine_state = "starting"
        self.engine_device = ""
        self.corpus_spec = ""
        self.corpus_name = ""
        self.last_checkpoint: str | None = None
        self._started_at = 0.0
        self._engine_starts = 0
        self._stopped = False
        self._realigned: set[str] = set()  # checkpoints whose corpus we loaded for them
        self._reload_checkpoint: tuple[str, str] | None = None  # (checkpoint, its corpus)
        self._waiting: list[object] = []  # commands given while the engine starts
        self._corpus_loading = True  # the first corpus loads as the engine starts
        atexit.register(self.engine.stop_now)

    def compose(self) -> ComposeResult:
        yield Header(icon="◆")
        with TabbedContent(initial="corpus", id="tabs"):
            with TabPane("F2 Corpus", id="corpus"):
                yield CorpusPane(id="corpus-pane")
            with TabPane("F3 Training", id="training"):
                yield TrainingPane(id="training-pane")
            with TabPane("F4 Generate", id="generate"):
                yield GenerationPane(id="generation-pane")
            with TabPane("F10 Inspect", id="inspect"):
                yield InspectPane(id="inspect-pane")
        yield Footer()

    def on_resize(self, event: events.Resize) -> None:
        self.query_one(Footer).compact = event.size.width < 110

    def on_mount(self) -> None:
        self._update_subtitle()
        self.query_one("#corpus-list").focus()
        with contextlib.suppress(NoMatches):  # a pane not composed yet keeps its defaults
            if self.saved.form:
                self.query_one(TrainForm).restore(self.saved.form)
            self.query_one(GenerationPane).restore(self.saved.knobs, self.saved.prompt)
        if self._state_notice:
            self.notify(
                self._state_notice,
                title="Saved state",
                severity="warning",
                timeout=20,
                markup=False,
            )
        self.set_interval(2.0, self._capture_state)
        self._run_engine()

    def _capture_state(self) -> None:
        """Note what to restore next time (written when the app closes, when the widgets
        are gone: so it is noted now and then, on tab switches, commands and quit)."""
        forms, panes = self.query(TrainForm), self.query(GenerationPane)
        if not forms or not panes:
            return
        generation = panes.first()
        with contextlib.suppress(NoMatches):  # half-composed at start, half-gone at exit
            self.saved = AppState(
                corpus=self.corpus_spec or self.initial_corpus,
                form=forms.first().values(),
                knobs=dict(generation.values),
                prompt=generation.query_one("#prompt", Input).value,
            )

    # ----- the engine ----------------------------------------------------------------

    @work(group="engine", exclusive=True)
    async def _run_engine(self) -> None:
        await self._start_engine()
        async for event in self.engine.events():
            self._handle_engine_event(event)

    async def _start_engine(self) -> None:
        self.engine_state = "starting"
        self._update_subtitle()
        await self.engine.start()
        self._started_at = time.monotonic()
        self._engine_starts += 1
        spec = self.corpus_spec or self.initial_corpus
        checkpoint = self.last_checkpoint or self.initial_checkpoint
        if checkpoint:  # after its corpus: loaded before it, it would look foreign to it
            self._load_after_corpus(checkpoint, spec)
        self.query_one(CorpusPane).load(spec)
        self.engine.send(p.ListRuns())

    @on(EngineCommand)
    def _send(self, message: EngineCommand) -> None:
        message.stop()
        self._send_command(message.command)

    def _send_command(self, command: object) -> None:
        self._capture_state()
        name = type(command).__name__
        starting = self.engine_state == "starting"
        if starting and (name in NEED_CORPUS or not self.engine.running):
            if not self._waiting:
                self.notify("The engine is starting: that will run as soon as it is ready.")
            self._waiting.append(command)
            return
        if name in NEED_CORPUS and self._corpus_loading and not self.corpus_name:
            self._waiting.append(command)  # the first corpus is still loading
            return
        if not self.engine.send(command):
            # Answer for the engine so that whoever asked stops waiting.
            self._handle_engine_event(
                p.ErrorEvent(
                    "the engine is not running: press ctrl+r to start a new one",
                    type(command).__name__,
                    int(getattr(command, "req", 0) or 0),
                )
            )

    def _dispatch(self, event: object) -> None:
        # query(), not query_one(): while the app starts up or shuts down the panes may
        # not be there, and an engine event must never crash the app.
        message_targets: list = [
            *self.query(CorpusPane),
            *self.query(TrainingPane),
            *self.query(GenerationPane),
            *self.query(InspectPane),
        ]
        if self.screen is not self.screen_stack[0] and isinstance(self.screen, EngineEventHandler):
            message_targets.append(self.screen)  # type: ignore[arg-type]
        for target in message_targets:
            target.post_message(EngineEvent(event))

    def _handle_engine_event(self, event: object) -> None:
        if not self.screen_stack:  # shutting down: nothing left to show it on
            return
        if isinstance(event, p.ErrorEvent):  # settings in the app's words, not CLI flags
            event = dataclasses.replace(event, message=reword(event.message, SETTING_WORDS))
        dispatch_engine_event(self, event)
        self._update_subtitle()
        self._dispatch(event)

    async def action_restart_engine(self) -> None:
        if self._stopped:
            return
        self.engine_state = "starting"
        self._update_subtitle()
        await self.engine.stop(timeout=3.0)
        await self._start_engine()

    async def _stop_engine(self, timeout: float | None = None) -> None:
        if not self._stopped:
            self._stopped = True
            if timeout is None:
                await self.engine.stop()
            else:
                await self.engine.stop(timeout=timeout)

    async def action_quit(self) -> None:
        """Quit; a run in training is saved first (the engine saves, then stops without
        a final evaluation) and the app waits for that save, showing "saving…"."""
        self._capture_state()
        if self.query_one(TrainingPane).state in RUNNING:
            self.engine_state = "saving"
            self.sub_title = f"{self.corpus_name or 'no corpus'} · saving…"
            self.notify("Saving the run before quitting…", title="Quitting")
            await self._stop_engine(timeout=QUIT_SAVE_TIMEOUT_S)
        await self._stop_engine()
        self.exit()

    async def on_unmount(self) -> None:
        save_state(self.saved)
        await self._stop_engine()

    # ----- actions -------------------------------------------------------------------

    def action_tab(self, tab: str) -> None:
        tabs = self.query_one(TabbedContent)
        if tabs.active != tab:
            tabs.active = tab
            # Focus now, not when TabActivated arrives: the next key goes to the new pane.
            with contextlib.suppress(NoMatches):
                self._focus_pane(tab)

    def action_runs(self) -> None:
        """ctrl+l: the saved-runs list, from anywhere (Enter loads the highlighted run)."""
        if len(self.screen_stack) > 1:
            return  # a dialog is open: it answers first
        self.action_tab("training")
        self.query_one("#runs").focus()

    def action_leave_input(self) -> None:
        """Esc in an input (or a select) hands focus to the pane's main widget."""
        if isinstance(self.focused, (Input, Select)):
            pane = self.query_one(TabbedContent).active
            if pane == "training":
                self.query_one("#runs").focus()
            else:
                self._focus_pane(pane)

    @on(TabbedContent.TabActivated)
    def _tab_activated(self, event: TabbedContent.TabActivated) -> None:
        # The pane may not be composed yet (a busy start) or be gone already (shutting down).
        # Focusing a widget in another pane activates that pane's tab (TabPane.Focused), so a
        # stale event acted upon, or a focus call while focus is already in the pane, can
        # make two panes take focus from each other forever: skip both.
        pane = event.pane.id
        if pane != event.tabbed_content.active or not self.screen_stack:
            return
        focused = self.focused
        with contextlib.suppress(NoMatches):
            if pane != "inspect":
                self.query_one(InspectPane).deactivated()
            self._capture_state()
            if focused is not None and event.pane in focused.ancestors_with_self:
                if pane == "inspect":
                    self.query_one(InspectPane).activated(focus=False)
                return
            self._focus_pane(pane)

    def _focus_pane(self, pane: str | None) -> None:
        if pane == "corpus":
            self.query_one("#corpus-list").focus()
        elif pane == "training":
            self.query_one("#model-type").focus()
        elif pane == "generate":
            generation = self.query_one(GenerationPane)
            target = "#output" if generation.req else "#prompt"
            self.query_one(target).focus()
        elif pane == "inspect":
            self.query_one(InspectPane).activated()

    def action_help(self) -> None:
        from charlm_tui.screens.help import HelpScreen

        if not isinstance(self.screen, HelpScreen):
            panes = {
                "app": self.BINDINGS,
                "corpus": CorpusPane.BINDINGS,
                "training": TrainingPane.BINDINGS,
                "generate": GenerationPane.BINDINGS,
                "inspect": InspectPane.BINDINGS,
            }
            self.push_screen(HelpScreen(panes))

    def action_open_file(self) -> None:
        from charlm_tui.screens.file_open import FileOpenScreen

        def opened(path: str | None) -> None:
            if path:
                self.load_corpus(path)

        self.push_screen(FileOpenScreen(Path.cwd()), opened)

    def load_corpus(self, spec: str) -> None:
        self.action_tab("corpus")
        self.query_one(CorpusPane).load(spec)

    def training_action(self, action: str) -> None:
        getattr(self.query_one(TrainingPane), f"action_{action}")()

    def generation_action(self, action: str, *args: object) -> None:
        self.action_tab("generate")
        getattr(self.query_one(GenerationPane), f"action_{action}")(*args)

    @on(CorpusPane.OpenFileRequested)
    def _open_file(self, message: CorpusPane.OpenFileRequested) -> None:
        self.action_open_file()

    @on(StartChoiceAsked)
    def _ask_how_to_start(self, message: StartChoiceAsked) -> None:
        from charlm_tui.screens.start_choice import StartChoiceScreen

        screen = StartChoiceScreen(message.question, message.continue_label, message.new_label)
        self.push_screen(screen, message.answered)

    @on(InspectPane.PasteRequested)
    def _paste(self, message: InspectPane.PasteRequested) -> None:
        from charlm_tui.screens.paste import PasteScreen

        self.push_screen(PasteScreen(message.text), self.query_one(InspectPane).pasted)

    @on(GenerationPane.CompareRequested)
    def _compare(self, message: GenerationPane.CompareRequested) -> None:
        from charlm_tui.screens.compare import CompareScreen

        if not self.query_one(GenerationPane).has_model:
            self.notify(
                "No model yet: train one (F3) or load a checkpoint.",
                title="Compare",
                severity="warning",
            )
            return
        self.push_screen(
            CompareScreen(
                message.prompt,
                message.length,
                message.seed,
                by_label=message.by_label,
                condition=message.condition,
                guidance=message.guidance,
            )
        )

    @on(GenerationPane.BlendRequested)
    def _blend_requested(self, message: GenerationPane.BlendRequested) -> None:
        self.action_add_to_blend()

    def action_add_to_blend(self) -> None:
        """Pick a run (or checkpoint) directory; it joins the generation blend."""
        from charlm_tui.screens.file_open import FileOpenScreen

        def opened(path: str | None) -> None:
            if path:
                directory = Path(path) if Path(path).is_dir() else Path(path).parent
                self._send_command(p.AddToBlend(str(directory), req=p.new_request_id()))

        self.push_screen(FileOpenScreen(Path.cwd(), title="Add a run to the blend"), opened)
