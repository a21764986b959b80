"""The training loop: batches, schedule, evaluation, checkpoints, events, control.

Every position of a window predicts its next character (full-sequence loss).
AdamW with gradient clipping, linear warmup then cosine decay to `min_lr`. The
schedule's progress is the further along of steps/max_steps and
time/time_budget, so a time-budgeted run always finishes its decay.

`pause()`, `resume()` and `stop()` may be called from any thread and take effect
between steps. Events go to the `on_event` callback (the worker throttles them).
"""

from __future__ import annotations

import copy
import math
import threading
import time
from collections.abc import Callable
from pathlib import Path

import torch
from torch.nn import functional as F

from engine.config.train import TrainConfig
from engine.data.corpus import Corpus
from engine.device import autocast, enable_fast_math, resolve_device
from engine.errors import BudgetTooShort, first_line
from engine.machine.allocator import keep_freed_memory
from engine.models import CharLM, ModelConfig
from engine.runs.metrics_log import METRICS_FILE, MetricsLog
from engine.training.best_model import BestWeights
from engine.training.evaluation_steps import EvaluationSteps
from engine.training.events import CheckpointEvent, StatusEvent, TrainResult
from engine.training.loop import (
    LoopState,
    detach_state,
    thread_governor,
    training_label,
)
from engine.training.loop_steps import (
    after_step,
    emit_step,
    evaluate_and_save,
    read_back_loss,
    reason_to_stop,
    refuse_if_untrained,
    start_loop,
    take_step,
)
from engine.training.refit import refit_to_measured_speed
from engine.training.run_state import restore_run, save_run
from engine.training.schedule import lr_at, time_progress
from engine.training.setup_steps import (
    ModelSetup,
    build_run_model,
    choose_run_precision,
    claim_for_run,
    compile_failed,
    compile_or_eager,
    make_batches,
    make_eval_windows,
    make_optimizer,
    resumable_checkpoint,
    split_data,
    training_module,
)
from engine.training.state_lock import StateLock
from engine.training.tokens import corpus_for_run

EventCallback = Callable[[object], None]


