"""Stopping a run on SIGINT, SIGTERM or SIGHUP: it saves at the next step boundary.

Apart from engine/training/launch.py (starting ranks) because a single-process run
(`charlm-tui train`, engine/training/launch.py's one-device path) stops the same way.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


class StopOnSignals:
    """While entered: SIGINT, SIGTERM and SIGHUP stop `trainer` at the next step boundary,
    where it saves, with no final evaluation. `signum` is the first signal (the CLI exits
    128 + it). Then Ctrl-C gets its old handler back (twice aborts; the checkpoint write
    is atomic), while more SIGTERMs or SIGHUPs (a closing terminal sends several) change
    nothing. After SIGHUP, stdout and stderr that were the gone terminal write to
    /dev/null. Outside the main thread (no signal handlers there) it does nothing.
    """

    def __init__(self, trainer) -> None:  # Trainer (imported lazily, as in train_rank)
        self.trainer = trainer
        self.signum: int | None = None
        self._previous: dict[int, object] = {}
        self._terminal: list[int] = []

    @property
    def signal_name(self) -> str | None:
        return signal.Signals(self.signum).name if self.signum is not None else None

    def __enter__(self) -> StopOnSignals:
        if threading.current_thread() is not threading.main_thread():
            return self
        # Known now: once the terminal hangs up, isatty() on it fails.
        self._terminal = [fd for fd in (1, 2) if os.isatty(fd)]
        for number in STOP_SIGNALS:
            self._previous[number] = signal.signal(number, self._on_signal)
        return self

    def _on_signal(self, signum: int, frame: object) -> None:
        if signum == signal.SIGHUP:
            _point_at_devnull(self._terminal)
        if self.signum is not None:
            return
        self.signum = signum
        self.trainer.config.final_eval = False
        self.trainer.stop()
        signal.signal(signal.SIGINT, self._previous[signal.SIGINT])  # type: ignore[arg-type]

    def __exit__(self, *exc: object) -> None:
        for number, previous in self._previous.items():
            if self.signum is not None and number != signal.SIGINT:
                # Stopping: the command exits next, and a repeated SIGTERM or SIGHUP arriving
                # after training returned must not kill it with its default action.
                previous = signal.SIG_IGN
            signal.signal(number, previous)  # type: ignore[arg-type]
        self._previous.clear()


def _point_at_devnull(fds: list[int]) -> None:
    try:
        null = os.open(os.devnull, os.O_WRONLY)
    except OSError:
        return
    for fd in fds:
        with contextlib.suppress(OSError):
            os.dup2(null, fd)
    os.close(null)
