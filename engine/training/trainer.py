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

from engine.data.corpus import Corpus
from engine.device import autocast, enable_fast_math, resolve_device
from engine.errors import TrainingDiverged
from engine.models import CharLM, ModelConfig
from engine.training.budget import TimeBudget, probe_final_eval_rate
from engine.training.checkpoint import first_non_finite
from engine.training.config import TrainConfig
from engine.training.evaluation_steps import EvaluationSteps
from engine.training.events import CheckpointEvent, StatusEvent, StepEvent, TrainResult
from engine.training.metrics_log import MetricsLog
from engine.training.run_state import restore_run, save_run
from engine.training.schedule import lr_at
from engine.training.setup_steps import SetupSteps
from engine.training.threads import ThreadGovernor
from engine.training.tokens import corpus_for_run

EventCallback = Callable[[object], None]
# A loss above this (nats/char) is divergence, not learning: uniform guessing over the
# whole of Unicode costs 14.
DIVERGED_LOSS = 1e3


def _detach(state: object) -> object:
    if state is None:
        return None
    if isinstance(state, tuple):
        return tuple(s.detach() for s in state)
    return state.detach()  # type: ignore[attr-defined]


class Trainer(SetupSteps, EvaluationSteps):
    """Trains one model on one corpus; `run()` blocks until done, stopped or out of time."""

    metrics: MetricsLog | None = None  # metrics.jsonl in out_dir, open while run() runs

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
        self.started = time.monotonic()
        self.setup_notes: list[str] = []  # adjustments the set-up made, said at the start
        self.width_choice = None  # a fitted width (engine/training/sizing.py), if any
        # Created now so that its first look at other processes' CPU use spans the set-up.
        self.threads = self._thread_governor()
        # With a time budget the whole run (evaluation and saving included) must end by this.
        self.deadline = deadline
        if self.deadline is None and config.time_budget is not None:
            self.deadline = self.started + config.time_budget

        self._pause = threading.Event()
        self._stop = threading.Event()
        self.weights_lock = threading.Lock()
        # Held for each step and each save: a save from another thread (the TUI's) sees
        # the weights, optimizer, RNGs and step of one moment, between two steps.
        self.state_lock = threading.RLock()
        self.step = 0
        self.tokens = 0
        self.history: list[dict] = []
        self.best_val_loss: float | None = None
        self.train_seconds = 0.0
        # Schedule progress (by time) reached before this process: a resumed budgeted run
        # continues its decay from there instead of going back to the peak rate.
        self.progress_offset = 0.0
        self.carry: object = None
        self._loss_ema: float | None = None
        self.evaluate_at_end = True  # off when quitting: the save must not wait for scoring

        self._claim = self._setup_run_dir(resume, force)
        try:
            self.corpus = corpus_for_run(corpus, config, self.out_dir, resume)
            # A word model's losses are per character of text: characters per token id.
            self.token_chars: torch.Tensor | None = None
            if self.corpus.vocab.kind != "char":
                lengths = self.corpus.vocab.token_lengths()
                self.token_chars = torch.as_tensor(lengths, device=self.device)
            resumed = self._setup_resume(resume, force)
            self._setup_data()
            self._setup_model(model_config, resumed)
            self._setup_optimizer()
            if resumed is not None:
                restore_run(self, resumed.meta, resumed.trainer_tensors)
                if rank:  # the checkpoint holds rank 0's RNG state
                    torch.manual_seed(config.seed + rank + 7919 * self.step)
            # Under DDP rank 0's clock drives the schedule (see _agree_with_ranks).
            self._shared_time_progress: float | None = None
            self.eager: torch.nn.Module = self._training_module()
            self._compiled_ok = False
            self.compiled = self._maybe_compile()
            self._choose_precision()
        except BaseException:
            if self._claim is not None:
                self._claim.abandon()
            raise

    # ----- set-up -------------------------------------------------------------------

    def close(self) -> None:
        """Let go of the run directory (run() does this when it ends)."""
        claim = getattr(self, "_claim", None)
        if claim is not None:
            claim.release()

    # ----- set-up -------------------------------------------------------------------

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

    def snapshot(self) -> CharLM:
        """A copy of the current weights in eval mode, for generating while training; once
        the run is over, of its result (the best model, engine/training/best_model.py)."""
        with self.weights_lock:
            model = copy.deepcopy(getattr(self, "result_model", None) or self.model)
        return model.eval()

    # ----- the loop -----------------------------------------------------------------

    def _emit(self, event: object) -> None:
        if self.is_main:
            if self.metrics is not None:
                self.metrics.record(event)
            self.on_event(event)

    def _time_progress(self, now: float) -> float:
        """Progress by time: what earlier processes reached, then this budget's share of the rest."""
        if self.deadline is None:
            return self.progress_offset
        span = max(self.deadline - self.started, 1e-9)
        return self.progress_offset + (1.0 - self.progress_offset) * (now - self.started) / span

    def progress(self, now: float) -> float:
        cfg = self.config
        by_steps = self.step / cfg.max_steps if cfg.max_steps else 0.0
        by_time = self._shared_time_progress
        if by_time is None:
            by_time = self._time_progress(now)
        return min(1.0, max(by_steps, by_time))

    def lr_at(self, progress: float) -> float:
        cfg = self.config
        return lr_at(
            self.step,
            progress,
            lr=cfg.lr,
            warmup_steps=cfg.warmup_steps,
            min_lr_ratio=cfg.min_lr_ratio,
        )

    def _chars_per_s(self) -> float:
        """Characters of text per training second (tokens per second for a char model)."""
        return self.text_chars_this_run / max(self.train_seconds_this_run, 1e-9)

    def _text_chars(self, inputs: torch.Tensor) -> int:
        assert self.token_chars is not None
        return int(self.token_chars[inputs].sum())

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
            self.carry = _detach(state)
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
            if not self._compile_failed(exc):
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

    def run(self) -> TrainResult:
        """Train until max_steps, the time budget or stop(); returns the final figures.

        Raises TrainingDiverged (after keeping the last good checkpoint) when the
        loss or the weights stop being finite. The run directory is let go at the end.
        """
        if self.out_dir is not None and self.is_main:
            # A resumed run (step > 0) keeps its records up to the checkpoint's step.
            # Replacing a run (--force): its metrics.jsonl stays until the first save.
            replacing = self._claim is not None and self._claim.replacing
            self.metrics = MetricsLog(
                self.out_dir, resume_step=self.step or None, pending=replacing
            )
        threads_before = torch.get_num_threads()
        try:
            return self._run()
        finally:
            torch.set_num_threads(threads_before)  # the count is process-wide: give it back
            if self.metrics is not None:
                self.metrics.close()
                self.metrics = None
            self.close()

    def _diverged(self, what: str) -> None:
        """Stop without saving: `last` keeps naming the last checkpoint with finite weights."""
        where = ""
        if self.out_dir is not None:
            kept = (self.out_dir / "last").exists()
            where = (
                f"; the last good checkpoint stays in {self.out_dir}"
                if kept
                else "; no checkpoint was saved"
            )
        raise TrainingDiverged(
            f"training diverged at step {self.step}: {what} (lower the learning rate){where}"
        )

    def _run(self) -> TrainResult:
        cfg = self.config
        self.tokens_this_run = 0
        self.text_chars_this_run = 0
        self.train_seconds_this_run = 0.0
        self._paused_s = 0.0
        self.budget = TimeBudget(
            self.deadline, self.started, len(self.val_ids) - 1, final_eval=cfg.final_eval
        )
        if self.is_main and self.budget.worth_probing(time.monotonic()):
            self.budget.measured_probe(probe_final_eval_rate(self.model, self.val_ids, self.device))
        step_seconds = self.budget.next_step_s(cfg.batch_size * cfg.seq_len)
        stopped_by = "max_steps"
        self.model.train()
        if self.config.threads is not None and self.device.type == "cpu":
            torch.set_num_threads(self.config.threads)
        self.threads.start()
        for note in self.setup_notes:
            self._emit(StatusEvent("starting", note))
        self._emit(StatusEvent("training", self._training_label()))
        last_loss = float("nan")
        sync_every = 1 if self.device.type == "cpu" else 10
        pending: list[torch.Tensor] = []
        pending_norms: list[torch.Tensor] = []
        first_step = self.step

        while True:
            # max_steps first: every rank reaches it at the same step without talking.
            if cfg.max_steps is not None and self.step >= cfg.max_steps:
                stopped_by = "max_steps"
                break
            reason = "stop" if self._stop.is_set() else None
            if reason is None:  # patience, or the default stop past the best
                reason = self.eval_stop_reason()  # rank 0 alone evaluates; DDP agrees below
            if reason is None and self._pause.is_set():
                self._emit(StatusEvent("paused"))
                paused_at = time.monotonic()
                while self._pause.is_set() and not self._stop.is_set():
                    time.sleep(0.02)
                if self.deadline is not None:  # paused time does not eat the budget
                    self._paused_s += time.monotonic() - paused_at
                    self.deadline += time.monotonic() - paused_at
                    self.budget.deadline = self.deadline
                if self._stop.is_set():
                    reason = "stop"
                else:
                    self._emit(StatusEvent("training", self._training_label()))
            now = time.monotonic()
            evaluating_next = (self.step + 1) % cfg.eval_interval == 0
            if reason is None and self.budget.should_stop(now, step_seconds, evaluating_next):
                reason = "time_budget"
            if self.world_size > 1:
                # Ranks must stop at the same step and use the same learning rate: every
                # `sync_every` steps rank 0's decision and clock go to all (one all-reduce).
                synced = (self.step - first_step) % sync_every == 0
                reason = self._agree_with_ranks(reason, now) if synced else None
            if reason is not None:
                stopped_by = reason
                break

            step_start = time.perf_counter()
            lr = self.lr_at(self.progress(now))
            with self.state_lock:
                condition = None
                if self.train_segments is not None:
                    inputs, targets, condition = self.batches.next_labelled()
                    reset = True
                else:
                    inputs, targets, reset = self.batches.next()
                loss = self.train_step(inputs, targets, reset, lr, condition)
                if self.token_chars is not None:  # per character of text, as val is
                    loss = loss * targets.numel() / self.token_chars[targets].sum()
                pending.append(loss)
                pending_norms.append(self.grad_norm)
                grad_norm = None
                self.step += 1
                self.tokens += inputs.numel() * self.world_size
            self.tokens_this_run += inputs.numel() * self.world_size
            # chars/s counts characters of text: a word token spells several.
            text_chars = inputs.numel() if self.token_chars is None else self._text_chars(inputs)
            self.text_chars_this_run += text_chars * self.world_size
            if len(pending) >= sync_every or self.step % cfg.eval_interval == 0:
                mean_loss = torch.stack(pending).mean()
                if self.world_size > 1:  # the loss of the global batch
                    from engine.training.ddp import mean_over_ranks

                    mean_loss = mean_over_ranks(mean_loss)
                last_loss = float(mean_loss)
                grad_norm = float(torch.stack(pending_norms).float().mean())
                pending.clear()
                pending_norms.clear()
                self._loss_ema = (
                    last_loss if self._loss_ema is None else 0.9 * self._loss_ema + 0.1 * last_loss
                )
                if not math.isfinite(last_loss) or last_loss > DIVERGED_LOSS:
                    self._diverged(f"the loss reached {last_loss:.4g}")
            elapsed_step = time.perf_counter() - step_start
            step_seconds = self.budget.next_step_s(inputs.numel())
            self.budget.measured_step(inputs.numel(), elapsed_step)
            # A probe of another thread count may be slower: only while the budget could absorb
            # one step twice as long as this one on top of its reserve.
            room = self.deadline is None or (
                self.deadline - time.monotonic() - self.budget.reserve_s()
                > 2 * max(step_seconds, elapsed_step)
            )
            if self.threads.after_step(elapsed_step, may_probe=room) is not None:
                self._emit(StatusEvent("training", self._training_label()))
            self.train_seconds += elapsed_step
            self.train_seconds_this_run += elapsed_step
            now = time.monotonic()
            progress = self.progress(now)
            eta = None
            if progress > 0:
                eta = (now - self.started) * (1 - progress) / progress
            self._emit(
                StepEvent(
                    step=self.step,
                    max_steps=cfg.max_steps,
                    loss=last_loss,
                    lr=lr,
                    chars_per_s=self._chars_per_s(),
                    elapsed_s=now - self.started,
                    eta_s=eta,
                    progress=progress,
                    grad_norm=grad_norm,
                )
            )
            if self.step % cfg.eval_interval == 0:
                bad = first_non_finite(self.model)
                if bad is not None:  # every rank holds the same weights: all stop here
                    self._diverged(f"the weights ({bad}) are no longer finite")
                t0 = time.perf_counter()
                self._periodic_eval(last_loss)
                self.budget.measured_periodic(time.perf_counter() - t0)
                if self.out_dir is not None and self.is_main:
                    t0 = time.perf_counter()
                    self.save(tags=self._tags_for_latest())
                    self.budget.measured_save(time.perf_counter() - t0)

        return self._finish(stopped_by)

    def _thread_governor(self) -> ThreadGovernor:
        """On one CPU process with no pinned count (`threads`), a governor that adapts it."""
        adaptive = (
            self.config.threads is None and self.device.type == "cpu" and self.world_size == 1
        )
        return ThreadGovernor(self.config.threads or torch.get_num_threads(), enabled=adaptive)

    def _training_label(self) -> str:
        """The precision, and the thread count when the governor moved it off the default."""
        label = self.precision.label
        governor = self.threads
        if governor.choices:
            last = governor.choices[-1]
            label += f"; {governor.current} of {governor.max_threads} threads ({last.reason})"
        return label

    def _agree_with_ranks(self, reason: str | None, now: float) -> str | None:
        from engine.training.ddp import agree

        reason, self._shared_time_progress = agree(
            reason, self._time_progress(now), is_main=self.is_main, device=self.device
        )
        return reason

    def _tags_for_latest(self) -> tuple[str, ...]:
        latest = self.history[-1] if self.history else None
        if latest and latest.get("best"):
            return ("last", "best")
        return ("last",)

    # ----- checkpoints --------------------------------------------------------------

    def schedule_progress(self) -> float:
        """How far the schedule has come by time (0..1), saved so a resume continues it."""
        by_time = self._shared_time_progress
        if by_time is None:
            by_time = self._time_progress(time.monotonic())
        return min(1.0, max(by_time, 0.0))

    def save(self, tags: tuple[str, ...] = ("last",), extra: dict | None = None) -> Path:
        """Write a checkpoint of everything needed to continue exactly from here.

        Any thread may call this while training runs: it waits for the step in flight.
        """
        assert self.out_dir is not None
        with self.state_lock:
            replacing = self._claim is not None and self._claim.replacing
            if replacing:  # the first save of a --force run takes over both tags
                tags = tuple(dict.fromkeys((*tags, "best")))
            path = save_run(self, tags, extra)
            if replacing:
                self._claim.replacing = False
                if self.metrics is not None:
                    self.metrics.commit()
            step = self.step
        self._emit(CheckpointEvent(step, str(path), list(tags)))
        return path