class Trainer(EvaluationSteps):
    """Trains one model on one corpus; `run()` blocks until done, stopped or out of time."""

    def __init__(
        self,
        corpus: Corpus,
        model_config: ModelConfig | None,
        config: TrainConfig,
        *,
        out_dir: str | Path | None = None,
        on_event: EventCallback | None = None,
        resume: bool = False,
        force: bool = False,
        deadline: float | None = None,
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        """Set up a run as named steps: run directory, resume, data, model, optimizer.

        `force` replaces a run already in `out_dir` (without `resume`), or resumes one
        that cannot continue exactly (with it).
        """
        config.validate()
        self.corpus = corpus
        self.config = config
        self.out_dir = Path(out_dir) if out_dir else None
        self.on_event = on_event or (lambda event: None)
        self.rank = rank
        self.world_size = world_size
        self.is_main = rank == 0
        self.device = resolve_device(config.device)
        enable_fast_math(self.device)
        keep_freed_memory()  # a step's buffers stay in the heap: no page faults each step
        self.started = time.monotonic()
        self.setup_notes: list[str] = []  # adjustments the set-up made, said at the start
        # Created now so that its first look at other processes' CPU use spans the set-up.
        self.threads = thread_governor(config, self.device, world_size)
        # With a time budget the whole run (evaluation and saving included) must end by this.
        self.deadline = deadline
        if self.deadline is None and config.time_budget is not None:
            self.deadline = self.started + config.time_budget
        self.metrics: MetricsLog | None = None  # metrics.jsonl in out_dir, open while run() runs
        self.loop: LoopState | None = None  # the loop's state while run() runs

        self._pause = threading.Event()
        self._stop = threading.Event()
        self.weights_lock = threading.Lock()
        # Held for each step and each save (a save sees one moment, between two steps).
        self.state_lock = StateLock()
        # What checkpoints keep (restore_run sets them from one when resuming).
        self.step = 0
        self.tokens = 0
        self.history: list[dict] = []
        self.best_val_loss: float | None = None
        self.train_seconds = 0.0
        # Schedule progress (by time) reached before this process: a resumed budgeted run
        # continues its decay from there instead of going back to the peak rate.
        self.progress_offset = 0.0
        self.carry: object = None  # the recurrent state stateful batching carries on
        self.grad_norm: torch.Tensor | None = None  # the last step's, before clipping
        # What the evaluations and the result fill in (evaluation_steps.py).
        self.best_weights = BestWeights()  # the best evaluation's weights, kept in memory
        self.result_model: CharLM | None = None  # the best's weights when they are the result
        self.stop_note: str | None = None  # why the evaluations stopped the run, a sentence
        self.label_losses: dict[str, float] = {}  # a conditional run's final loss per label
        self.evaluate_at_end = True  # off when quitting: the save must not wait for scoring

        self._claim = claim_for_run(self.out_dir, is_main=self.is_main, resume=resume, force=force)
        try:
            self.corpus = corpus_for_run(corpus, config, self.out_dir, resume)
            vocab = self.corpus.vocab
            # A word model's losses are per character of text: characters per token id.
            self.token_chars: torch.Tensor | None = None
            if vocab.kind != "char":
                self.token_chars = torch.as_tensor(vocab.token_lengths(), device=self.device)
            resumed = None
            if resume:
                resumed = resumable_checkpoint(
                    self.out_dir, self.device, self.corpus, config, force=force, emit=self.emit
                )
            data = split_data(self.corpus, config, rank=rank, notes=self.setup_notes)
            self.train_ids, self.val_ids = data.train_ids, data.val_ids
            self.train_segments, self.val_segments = data.train_segments, data.val_segments
            self.batches = make_batches(
                data, self.corpus, config, self.device, rank=rank, world_size=world_size
            )
            self.model, self.model_config, self.width_choice = build_run_model(
                model_config,
                resumed,
                ModelSetup(config, self.corpus, data, self.device, rank, world_size,
                           self._claim, self.deadline, self.threads, self.setup_notes),
            )  # fmt: skip
            self.eval_windows = make_eval_windows(data, config, self.device, self.model)
            self.optimizer = make_optimizer(self.model, config, self.device)
            if resumed is not None:
                restore_run(self, resumed.meta, resumed.trainer_tensors)
                if rank:  # the checkpoint holds rank 0's RNG state
                    torch.manual_seed(config.seed + rank + 7919 * self.step)
            self.resumed_at_step = self.step  # the past-best stop looks from here on
            # Under DDP rank 0's clock drives the schedule (see _agree_with_ranks).
            self._shared_time_progress: float | None = None
            self.eager: torch.nn.Module = training_module(self.model, self.device, world_size)
            self._compiled_ok = False  # a compiled step has run (later errors are real)
            self.compiled = compile_or_eager(self.eager, config, self._fall_back_to_eager)
            self.precision = choose_run_precision(
                config, self.device, self.model, self.model_config, len(vocab), world_size
            )
            self.amp = self.precision.dtype
        except BaseException:
            if self._claim is not None:
                self._claim.abandon()
            raise

    # ----- control (any thread) -----------------------------------------------------

    def close(self) -> None:
        """Let go of the run directory (run() does this when it ends)."""
        if getattr(self, "_claim", None) is not None:
            self._claim.release()

    def pause(self) -> None:
        self._pause.set()

    def resume(self) -> None:
        self._pause.clear()

    def stop(self) -> None:
        self._stop.set()
        self._pause.clear()

    @property
    def paused(self) -> bool:
        return self._pause.is_set()

    @property
    def stop_requested(self) -> bool:
        return self._stop.is_set()

    def snapshot(self) -> CharLM:
        """A copy of the current weights in eval mode, for generating while training; once
        the run is over, of its result (the best model, engine/training/best_model.py)."""
        with self.weights_lock:
            model = copy.deepcopy(self.result_model or self.model)
        return model.eval()

    def emit(self, event: object) -> None:
        if self.is_main:
            if self.metrics is not None:
                self.metrics.record(event)
            self.on_event(event)

    # ----- schedule -----------------------------------------------------------------

    def _time_progress(self, now: float) -> float:
        return time_progress(now, self.started, self.deadline, self.progress_offset)

    def progress(self, now: float) -> float:
        cfg = self.config
        by_steps = self.step / cfg.max_steps if cfg.max_steps else 0.0
        by_time = self._shared_time_progress
        if by_time is None:
            by_time = self._time_progress(now)
        return min(1.0, max(by_steps, by_time))

    def session_progress(self, now: float) -> float:
        """How far this process is towards its own end (its budget or max_steps): what the
        progress bar and its ETA show. progress() also counts what earlier processes of a
        resumed run spent of the schedule, so a finished run continued for another budget
        sat at 99% with "ETA 0:00" for the whole of it."""
        by_steps = 0.0
        if self.config.max_steps:
            left = self.config.max_steps - self.resumed_at_step
            by_steps = (self.step - self.resumed_at_step) / left if left > 0 else 1.0
        by_time = time_progress(now, self.started, self.deadline, 0.0)
        return min(1.0, max(by_steps, by_time))

    def lr_at(self, progress: float) -> float:
        c = self.config
        return lr_at(self.step, progress, lr=c.lr, warmup_steps=c.warmup_steps, min_lr_ratio=c.min_lr_ratio)  # fmt: skip

    def schedule_progress(self) -> float:
        """How far the schedule has come by time (0..1), saved so a resume continues it."""
        by_time = self._shared_time_progress
        if by_time is None:
            by_time = self._time_progress(time.monotonic())
        return min(1.0, max(by_time, 0.0))

    # ----- one step -----------------------------------------------------------------

    def _forward_backward(
        self, inputs: torch.Tensor, targets: torch.Tensor, condition: torch.Tensor | None = None
    ) -> torch.Tensor:
        with autocast(self.device, self.amp):
            if condition is None:
                logits, state = self.compiled(inputs, self.carry)
            else:
                logits, state = self.compiled(inputs, self.carry, condition)
            loss = F.cross_entropy(
                logits.float().reshape(-1, logits.shape[-1]), targets.reshape(-1)
            )
        if self.config.batching == "stateful":
            self.carry = detach_state(state)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        return loss

    def train_step(
        self,
        inputs: torch.Tensor,
        targets: torch.Tensor,
        reset: bool,
        lr: float,
        condition: torch.Tensor | None = None,
    ) -> torch.Tensor:
        if reset:
            self.carry = None
        carry = self.carry
        try:
            loss = self._forward_backward(inputs, targets, condition)
        except Exception as exc:
            if not compile_failed(exc, self.compiled, self.eager, compiled_ok=self._compiled_ok):
                raise
            # torch.compile compiles at the first call, so that is where it fails (no C
            # compiler, an unsupported op or GPU): redo this step eagerly and carry on.
            self._fall_back_to_eager(exc)
            self.carry = carry
            loss = self._forward_backward(inputs, targets, condition)
        self._compiled_ok = True
        # The norm is measured whether or not it is clipped: metrics.jsonl logs it.
        clip = self.config.grad_clip if self.config.grad_clip > 0 else math.inf
        self.grad_norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), clip).detach()
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        with self.weights_lock:
            self.optimizer.step()
        return loss.detach()

    def _fall_back_to_eager(self, exc: BaseException) -> torch.nn.Module:
        first = first_line(exc, type(exc).__name__)[:200]
        note = f"torch.compile unavailable ({first}); eager mode"
        self.emit(StatusEvent("training", note, note=True))
        self.config.compile = False
        self.compiled = self.eager
        return self.eager

    # ----- the loop -----------------------------------------------------------------

    def run(self) -> TrainResult:
        """Train until max_steps, the time budget or stop(); returns the final figures.

        Raises TrainingDiverged (after keeping the last good checkpoint) when the
        loss or the weights stop being finite. The run directory is let go at the end.
        """
        if self.out_dir is not None and self.is_main:
            # A resumed run (step > 0) keeps its records up to the checkpoint's step.
            # Replacing or resuming a run: its metrics.jsonl stays until the first save.
            replacing = self._claim is not None and self._claim.replacing
            self.metrics = MetricsLog(
                self.out_dir, resume_step=self.step or None, pending=replacing or self.step > 0
            )
        threads_before = torch.get_num_threads()
        untrained = False
        try:
            return self._run()
        except BudgetTooShort:  # nothing was saved: a directory this run made goes again
            untrained = True
            raise
        finally:
            torch.set_num_threads(threads_before)  # the count is process-wide: give it back
            if self.metrics is not None:
                self.metrics.close()
                self.metrics = None
            if untrained and self._claim is not None:
                self._claim.abandon(written=(METRICS_FILE,))
            self.close()

    def _run(self) -> TrainResult:
        cfg = self.config
        loop = self.loop = start_loop(self)
        while True:
            # Stop or go: max_steps, stop(), the evaluations' verdict, a pause, the time
            # budget; under DDP every rank follows rank 0's decision.
            reason, now = reason_to_stop(self, loop)
            if reason is not None:
                loop.stopped_by = reason
                break

            # One optimizer step on the next batch, timed up to its loss read back.
            step_start = time.perf_counter()
            lr = self.lr_at(self.progress(now))
            chars = take_step(self, loop, lr)

            # Every few steps the loss comes back from the device: divergence shows there.
            grad_norm = read_back_loss(self, loop)
            elapsed = time.perf_counter() - step_start

            # The budget and the thread governor learn the step's time.
            after_step(self, loop, chars, elapsed)

            # The step's event: loss, learning rate, speed, progress.
            emit_step(self, loop, lr, grad_norm)

            # Every eval_interval steps: weights still finite, an evaluation, a checkpoint;
            # at the first, the data fit checked against the speed measured (refit.py).
            if self.step % cfg.eval_interval == 0:
                if not loop.fit_checked:
                    loop.fit_checked = True
                    refit_to_measured_speed(self, loop)
                evaluate_and_save(self, loop)

        refuse_if_untrained(self, loop)
        return self._finish(loop.stopped_by)

    def training_label(self) -> str:
        """The precision, and the thread count when the governor moved it off the default."""
        return training_label(self.precision.label, self.threads)

    def agree_with_ranks(self, reason: str | None, now: float) -> str | None:
        from engine.machine.ddp import agree

        reason, self._shared_time_progress = agree(
            reason, self._time_progress(now), is_main=self.is_main, device=self.device
        )
        return reason

    # ----- checkpoints --------------------------------------------------------------

    def save(self, tags: tuple[str, ...] = ("last",), extra: dict | None = None) -> Path:
        """Write a checkpoint of everything needed to continue exactly from here.

        Any thread may call this while training runs: it waits for the step in flight.
        """
        assert self.out_dir is not None
        with self.state_lock.for_save():
            replacing = self._claim is not None and self._claim.replacing
            if replacing:  # the first save of a --force run takes over both tags
                tags = tuple(dict.fromkeys((*tags, "best")))
            path = save_run(self, tags, extra)
            if replacing:
                self._claim.replacing = False
            if self.metrics is not None:
                self.metrics.commit()  # a pending log replaces the old run's at the first save
            step = self.step
        self.emit(CheckpointEvent(step, str(path), list(tags)))
        return path
