"""The app's own record of the engine: its state, its device, the corpus it holds.

The subtitle shows that record ("tiny-shakespeare · engine ready (cpu)"). Commands
given while the engine starts, or before the first corpus is loaded, wait in the app
and are sent once the engine says it is ready (`_flush_waiting`). Errors become
notifications titled by what the user was doing; a dead engine is restarted once on
its own, then on ctrl+r.

A mixin of CharLMApp: engine events reach these `_got_*` methods through
charlm_tui.messages.dispatch_engine_event like the panes' own.
"""

from __future__ import annotations

import time
from pathlib import Path

from charlm_tui.messages import FAILED
from charlm_tui.state.recent import remember
from engine.data.samples import find_sample
from engine.worker import protocol as p

AUTO_RESTART_AFTER_S = 10.0  # a crash sooner than this after a start waits for ctrl+r


class EngineStatus:
    """Keeps the engine's state and the loaded corpus up to date, and shows them."""

    engine_state: str
    engine_device: str
    corpus_spec: str
    corpus_name: str
    sub_title: str
    _started_at: float
    _engine_starts: int
    _waiting: list[object]
    _corpus_loading: bool

    def _got_EngineReady(self, event: p.EngineReady) -> None:
        self.engine_state = "ready"
        self.engine_device = event.device
        self._flush_waiting()

    def _flush_waiting(self) -> None:
        waiting, self._waiting = self._waiting, []
        for command in waiting:
            self._send_command(command)  # type: ignore[attr-defined]

    def _got_CorpusLoading(self, event: p.CorpusLoading) -> None:
        self.corpus_spec = event.spec

    def _got_CorpusLoaded(self, event: p.CorpusLoaded) -> None:
        self.corpus_spec = event.spec
        self.corpus_name = event.name
        self._corpus_loading = False
        self._flush_waiting()
        if find_sample(event.spec) is None and Path(event.spec).exists():
            remember(event.spec)
        self._corpus_settled(event.spec)  # type: ignore[attr-defined]

    def _got_StatusEvent(self, event: p.StatusEvent) -> None:
        self.engine_state = event.state if event.state not in ("done", "failed") else "ready"
        if event.state == "starting":  # a run is starting: the engine itself is up
            self.engine_state = "starting a run"
        if event.state in ("stopped",):
            self.engine_state = "ready"

    def _got_ErrorEvent(self, event: p.ErrorEvent) -> None:
        if event.command == "LoadCorpus" and self._corpus_loading:
            self._corpus_loading = False
            self._flush_waiting()  # they will say for themselves what is missing
        if event.command == "LoadCorpus":
            self._corpus_settled(None)  # type: ignore[attr-defined]  # a run waiting for it still loads
        title = FAILED.get(event.command, "Something went wrong") if event.user else "Engine error"
        self.notify(  # type: ignore[attr-defined]
            event.message,
            title=title,
            severity="error",
            timeout=8,
            markup=False,
        )

    def _got_EngineDied(self, event: p.EngineDied) -> None:
        self.engine_state = "dead"
        if time.monotonic() - self._started_at >= AUTO_RESTART_AFTER_S or self._engine_starts < 2:
            self.notify(  # type: ignore[attr-defined]
                f"{event.reason}. Starting a new engine…",
                title="Engine stopped",
                severity="error",
                timeout=10,
            )
            self.call_later(self.action_restart_engine)  # type: ignore[attr-defined]
        else:
            self.notify(  # type: ignore[attr-defined]
                f"{event.reason}. Press ctrl+r to start a new engine.",
                title="Engine stopped again",
                severity="error",
                timeout=30,
            )

    def _update_subtitle(self) -> None:
        states = {
            "starting": "engine starting…",
            "ready": f"engine ready ({self.engine_device})",
            "dead": "engine stopped: ctrl+r restarts",
        }
        engine = states.get(self.engine_state, f"engine {self.engine_state}")
        corpus = self.corpus_name or "no corpus"
        self.sub_title = f"{corpus} · {engine}"
