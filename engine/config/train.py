"""How a run trains: the hyperparameters and their validation (bad input is one line, not a crash)."""

from __future__ import annotations

from dataclasses import dataclass, fields

from engine.errors import ConfigError
from engine.validation import check_bool, check_choice, check_int, check_number, check_str

BATCHING = ("random", "stateful")
TOKENS = ("char", "word")
# The settings the data fit raises (engine/config/sizing.py).
REGULARISATION = ("dropout", "weight_decay", "weight_drop")
# Upper bounds (stated in `train --help`): far above any useful run, far below what
# makes an allocation fail after minutes.
MAX_BATCH_DIM = 65_536
MAX_BATCH_CHARS = 2**24
MAX_STEPS = 10**12
MAX_TIME_BUDGET_S = 10**7
MAX_EVAL_CHARS = 10**10


def _check_device_and_precision(device: str, precision: str) -> None:
    """Names the engine knows (`--set device=...` or a tampered state.json is bad input,
    never silently replaced): engine/device.py's lists, and `cuda:N`."""
    from engine.device import DEVICES, PRECISIONS

    index = device.removeprefix("cuda:")
    if device not in DEVICES and not (device.startswith("cuda:") and index.isdigit()):
        raise ConfigError(f"unknown device '{device}': choose one of {', '.join(DEVICES)}")
    if precision not in PRECISIONS:
        raise ConfigError(f"unknown precision '{precision}': choose one of {', '.join(PRECISIONS)}")


@dataclass
class TrainConfig:
    batch_size: int = 32
    seq_len: int = 128
    lr: float = 2e-3
    min_lr_ratio: float = 0.1
    warmup_steps: int = 50
    weight_decay: float = 0.0
    beta2: float = 0.99
    grad_clip: float = 1.0
    max_steps: int | None = None
    time_budget: float | None = None
    eval_interval: int = 250
    eval_chars: int = 16384
    batching: str = "random"
    val_fraction: float = 0.1
    seed: int = 1337
    device: str = "auto"
    precision: str = "auto"
    compile: bool = False
    final_eval: bool = True
    # Early stopping: stop after this many evaluations without a new best val loss.
    patience: int | None = None
    # Without a patience, a time-budgeted run stops once its val loss has clearly risen
    # past its best for as long as it took to reach it (engine/training/best_model.py).
    stop_past_best: bool = True
    # Line-per-item corpus: training windows start at item boundaries (newlines).
    items: bool = False
    # A conditional run (engine/models/conditioning.py) on a labelled corpus.
    conditional: bool = False
    label_dropout: float = 0.1
    # Labels drawn with p ~ size^label_balance (engine/data/label_balance.py): 1 natural,
    # 0 uniform.
    label_balance: float = 0.5
    # Intra-op CPU threads: None lets engine/machine/threads.py choose (and re-choose
    # when other processes compete for the cores); a number pins it.
    threads: int | None = None
    # What a token is: a character, or a word (engine/data/words.py: the top `word_vocab`
    # words of the training split, every character as fallback).
    tokens: str = "char"
    word_vocab: int = 2000
    # A budgeted recurrent run may narrow its width to what the budget can train on this
    # machine (engine/config/sizing.py); the CLI asks for it for the default `cpu` preset.
    fit_width: bool = False
    # A new run's dropout, weight decay and weight drop may rise with the epochs it will
    # read of its corpus, and a fitted width be capped (engine/config/sizing.py).
    fit_data: bool = False
    # Which of those the user set (`--set dropout=0` to watch a model overfit): the fit
    # leaves them as asked and fits the rest.
    asked_regularisation: tuple[str, ...] = ()

    def validate(self) -> None:
        """Types first, then ranges: `--set lr=abc` or a tampered state.json is bad input, not a crash.

        The upper bounds keep one batch and one evaluation within what a machine can
        hold (`--set batch_size=1000000000` is refused here, not by the allocator).
        """
        for name in ("batch_size", "seq_len"):
            check_int(name, getattr(self, name), 1, MAX_BATCH_DIM)
        if self.batch_size * self.seq_len > MAX_BATCH_CHARS:
            raise ConfigError(
                f"batch_size x seq_len must be at most {MAX_BATCH_CHARS:,} characters, "
                f"got {self.batch_size * self.seq_len:,}"
            )
        check_number("lr", self.lr, 0.0, low_open=True)
        check_number("min_lr_ratio", self.min_lr_ratio, 0.0, 1.0)
        check_int("warmup_steps", self.warmup_steps, 0, MAX_STEPS)
        check_number("weight_decay", self.weight_decay, 0.0)
        check_number("beta2", self.beta2, 0.0, 1.0, high_open=True)
        check_number("grad_clip", self.grad_clip, 0.0)
        if self.max_steps is not None:
            check_int("max_steps", self.max_steps, 0, MAX_STEPS)
        if self.time_budget is not None:
            check_number("time_budget", self.time_budget, 0.0, MAX_TIME_BUDGET_S, low_open=True)
        check_int("eval_interval", self.eval_interval, 1, MAX_STEPS)
        check_int("eval_chars", self.eval_chars, 1, MAX_EVAL_CHARS)
        check_choice("batching", self.batching, BATCHING)
        check_number("val_fraction", self.val_fraction, 0.0, 1.0, low_open=True, high_open=True)
        check_int("seed", self.seed, 0, 2**63 - 1)
        check_str("device", self.device, 64)
        check_str("precision", self.precision, 64)
        _check_device_and_precision(self.device, self.precision)
        check_bool("compile", self.compile)
        check_bool("final_eval", self.final_eval)
        if self.patience is not None:
            check_int("patience (evaluations without a new best before stopping)", self.patience, 1)
        check_bool("stop_past_best", self.stop_past_best)
        check_bool("items", self.items)
        check_bool("fit_width", self.fit_width)
        check_bool("fit_data", self.fit_data)
        if not isinstance(self.asked_regularisation, (list, tuple)):
            raise ConfigError(
                "asked_regularisation must be a list of settings, "
                f"got {type(self.asked_regularisation).__name__}"
            )
        for name in self.asked_regularisation:
            check_choice("asked_regularisation", name, REGULARISATION)
        self.asked_regularisation = tuple(self.asked_regularisation)
        if self.items and self.batching != "random":
            raise ConfigError("--items trains on windows that start at items: use random batching")
        if self.threads is not None:
            check_int("threads", self.threads, 1, 4096)
        check_bool("conditional", self.conditional)
        check_number("label_dropout", self.label_dropout, 0.0, 1.0, high_open=True)
        check_number("label_balance", self.label_balance, 0.0, 1.0)
        check_choice("tokens", self.tokens, TOKENS)
        check_int("word_vocab (words in a word vocabulary)", self.word_vocab, 1, 1_000_000)
        if self.tokens == "word" and self.conditional:
            raise ConfigError("--tokens word and --conditional do not combine (yet): pick one")
        if self.conditional and self.items:
            raise ConfigError("--items and --conditional do not combine (yet): pick one")
        if self.conditional and self.batching != "random":
            raise ConfigError(
                "conditional training needs random batching (windows stay in a label)"
            )

    @classmethod
    def from_dict(cls, data: dict) -> TrainConfig:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})
