"""Model states kept along recent generations, so a branch resumes instead of re-reading its text.

Writing with the model means forking a generation at some character and going
on from there with another choice. Re-feeding the whole text before the fork
would make a branch of a long text cost more than the text's own continuation;
keeping every state would cost memory per character. A recurrent model's state
is small and summarises everything before it, so one is kept every `every`
positions: a fork resumes from the nearest kept state whose text is a prefix
of the new one and feeds at most `every - 1` characters again (one forward
call).

A Transformer keeps no snapshots: its context is bounded by its window, so
priming a fork costs one window's forward call at most, whatever the length of
the text.

States belong to one set of weights: `bind` forgets them when the model
changes (a new training snapshot, another checkpoint).
"""

from __future__ import annotations

import threading
import weakref
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from engine.decoding.window import ContextWindow
from engine.models import CharLM, State

DEFAULT_EVERY = 64
DEFAULT_TEXTS = 16


@dataclass
class Track:
    """The snapshots along one text: `ids` is read from `history` when matching."""

    history: torch.Tensor  # (1, capacity) ids on the model's device; may still grow
    snaps: dict[int, State] = field(default_factory=dict)
    filled: int = 0
    _host: np.ndarray | None = None

    def ids(self) -> np.ndarray:
        if self._host is None or self._host.size != self.filled:
            self._host = self.history[0, : self.filled].cpu().numpy()
        return self._host


class StateSnapshots:
    """Recurrent states every `every` positions of the last `texts` generations of one model."""

    def __init__(self, every: int = DEFAULT_EVERY, texts: int = DEFAULT_TEXTS) -> None:
        if every < 1 or texts < 1:
            raise ValueError("every and texts must be >= 1")
        self.every = every
        self.texts = texts
        self._tracks: list[Track] = []
        self._model: Any = None
        # A replaced generation may still be recording while the next one looks up.
        self._lock = threading.Lock()

    def bind(self, model: CharLM) -> bool:
        """Use these snapshots for `model`; forgets them if it is another model.

        Returns whether this model can use snapshots at all (recurrent models only).
        """
        with self._lock:
            current = self._model() if self._model is not None else None
            if current is not model:
                self._tracks.clear()
                self._model = weakref.ref(model)
        return model.max_context is None

    def start(self, history: torch.Tensor) -> Track:
        """A new text being decoded into `history` (row 0); the oldest text is forgotten."""
        track = Track(history)
        with self._lock:
            self._tracks.append(track)
            del self._tracks[: -self.texts]
        return track

    def record(self, track: Track, position: int, state: State) -> None:
        """The state after feeding `position` tokens (kept when `position` is on the grid)."""
        with self._lock:
            track.filled = max(track.filled, position)
            if position % self.every == 0 and position > 0:
                track.snaps[position] = state

    def nearest(self, ids: np.ndarray) -> tuple[int, State] | None:
        """The kept state furthest along a text that `ids` starts with, leaving at least
        one token of `ids` to feed (its logits are the next prediction)."""
        best: tuple[int, State] | None = None
        limit = ids.size - 1
        with self._lock:
            tracks = [(track, list(track.snaps.items())) for track in self._tracks]
        for track, snaps in tracks:
            if not snaps:
                continue
            known = track.ids()
            span = min(known.size, limit)
            differ = np.flatnonzero(known[:span] != ids[:span])
            common = int(differ[0]) if differ.size else span
            for position, state in snaps:
                if position <= common and (best is None or position > best[0]):
                    best = (position, state)
        return best

    def __len__(self) -> int:
        with self._lock:
            return sum(len(t.snaps) for t in self._tracks)


def prime_window(
    window: ContextWindow, columns: int, snapshots: StateSnapshots, track: Track
) -> torch.Tensor:
    """`window.prime(columns)` for a recurrent model, from the nearest kept state, feeding
    the rest in pieces that end on the snapshot grid (each state kept); next-token logits."""
    hit = snapshots.nearest(window.history[0, :columns].cpu().numpy())
    window.filled = max(window.filled, columns)
    window.state, window.positions, window.fed = None, 0, 0
    if hit is not None:
        window.fed, window.state = hit
        window.positions = window.fed
    logits: torch.Tensor | None = None
    every = snapshots.every
    while window.fed < columns:
        end = min(columns, (window.fed // every + 1) * every)
        logits = window.feed(end - window.fed)[:, -1]
        snapshots.record(track, window.fed, window.state)
    if logits is None:  # nearest() always leaves a token to feed
        raise AssertionError("priming fed nothing")
    return logits
