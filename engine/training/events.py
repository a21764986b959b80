"""What the trainer reports while it runs: plain dataclasses of numbers and strings.

They cross the worker queue to the TUI unchanged, so they never hold tensors.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field


@dataclass
class StepEvent:
    step: int
    max_steps: int | None
    loss: float
    lr: float
    chars_per_s: float
    elapsed_s: float
    eta_s: float | None
    # 0..1 of this process's way to its end, by steps or by its time budget, whichever is
    # further along (the lr schedule's own progress also counts a resumed run's past).
    progress: float
    # The mean gradient norm (before clipping) over the steps since the last logged one.
    # Set on the steps whose loss was just synchronised ("logged" steps: every step on a
    # CPU, every tenth on an accelerator), None on the others: metrics.jsonl keys on it.
    grad_norm: float | None = None
    kind: str = field(default="step", init=False)


@dataclass
class EvalEvent:
    step: int
    val_loss: float
    val_bpc: float
    val_perplexity: float
    val_chars: int
    train_loss: float | None
    best: bool
    elapsed_s: float | None = None
    # With early stopping: evaluations without a new best left before training stops.
    evals_left: int | None = None
    kind: str = field(default="eval", init=False)


@dataclass
class CheckpointEvent:
    step: int
    path: str
    tags: list[str]
    kind: str = field(default="checkpoint", init=False)


@dataclass
class StatusEvent:
    state: str  # "starting", "training", "paused", "evaluating", "saving", "done", "stopped"
    message: str = ""
    # A sentence about a change in the running run, said once (not the precision label a
    # "training" status otherwise carries, nor a state to show until the next one).
    note: bool = False
    kind: str = field(default="status", init=False)


@dataclass
class EvalProgressEvent:
    """How far the final evaluation is (a few per second): a long one is not a frozen screen."""

    done: int
    total: int
    unit: str = "chars"  # "tokens" for a word-level run (its split is scored token by token)
    kind: str = field(default="eval_progress", init=False)


@dataclass
class TrainResult:
    val_loss: float
    val_bpc: float
    val_perplexity: float
    val_chars: int  # how many held-out chars val_loss scored
    val_split_chars: int  # how many the whole held-out split has (all but its first)
    partial_eval: bool  # val_chars < val_split_chars: the time budget cut the scoring short
    steps: int
    # From the command's start (the budget's start) to the trainer's: interpreter, imports,
    # corpus, model. A budget smaller than this cannot be kept; the rest of it is planned.
    startup_s: float
    elapsed_s: float
    train_s: float
    chars_per_s: float
    checkpoint: str | None
    best_val_loss: float | None  # the best periodic estimate
    # "max_steps", "time_budget", "early_stop" (patience), "overfitting" (the default stop
    # of a budgeted run, engine/training/best_model.py), "stop"
    stopped_by: str
    device: str
    precision: str  # "fp32" or "bf16" (autocast); the final evaluation is always fp32
    precision_reason: str  # why: "1.9x faster here", "no native bf16 on this CPU", ...
    parameters: int
    model: dict
    train: dict
    labels: list[str] = field(default_factory=list)
    # CPU intra-op threads at the end, and each change the thread governor made (why).
    threads: int = 0
    thread_changes: list[str] = field(default_factory=list)
    # A conditional run: the final val loss of each label, with its label.
    label_val_loss: dict[str, float] = field(default_factory=dict)
    # What a token is ("char" or "word"). Every loss above is per character of text
    # either way; a word model's loss per token and token count are given here too.
    tokens: str = "char"
    val_bits_per_char: float | None = None
    val_loss_per_token: float | None = None
    val_tokens: int | None = None
    vocab_size: int | None = None
    # The result is the best model: `val_loss` scores `reported` ("best" when the val
    # curve turned up after the best evaluation, else "last"); `best_step` is that
    # evaluation's step, `last_val_loss` the last weights' held-out loss (their estimate
    # when the best is reported), `best_checkpoint` the `best` tag's checkpoint.
    best_step: int | None = None
    last_val_loss: float | None = None
    reported: str = "last"
    best_checkpoint: str | None = None
    stop_note: str | None = None  # why the run stopped early, one sentence
    # With stopped_by "stop": the signal that stopped the run ("SIGTERM", ...), if one did.
    stop_signal: str | None = None

    def as_dict(self) -> dict:
        return asdict(self)


def event_dict(event: object) -> dict:
    return asdict(event)  # type: ignore[call-overload]
