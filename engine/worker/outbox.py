"""Events out of the engine, throttled so the UI is never flooded."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from engine.worker import protocol as p

if TYPE_CHECKING:  # pragma: no cover
    pass

METRIC_INTERVAL_S = 0.1  # at most ~10 metric events a second
FRAME_S = 1 / 30  # generated characters are batched per frame


class Outbox:
    """Events out of the engine, in order, with metrics coalesced and characters batched.

    `send` goes out at once (after anything pending, so order is kept);
    `latest` keeps only the newest event of a kind until the next metric tick;
    `chars` collects generated characters until the next frame.
    """

    def __init__(self, send: Callable[[object], None]) -> None:
        self._send = send
        self._lock = threading.Lock()
        self._latest: dict[str, object] = {}
        self._last_metric = 0.0
        self._chars: dict[int, p.GenerationChunk] = {}
        self._closed = threading.Event()
        self.broken = False
        self._thread = threading.Thread(target=self._tick, name="outbox", daemon=True)
        self._thread.start()

    def _raw(self, event: object) -> None:
        if self.broken:
            return
        try:
            self._send(event)
        except (OSError, EOFError, ValueError):
            self.broken = True  # the UI is gone; the command loop will see EOF and exit

    def _flush_chars(self) -> None:
        chunks, self._chars = self._chars, {}
        for chunk in chunks.values():
            self._raw(chunk)

    def _flush_latest(self) -> None:
        latest, self._latest = self._latest, {}
        for event in latest.values():
            self._raw(event)
        self._last_metric = time.monotonic()

    def send(self, event: object) -> None:
        with self._lock:
            self._flush_latest()
            self._flush_chars()
            self._raw(event)

    def latest(self, key: str, event: object) -> None:
        with self._lock:
            self._latest[key] = event

    def chars(self, req: int, char: str, prob: float, model_prob: float, top: list) -> None:
        with self._lock:
            chunk = self._chars.get(req)
            if chunk is None:
                chunk = self._chars[req] = p.GenerationChunk("", [], [], [], req=req)
            alternatives = [(c, round(float(q), 5)) for c, q in top]
            # A word token (engine/data/words.py) is several characters: the UI keeps one
            # entry per character, each with its token's probabilities and alternatives.
            for one in char:
                chunk.text += one
                chunk.probs.append(round(float(prob), 5))
                chunk.model_probs.append(round(float(model_prob), 5))
                chunk.tops.append(alternatives)

    def _tick(self) -> None:
        while not self._closed.wait(FRAME_S):
            with self._lock:
                self._flush_chars()
                if self._latest and time.monotonic() - self._last_metric >= METRIC_INTERVAL_S:
                    self._flush_latest()

    def close(self) -> None:
        self._closed.set()
        with self._lock:
            self._flush_latest()
            self._flush_chars()
