"""The engine side of the worker: one command loop, slow work in threads.

Inside the engine the command loop never blocks: training runs in a thread (so
generation from `trainer.snapshot()` can run beside it), and corpus loads,
generations, evaluations and comparisons run in threads of their own. Commands
are dispatched through `HANDLERS`, a table from command class to its `on_...`
method (the methods grouped by concern in mixins); the table is checked against
`protocol.COMMANDS` at import, so a command without a handler fails at once.

The engine process never loses a run in training: SIGTERM, SIGHUP (a closed
terminal reaches the whole process group) and SIGINT make it leave its command
loop as Shutdown does, and so does the UI going away (the pipe breaks, or the
parent process changes because the UI was killed outright). Leaving the loop
saves the run at the next step boundary, with no final evaluation, and the
process then exits (128 + the signal's number after a signal). Further signals
while it saves change nothing: the handler only notes them.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from engine.errors import UserError, first_line
from engine.files import open_for_write
from engine.worker import protocol as p
from engine.worker.generation_jobs import GenerationHandlers
from engine.worker.inspect_jobs import InspectHandlers
from engine.worker.jobs import Job
from engine.worker.lr_find_jobs import LRFindHandlers
from engine.worker.outbox import Outbox
from engine.worker.runs import log_exception, log_path
from engine.worker.training_jobs import TrainingHandlers

if TYPE_CHECKING:  # pragma: no cover
    from engine.data.corpus import Corpus
    from engine.runs.checkpoint import Checkpoint
    from engine.training.trainer import Trainer

SHUTDOWN_GRACE_S = 8.0


class EngineServer(TrainingHandlers, GenerationHandlers, LRFindHandlers, InspectHandlers):
    """Executes commands; everything slow runs in a thread so commands keep flowing."""

    def __init__(self, outbox: Outbox) -> None:
        self.out = outbox
        self.lock = threading.RLock()
        self.device: Any = None
        self.corpus: Corpus | None = None
        self.corpus_req = 0
        self.trainer: Trainer | None = None
        self.train_thread: threading.Thread | None = None
        self.train_stop = threading.Event()
        self.trainer_paused = threading.Event()
        # Set as the run's last message is sent: the thread may live a moment longer
        # (closing files), but the next command after TrainFinished finds no training.
        self.train_over = threading.Event()
        self.last_saved: tuple[int, str] | None = None
        self.loaded: Checkpoint | None = None
        self.blend: list[Checkpoint] = []  # extra members of the generation blend
        self.labelled: Corpus | None = None  # the loaded corpus read as labelled, if it can be
        self.current: str | None = None  # "trainer" or "checkpoint": whose model generates
        self.jobs: dict[int, Job] = {}
        self._sampling_now = threading.Event()
        self._last_sample_at = 0.0

    # ----- life cycle --------------------------------------------------------------

    def start(self) -> None:
        import torch

        from engine.device import resolve_device

        # CHARLM_DEVICE pins the engine's device (tests pin the CPU so that what the app
        # shows is the same on every host); otherwise the best one available.
        self.device = resolve_device(os.environ.get("CHARLM_DEVICE") or "auto")
        self.out.send(
            p.EngineReady(
                device=str(self.device),
                torch_version=torch.__version__.split("+")[0],
                threads=torch.get_num_threads(),
                pid=os.getpid(),
            )
        )

    def shutdown(self) -> None:
        for job in list(self.jobs.values()):
            job.cancel.set()
        trainer, thread = self.trainer, self.train_thread
        self.train_stop.set()
        if trainer is not None and thread is not None and thread.is_alive():
            # Quitting saves first (between two steps, no evaluation needed), so the run
            # is on disk whatever happens next; then the loop stops without scoring.
            trainer.evaluate_at_end = False
            trainer.config.final_eval = False
            self.out.send(p.StatusEvent("saving", "saving the run before quitting"))
            try:
                trainer.save(tags=("last",))
            except Exception:
                log_exception("save on quit")
            trainer.stop()
            thread.join(SHUTDOWN_GRACE_S)

    def handle(self, command: object) -> bool:
        """Run one command; False once the engine should exit."""
        if isinstance(command, p.Shutdown):
            return False
        name = type(command).__name__
        handler = HANDLERS.get(type(command))
        req = int(getattr(command, "req", 0) or 0)
        if handler is None:
            self.out.send(p.ErrorEvent(f"unknown command {name}", name, req))
            return True
        self._guarded(name, req, lambda: handler(self, command))
        return True

    def _guarded(self, name: str, req: int, work: Callable[[], object]) -> None:
        try:
            work()
        except UserError as exc:
            self.out.send(p.ErrorEvent(first_line(exc, type(exc).__name__), name, req))
        except Exception as exc:
            log_exception(name)
            first = first_line(exc)
            message = f"internal error in {name}: {type(exc).__name__}" + (
                f": {first}" if first else ""
            )
            self.out.send(p.ErrorEvent(f"{message} (details in {log_path()})", name, req, False))

    def _spawn(self, kind: str, command: object, work: Callable[[Job], object]) -> Job:
        """Run `work` in a thread; its errors are reported as errors of `command`."""
        req = int(getattr(command, "req", 0) or 0)
        job = Job(kind, req)

        def run() -> None:
            try:
                self._guarded(type(command).__name__, req, lambda: work(job))
            finally:
                with self.lock:
                    if self.jobs.get(id(job)) is job:
                        del self.jobs[id(job)]

        with self.lock:
            self.jobs[id(job)] = job
        job.thread = threading.Thread(target=run, name=f"{kind}-{req}", daemon=True)
        job.thread.start()
        return job

    def _cancel_kind(self, kind: str) -> None:
        with self.lock:
            for job in self.jobs.values():
                if job.kind == kind:
                    job.cancel.set()

    @property
    def training(self) -> bool:
        thread = self.train_thread
        return thread is not None and thread.is_alive() and not self.train_over.is_set()

    # ----- corpus ------------------------------------------------------------------

    def on_LoadCorpus(self, cmd: p.LoadCorpus) -> None:
        with self.lock:
            self.corpus_req = cmd.req

        def work(job: Job) -> None:
            from engine.data.corpus import load_corpus

            self.out.send(p.CorpusLoading(cmd.spec, cmd.req))

            def progress(done: int, total: int | None) -> None:
                self.out.latest("download", p.DownloadProgress(cmd.spec, done, total, cmd.req))

            corpus = load_corpus(cmd.spec, cmd.encoding or "utf-8", download_progress=progress)
            from engine.data.items import corpus_item_info
            from engine.data.labels import label_sizes

            stats = {
                **corpus.stats().as_dict(),
                "items": corpus_item_info(corpus.vocab.chars, corpus.ids),
            }
            labelled = _labelled(cmd.spec, cmd.encoding or "utf-8")
            stats["labels"] = list(labelled.labels) if labelled is not None else []
            stats["label_sizes"] = label_sizes(labelled) if labelled is not None else []
            with self.lock:
                if self.corpus_req != cmd.req:
                    return  # a later load replaced this one
                self.corpus = corpus
                self.labelled = labelled
            self.out.send(p.CorpusLoaded(cmd.spec, corpus.name, stats, cmd.req))

        self._spawn("corpus", cmd, work)


# Which method runs each command. Shutdown has none: `handle` answers it by leaving
# the command loop.
HANDLERS: dict[type, Callable[[EngineServer, Any], None]] = {
    p.LoadCorpus: EngineServer.on_LoadCorpus,
    p.Train: EngineServer.on_Train,
    p.Pause: EngineServer.on_Pause,
    p.Resume: EngineServer.on_Resume,
    p.Stop: EngineServer.on_Stop,
    p.Evaluate: EngineServer.on_Evaluate,
    p.Generate: EngineServer.on_Generate,
    p.LoadCheckpoint: EngineServer.on_LoadCheckpoint,
    p.SaveCheckpoint: EngineServer.on_SaveCheckpoint,
    p.Compare: EngineServer.on_Compare,
    p.Cancel: EngineServer.on_Cancel,
    p.LRFind: EngineServer.on_LRFind,
    p.InspectText: EngineServer.on_InspectText,
    p.InspectUnit: EngineServer.on_InspectUnit,
    p.FindUnits: EngineServer.on_FindUnits,
    p.InspectAttention: EngineServer.on_InspectAttention,
    p.InspectSaliency: EngineServer.on_InspectSaliency,
    p.InspectEmbeddings: EngineServer.on_InspectEmbeddings,
    p.ListRuns: EngineServer.on_ListRuns,
    p.AddToBlend: EngineServer.on_AddToBlend,
    p.ClearBlend: EngineServer.on_ClearBlend,
}


def check_handlers(handlers: dict[type, object], commands: tuple[type, ...]) -> None:
    """Fail unless `handlers` covers every command but Shutdown, and nothing else."""
    expected = set(commands) - {p.Shutdown}
    missing = sorted(c.__name__ for c in expected - set(handlers))
    extra = sorted(c.__name__ for c in set(handlers) - expected)
    if missing or extra:
        raise TypeError(f"engine command handlers: missing {missing}, not commands {extra}")


check_handlers(HANDLERS, p.COMMANDS)


def _labelled(spec: str, encoding: str) -> Corpus | None:
    """The corpus read as labelled when its layout allows (the TUI then offers
    conditional training); None when it does not, or its label set is unusable."""
    from engine.data.labels import load_labelled_corpus, looks_labelled

    if not looks_labelled(spec):
        return None
    try:
        return load_labelled_corpus(spec, encoding)
    except UserError:
        return None


def serve(recv: Callable[[], object], send: Callable[[object], None]) -> None:
    """The engine's command loop: runs until Shutdown or until the UI goes away."""
    outbox = Outbox(send)
    server = EngineServer(outbox)
    try:
        server.start()
        while True:
            try:
                command = recv()
            except (EOFError, OSError):
                break  # the UI is gone
            if not server.handle(command):
                break
    except Exception:
        log_exception("engine")
        with contextlib.suppress(Exception):
            outbox.send(p.ErrorEvent("the engine failed to start (see the engine log)", user=False))
    finally:
        server.shutdown()
        outbox.close()


