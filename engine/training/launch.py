"""Training on several processes with DistributedDataParallel.

Launch with torchrun, one process per GPU (`launched_by_torchrun()` tells the
CLI from torchrun's RANK / WORLD_SIZE / LOCAL_RANK that it is one rank):

    torchrun --standalone --nproc_per_node 8 -m charlm_tui train --ddp --corpus C --out DIR

or with `charlm-tui train --ddp ...` alone, which starts one process per
visible GPU itself. The backend is nccl on CUDA (each rank on cuda:LOCAL_RANK)
and gloo on CPUs. `--set batch_size=B` is per rank: the global batch is
B x world size, and the learning rate is not rescaled.

What makes N ranks one training run:
- every rank builds the same initial weights, and DDP all-reduces (averages)
  the gradients, so the weights stay identical;
- every rank draws the same global batch and keeps rows rank::N of it (see
  trainer.BatchSource), so N ranks train exactly as one process with the global
  batch would, and a checkpoint resumes on any number of ranks;
- rank 0 alone logs, evaluates and writes checkpoints; the others wait for it
  at the next collective;
- every few steps one small all-reduce carries rank 0's stop decision (time
  budget, Ctrl-C) and its clock for the learning-rate schedule, so all ranks
  stop at the same step with the same learning rate.

Stateful (TBPTT) batching carries hidden state per rank, and only rank 0's is
saved: a stateful run resumed under DDP, or on another world size, starts its
streams afresh.
"""

from __future__ import annotations

import contextlib
import dataclasses
import gc
import os
import signal
import socket
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist

from engine.device import resolve_device
from engine.machine.ddp import World, init_process_group, rank_device, torchrun_world
from engine.models import ModelConfig
from engine.runs.tensorboard_log import TensorBoardRequest
from engine.training.events import StepEvent, TrainResult
from engine.training.stop_signals import StopOnSignals


# Signals that stop a training process at the next step boundary, saving there.
def _load_corpus(spec: str, encoding: str, world: World, labelled: bool = False):  # -> Corpus
    """Rank 0 encodes (and caches) the corpus first; the others then load the cache."""
    from engine.data.labels import load_corpus_as

    if world.rank == 0:
        corpus = load_corpus_as(spec, encoding, labelled)
        dist.barrier()
        return corpus
    dist.barrier()
    return load_corpus_as(spec, encoding, labelled)


class StderrProgress:
    """Rank 0's progress for people: one line per evaluation and status message."""

    def __init__(self, world_size: int) -> None:
        self.prefix = f"[ddp x{world_size}] "
        self.said = ""

    def __call__(self, event: object) -> None:
        kind = getattr(event, "kind", "")
        line = ""
        if kind == "eval":
            train = getattr(event, "train_loss", None)
            train_part = f"train {train:.4f}  " if train is not None else ""
            line = (
                f"step {event.step:>6}  {train_part}val {event.val_loss:.4f} "  # type: ignore[attr-defined]
                f"({event.val_bpc:.3f} bpc)"  # type: ignore[attr-defined]
            )
        elif kind == "status" and getattr(event, "message", ""):
            line = event.message  # type: ignore[attr-defined]
            if line == self.said:  # the precision label comes with every "training" status
                return
            self.said = line
        if line:
            sys.stderr.write(self.prefix + line + "\n")
            sys.stderr.flush()


@dataclass
class RankOutcome:
    """What one rank's training returned; `losses` are rank 0's logged step losses."""

    rank: int
    result: TrainResult
    losses: list[float] = field(default_factory=list)


