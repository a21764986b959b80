"""The UI side of the worker: the asyncio client and the engine process it owns.

The UI process imports this module at start-up, so nothing here imports torch:
only the engine side does, once it runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import os
import queue
import signal
import sys
import threading
from collections.abc import AsyncIterator, Iterator
from typing import TYPE_CHECKING, Any

from engine.worker import protocol as p
from engine.worker.runs import log_exception, log_path
from engine.worker.server import SHUTDOWN_GRACE_S, STOP_SIGNALS, _process_main, serve

if TYPE_CHECKING:  # pragma: no cover
    pass


class EngineClient:
    """The UI's handle on the engine: `send` commands, iterate `events()`.

    `mode` is "process" (default: a spawned process) or "thread" (tests). If the
    engine process dies, `events()` yields an `EngineDied` and `restart()` starts
    a fresh engine.
    """

    def __init__(self, mode: str = "process") -> None:
        if mode not in ("process", "thread"):
            raise ValueError(f"engine mode must be 'process' or 'thread', not {mode!r}")
        self.mode = mode
        self._events: asyncio.Queue[tuple[int, object]] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._generation = 0
        self._process: Any = None
        self._thread: threading.Thread | None = None
        self._conn: Any = None
        self._commands: queue.Queue | None = None
        self._stopping = False
        self._running = False

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    @property
    def running(self) -> bool:
        return self._running

    async def start(self) -> None:
        """Start the engine (returns at once; the engine says EngineReady when warm)."""
        self._loop = asyncio.get_running_loop()
        if self._events is None:
            self._events = asyncio.Queue()
        self._generation += 1
        self._stopping = False
        generation = self._generation
        if self.mode == "process":
            await asyncio.to_thread(self._start_process, generation)
        else:
            self._start_thread(generation)
        self._running = True

    def _start_process(self, generation: int) -> None:
        context = multiprocessing.get_context("spawn")
        parent, child = context.Pipe(duplex=True)
        # The engine watches our pid: killed outright, we leave it to save and exit.
        process = context.Process(
            target=_process_main, args=(child, os.getpid()), name="charlm-engine", daemon=True
        )
        with _real_stderr():
            process.start()
        child.close()  # so that the engine's death reads as EOF here
        self._conn, self._process = parent, process
        threading.Thread(
            target=self._read_process,
            args=(generation, parent, process),
            name="engine-reader",
            daemon=True,
        ).start()

    def _start_thread(self, generation: int) -> None:
        commands: queue.Queue = queue.Queue()

        def run() -> None:
            try:
                serve(commands.get, lambda event: self._deliver(generation, event))
            finally:
                self._deliver(generation, None)

        self._commands = commands
        self._thread = threading.Thread(target=run, name="charlm-engine", daemon=True)
        self._thread.start()

    def _deliver(self, generation: int, event: object) -> None:
        loop, events = self._loop, self._events
        if loop is None or events is None or loop.is_closed():
            return
        with contextlib.suppress(RuntimeError):  # the loop closed under us
            loop.call_soon_threadsafe(events.put_nowait, (generation, event))

    def _read_process(self, generation: int, conn: Any, process: Any) -> None:
        while True:
            try:
                if not conn.poll(0.1):
                    if not process.is_alive() and not conn.poll(0):
                        break
                    continue
                event = conn.recv()
            except (EOFError, OSError):
                break
            except Exception:  # an event that does not unpickle: report, keep reading
                log_exception("client")
                continue
            self._deliver(generation, event)
        process.join(2.0)
        if not self._stopping and generation == self._generation:
            self._deliver(generation, _death_of(process.exitcode))
        self._deliver(generation, None)

    def send(self, command: object) -> bool:
        """Queue a command for the engine; False (and nothing sent) if it is not running."""
        if not self._running:
            return False
        try:
            if self.mode == "process":
                self._conn.send(command)
            else:
                assert self._commands is not None
                self._commands.put(command)
        except (OSError, ValueError, AttributeError):
            return False
        return True

    async def events(self) -> AsyncIterator[object]:
        """Events of the current engine, forever (across restarts)."""
        if self._events is None:
            self._events = asyncio.Queue()
        while True:
            generation, event = await self._events.get()
            if generation != self._generation:
                continue  # left over from an engine since replaced
            if event is None:
                self._running = False
                continue
            if isinstance(event, p.EngineDied):
                self._running = False
            yield event

    async def stop(self, timeout: float = SHUTDOWN_GRACE_S + 2.0) -> None:
        """Shut the engine down; a process that does not exit in time is killed."""
        self._stopping = True
        was_running = self._running
        self._running = False
        if self.mode == "process":
            process, conn = self._process, self._conn
            if process is None:
                return
            if was_running:
                with contextlib.suppress(OSError, ValueError):
                    conn.send(p.Shutdown())
            await asyncio.to_thread(_reap, process, timeout)
            with contextlib.suppress(OSError):
                conn.close()
        else:
            if self._commands is not None and was_running:
                self._commands.put(p.Shutdown())
            if self._thread is not None:
                await asyncio.to_thread(self._thread.join, timeout)

    def stop_now(self) -> None:
        """Synchronous last resort (atexit, crashes): make sure no engine process survives."""
        self._stopping = True
        self._running = False
        process = self._process
        if process is not None and process.is_alive():
            with contextlib.suppress(OSError, ValueError):
                self._conn.send(p.Shutdown())
            _reap(process, 3.0)

    async def restart(self) -> None:
        await self.stop(timeout=3.0)
        await self.start()


@contextlib.contextmanager
def _real_stderr() -> Iterator[None]:
    """Let multiprocessing see a real stderr while it spawns.

    Textual replaces sys.stderr with a capture object whose fileno() is -1, and
    multiprocessing passes stderr's descriptor to the resource tracker it starts:
    -1 there makes the spawn fail.
    """
    try:
        usable = sys.stderr is not None and sys.stderr.fileno() >= 0
    except (AttributeError, OSError, ValueError):
        usable = False
    if usable or sys.__stderr__ is None:
        yield
        return
    saved, sys.stderr = sys.stderr, sys.__stderr__
    try:
        yield
    finally:
        sys.stderr = saved


def _reap(process: Any, timeout: float) -> None:
    process.join(timeout)
    if process.is_alive():
        process.terminate()
        process.join(2.0)
    if process.is_alive():
        process.kill()
        process.join(2.0)


def _death_of(exitcode: int | None) -> p.EngineDied:
    """Say in words why the engine process ended."""
    if exitcode is not None and exitcode < 0:
        try:
            name = signal.Signals(-exitcode).name
        except ValueError:
            name = f"signal {-exitcode}"
        hint = " (out of memory, or killed from outside)" if name == "SIGKILL" else ""
        reason = f"the engine was killed by {name}{hint}"
    elif exitcode and exitcode - 128 in STOP_SIGNALS:  # it caught the signal and saved
        name = signal.Signals(exitcode - 128).name
        reason = f"the engine was stopped by {name} (a run in training was saved first)"
    elif exitcode:
        reason = f"the engine exited with code {exitcode} (see {log_path()})"
    else:
        reason = "the engine exited unexpectedly"
    return p.EngineDied(exitcode, reason)