# Signals that make the engine save and exit; how often its command loop looks for them
# and for its parent (a signal handler runs only when the main thread runs Python).
STOP_SIGNALS = (signal.SIGTERM, signal.SIGHUP, signal.SIGINT)
WATCH_S = 0.2


class _Watch:
    """Notes the first stop signal; says when the command loop should leave."""

    def __init__(self, parent_pid: int | None) -> None:
        self.parent_pid = parent_pid
        self.signum: int | None = None

    def on_signal(self, signum: int, frame: object) -> None:
        if self.signum is None:
            self.signum = signum

    def reason(self) -> str | None:
        if self.signum is not None:
            return f"{signal.Signals(self.signum).name} received"
        if self.parent_pid is not None and os.getppid() != self.parent_pid:
            return "the app is gone"
        return None

    def receiver(self, conn: Any) -> Callable[[], object]:
        """conn.recv, but a Shutdown as soon as a signal or the parent's death says so."""

        def recv() -> object:
            while True:
                reason = self.reason()
                if reason is not None:
                    _say(f"{reason}: saving any run in training, then exiting")
                    return p.Shutdown()
                if conn.poll(WATCH_S):
                    return conn.recv()

        return recv


def _say(line: str) -> None:
    """One line in the engine log (stderr is the log in the engine process)."""
    with contextlib.suppress(Exception):
        print(f"charlm-engine {os.getpid()}: {line}", file=sys.stderr, flush=True)


def _process_main(conn: Any, parent_pid: int | None = None) -> None:
    """Entry point of the engine process (spawn context); `parent_pid` is the UI's."""
    watch = _Watch(parent_pid)
    for number in STOP_SIGNALS:
        signal.signal(number, watch.on_signal)
    try:  # the UI's terminal is not ours: torch warnings go to the log
        fd = open_for_write(log_path(), append=True)  # never through a planted link
        os.dup2(fd, 1)
        os.dup2(fd, 2)
        os.close(fd)
    except OSError:
        pass
    lock = threading.Lock()

    def send(event: object) -> None:
        with lock:
            conn.send(event)

    serve(watch.receiver(conn), send)
    with contextlib.suppress(OSError):
        conn.close()
    if watch.signum is not None:
        sys.exit(128 + watch.signum)