def train_rank(
    world: World,
    corpus_spec: str,
    encoding: str,
    model_config: ModelConfig | None,
    train_config,  # TrainConfig (imported lazily: engine.training.trainer imports this module)
    out_dir: str | Path | None,
    resume: bool,
    deadline: float | None,
    on_event: Callable[[object], None] | None = None,
    tensorboard: TensorBoardRequest | None = None,
) -> RankOutcome:
    """Be one rank of a DDP run: join, train, leave. Returns this rank's outcome.

    Rank 0 alone writes TensorBoard event files when `tensorboard` asks for them
    (it alone evaluates, so it alone has val figures and samples to log).
    """
    from engine.training.trainer import Trainer

    config = dataclasses.replace(
        train_config, device=rank_device(train_config.device, world.local_rank)
    )
    device = resolve_device(config.device)
    init_process_group(world, device)
    losses: list[float] = []
    show = on_event or StderrProgress(world.world_size)
    trainer = None
    board = None
    if tensorboard is not None and world.rank == 0:
        board = tensorboard.open(lambda: trainer)

    def record(event: object) -> None:
        if isinstance(event, StepEvent):
            losses.append(event.loss)
        show(event)
        if board is not None:
            board.record(event)

    try:
        corpus = _load_corpus(corpus_spec, encoding, world, bool(config.conditional))
        trainer = Trainer(
            corpus,
            dataclasses.replace(model_config) if model_config is not None else None,
            config,
            out_dir=out_dir,
            on_event=record,
            resume=resume,
            deadline=deadline,
            rank=world.rank,
            world_size=world.world_size,
        )
        # Ctrl-C (and a closed terminal) reaches every rank; torchrun passes SIGTERM on to
        # them: all stop at the next agreed step, rank 0 saves.
        with StopOnSignals(trainer) as stopper:
            result = trainer.run()
        result.stop_signal = stopper.signal_name
        # Leave together, once rank 0 has evaluated and saved: a rank that exits and
        # closes its sockets while a peer's gloo context is live can abort that peer.
        dist.barrier()
    finally:
        if board is not None:
            board.close()
        # The DDP wrapper holds the process group and gloo work with tensors in it: free
        # them now, while the interpreter is whole. Left to interpreter shutdown, gloo's
        # worker threads can take the GIL too late and abort the process (SIGABRT).
        trainer = None
        gc.collect()
        if dist.is_initialized():
            dist.destroy_process_group()
    return RankOutcome(world.rank, result, losses)


# What a run is, as train_rank's keyword arguments (launch hands them to each rank).
JOB_ARGUMENTS = (
    "corpus_spec",
    "encoding",
    "model_config",
    "train_config",
    "out_dir",
    "resume",
    "deadline",
    "tensorboard",
)


