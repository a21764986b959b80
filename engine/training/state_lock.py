"""The lock that keeps a trainer's state whole between steps, fair to saves.

Every step holds it, and so does every save, so a save from another thread (the
app's "save now") sees the weights, optimizer, RNGs and step of one moment.
Python's locks are not fair: a loop that takes the lock again at once can hold a
waiting save back until the run ends (seen on a loaded machine). Here a step
first lets every save that is waiting go.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager


class StateLock:
    """A re-entrant lock whose steps give way to waiting saves."""

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._count_lock = threading.Lock()
        self._saves_waiting = 0

    @contextmanager
    def for_save(self) -> Iterator[None]:
        with self._count_lock:
            self._saves_waiting += 1
        try:
            with self._lock:
                yield
        finally:
            with self._count_lock:
                self._saves_waiting -= 1

    @contextmanager
    def for_step(self) -> Iterator[None]:
        while self._saves_waiting:
            time.sleep(0.001)
        with self._lock:
            yield
