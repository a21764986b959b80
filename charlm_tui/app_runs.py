"""The app's part in a run's lifecycle: a loaded run is the whole run.

When a run starts, the app notes its corpus (the spec it was loaded from: a folder's
path is not in the checkpoint) and the form's preset (charlm_tui/state/run_memory.py).
Loading a run later opens that corpus first when another one is loaded, then loads
the run again so that the training form gets all of it (model, preset, conditional,
tokens, items) and F5 continues it. The last run loaded or trained is reopened on the
next start, once its corpus is loaded (a checkpoint loaded before its corpus would
look foreign to it).

A mixin of CharLMApp: engine events reach these `_got_*` methods through
charlm_tui.messages.dispatch_engine_event like the app's own.
"""

from __future__ import annotations

from charlm_tui.state.run_memory import note_run, run_note, same_corpus
from engine.data.samples import find_sample
from engine.errors import UserError
from engine.files import user_path
from engine.worker import protocol as p


class RunLifecycle:
    """Notes runs as they start or load; brings a loaded run's corpus along."""

    corpus_spec: str
    last_checkpoint: str | None
    _realigned: set[str]  # checkpoints whose corpus we loaded for them
    _reload_checkpoint: tuple[str, str] | None  # (checkpoint, the corpus it waits for)

    def _load_after_corpus(self, checkpoint: str, spec: str) -> None:
        """Load `checkpoint` once the corpus `spec` is loaded (or failed to load)."""
        self._reload_checkpoint = (checkpoint, spec)

    def _corpus_settled(self, spec: str | None) -> None:
        """A corpus load ended (None: it failed): send the checkpoint that waited for it."""
        waiting = self._reload_checkpoint
        if waiting and (spec is None or same_corpus(waiting[1], spec)):
            self._reload_checkpoint = None
            self.engine.send(p.LoadCheckpoint(waiting[0], req=p.new_request_id()))  # type: ignore[attr-defined]

    def _got_TrainStarted(self, event: p.TrainStarted) -> None:
        note_run(event.run_dir, corpus=self.corpus_spec, preset=event.preset)

    def _got_CheckpointEvent(self, event: p.CheckpointEvent) -> None:
        self.last_checkpoint = event.path

    def _got_CheckpointSaved(self, event: p.CheckpointSaved) -> None:
        self.last_checkpoint = event.path

    def _got_CheckpointLoaded(self, event: p.CheckpointLoaded) -> None:
        self.last_checkpoint = event.path
        note_run(event.run_dir)
        spec = self._run_corpus(event)
        if not spec or same_corpus(spec, self.corpus_spec):
            self._realigned.discard(event.path)  # at home: loading it again may realign again
        if spec and not same_corpus(spec, self.corpus_spec) and event.path not in self._realigned:
            self._realigned.add(event.path)
            self._load_after_corpus(event.path, spec)
            self.notify(  # type: ignore[attr-defined]
                f"It was trained on '{event.corpus or spec}': loading that corpus too.",
                markup=False,
            )
            for pane in self.query("CorpusPane"):  # type: ignore[attr-defined]
                pane.load(spec)
        elif not event.vocab_matches_corpus:
            self.notify(  # type: ignore[attr-defined]
                self._vocab_mismatch(event, spec), severity="warning", markup=False
            )

    def _vocab_mismatch(self, event: p.CheckpointLoaded, spec: str) -> str:
        """Why the open corpus cannot evaluate or continue this checkpoint: another corpus,
        or (same file, other characters) the file was edited since the run trained on it,
        where "open that corpus" would point at the one already open."""
        name = event.corpus or "another corpus"
        if spec and same_corpus(spec, self.corpus_spec):
            return (
                f"This checkpoint was trained on '{name}' when it held other characters: the "
                "file has changed since. Generation works; evaluating or continuing needs the "
                "text it was trained on (or train a new run on this one)."
            )
        return (
            f"This checkpoint was trained on '{name}'. "
            "Generation works; open that corpus to evaluate or continue training."
        )

    @staticmethod
    def _run_corpus(event: p.CheckpointLoaded) -> str:
        """Where the run's corpus can be loaded from ("" when unknown or gone)."""
        spec = run_note(event.run_dir).get("corpus", "")
        if spec and (find_sample(spec) is not None or _exists(spec)):
            return spec
        if event.corpus and find_sample(event.corpus) is not None:
            return event.corpus
        return ""

    def saved_runs(self) -> list[dict]:
        """The runs the training pane lists (newest first), for the command palette."""
        return list(self.query_one("TrainingPane").runs)  # type: ignore[attr-defined]

    def load_run(self, run_dir: str) -> None:
        self.action_tab("training")  # type: ignore[attr-defined]
        self.query_one("TrainingPane").load_run(run_dir)  # type: ignore[attr-defined]


def _exists(spec: str) -> bool:
    """Whether a recorded corpus path is there (a name too long or an unknown ~user: no)."""
    try:
        return user_path(spec).exists()
    except (OSError, UserError):
        return False