def free_port() -> int:
    """A TCP port nobody listens on right now, for a local rendezvous."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _spawned_rank(local_rank: int, world_size: int, port: int, job: dict, queue) -> None:
    """Entry point of a process started by `launch` (module level: spawn pickles it)."""
    os.environ.update(
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(port),
        RANK=str(local_rank),
        WORLD_SIZE=str(world_size),
        LOCAL_RANK=str(local_rank),
    )
    if "OMP_NUM_THREADS" not in os.environ:  # share the cores, as torchrun does
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // world_size))
    from engine.errors import UserError

    try:
        outcome = train_rank(World(local_rank, world_size, local_rank), **job)
    except UserError as exc:  # bad input: the launcher raises it, the CLI prints one line
        queue.put(exc)
        raise SystemExit(2) from None
    queue.put(outcome)


def launch(
    world_size: int,
    corpus_spec: str,
    encoding: str,
    model_config: ModelConfig | None,
    train_config,  # TrainConfig
    out_dir: str | Path | None,
    resume: bool = False,
    deadline: float | None = None,
    tensorboard: TensorBoardRequest | None = None,
) -> list[RankOutcome]:
    """Train with `world_size` local processes (no torchrun needed); outcomes by rank.

    A rank that fails makes the others stop too, and its error is raised here.
    """
    import torch.multiprocessing as mp

    arguments = locals()
    job = {key: arguments[key] for key in JOB_ARGUMENTS}
    queue = mp.get_context("spawn").SimpleQueue()
    context = mp.start_processes(
        _spawned_rank,
        args=(world_size, free_port(), job, queue),
        nprocs=world_size,
        join=False,
        start_method="spawn",
    )
    # A SIGTERM or SIGHUP sent to this launcher alone goes on to the ranks: none trains on.
    previous = {}
    if threading.current_thread() is threading.main_thread():

        def forward(signum: int, frame: object) -> None:
            for process in context.processes:
                with contextlib.suppress(OSError):
                    os.kill(process.pid, signum)

        previous = {n: signal.signal(n, forward) for n in (signal.SIGTERM, signal.SIGHUP)}
    try:
        received = _join_ranks(context, queue)
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)
    outcomes = [item for item in received if isinstance(item, RankOutcome)]
    return sorted(outcomes, key=lambda outcome: outcome.rank)


def _join_ranks(context, queue) -> list[object]:
    """Wait for every rank (a Ctrl-C reaches them too: wait on); what they sent back."""
    import torch.multiprocessing as mp

    received: list[object] = []
    interrupted = False
    while True:
        try:
            done = context.join(timeout=0.5)
        except KeyboardInterrupt:  # the ranks got it too: they stop and save; wait for them
            if interrupted:
                raise
            interrupted = True
            continue
        except mp.ProcessException:  # a rank failed and the others were stopped
            while not queue.empty():
                received.append(queue.get())
            for item in received:
                if isinstance(item, Exception):
                    raise item from None
            raise
        while not queue.empty():  # drain as we go: a full pipe would block a rank
            received.append(queue.get())
        if done:
            break
    while not queue.empty():
        received.append(queue.get())
    return received


def run_distributed(
    corpus_spec: str,
    encoding: str,
    model_config: ModelConfig | None,
    train_config,  # TrainConfig
    out_dir: str | Path | None,
    resume: bool,
    deadline: float | None,
    tensorboard: TensorBoardRequest | None = None,
) -> TrainResult | None:
    """`charlm-tui train --ddp` (or under torchrun): the TrainResult on rank 0, else None.

    Under torchrun this process is one rank. Otherwise one process per visible
    GPU is started; with one GPU or none, training runs here as a world of one.
    """
    arguments = locals()
    job = {key: arguments[key] for key in JOB_ARGUMENTS}
    world = torchrun_world()
    if world is not None:
        outcome = train_rank(world, **job)
        return outcome.result if world.rank == 0 else None
    gpus = torch.cuda.device_count() if resolve_device(train_config.device).type == "cuda" else 0
    if gpus > 1:
        return launch(gpus, **job)[0].result
    sys.stderr.write(
        "charlm-tui: one device, so one process; for several use "
        "torchrun --nproc_per_node N -m charlm_tui train ...\n"
    )
    return _train_here(job)


def _train_here(job: dict[str, Any]) -> TrainResult:
    """`--ddp` with one device: a world of one, in this process, stopped by signals as
    `charlm-tui train` is. `job` holds run_distributed's arguments by name."""
    from engine.data.labels import load_corpus_as
    from engine.training.trainer import Trainer

    progress = StderrProgress(1)
    trainer = None
    tensorboard = job["tensorboard"]
    board = tensorboard.open(lambda: trainer) if tensorboard is not None else None

    def on_event(event: object) -> None:
        progress(event)
        if board is not None:
            board.record(event)

    try:
        train_config = job["train_config"]
        corpus = load_corpus_as(job["corpus_spec"], job["encoding"], bool(train_config.conditional))
        trainer = Trainer(
            corpus,
            job["model_config"],
            train_config,
            out_dir=job["out_dir"],
            on_event=on_event,
            resume=job["resume"],
            deadline=job["deadline"],
        )
        with StopOnSignals(trainer) as stopper:
            result = trainer.run()
        result.stop_signal = stopper.signal_name
        return result
    finally:
        if board is not None:
            board.close()
