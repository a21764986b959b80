"""How a run trains: the hyperparameters and their validation (bad input is one line, not a crash)."""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass, fields

from engine.errors import ConfigError

BATCHING = ("random", "stateful")


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
    # Line-per-item corpus: training windows start at item boundaries (newlines).
    items: bool = False

    def validate(self) -> None:
        for f in fields(self):  # types first: `--set lr=abc` is bad input, not a crash
            value = getattr(self, f.name)
            number = isinstance(value, numbers.Real) and not isinstance(value, bool)
            integer = number and isinstance(value, numbers.Integral)
            if f.name in ("max_steps", "time_budget", "patience"):
                ok = value is None or (number if f.name == "time_budget" else integer)
            elif isinstance(f.default, bool):
                ok = isinstance(value, bool)
            elif isinstance(f.default, int):
                ok = integer
            elif isinstance(f.default, float):
                ok = number
            else:
                ok = isinstance(value, str)
            if not ok:
                raise ConfigError(f"{f.name} has a value of the wrong type: {value!r}")
        positive = ("batch_size", "seq_len", "eval_interval", "eval_chars")
        for name in positive:
            if int(getattr(self, name)) < 1:
                raise ConfigError(f"{name.replace('_', '-')} must be at least 1")
        if self.lr <= 0 or not math.isfinite(self.lr):
            raise ConfigError("learning rate must be a positive number")
        if self.max_steps is not None and self.max_steps < 0:
            raise ConfigError("--max-steps must not be negative")
        if self.time_budget is not None and not self.time_budget > 0:
            raise ConfigError("--time-budget must be a positive number of seconds")
        if self.patience is not None and self.patience < 1:
            raise ConfigError(
                "--patience must be at least 1 (evaluations without a new best before stopping)"
            )
        if self.items and self.batching != "random":
            raise ConfigError("--items trains on windows that start at items: use random batching")
        if self.batching not in BATCHING:
            raise ConfigError(f"batching must be one of {', '.join(BATCHING)}")
        if not 0.0 < self.val_fraction < 1.0:
            raise ConfigError("validation fraction must be between 0 and 1")

    @classmethod
    def from_dict(cls, data: dict) -> TrainConfig:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})
