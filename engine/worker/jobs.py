"""A cancellable piece of engine work running in its own thread."""

from __future__ import annotations

import threading


class Job:
    """A cancellable piece of work running in its own thread."""

    def __init__(self, kind: str, req: int) -> None:
        self.kind = kind
        self.req = req
        self.cancel = threading.Event()
        self.thread: threading.Thread | None = None
