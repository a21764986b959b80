"""What decoding is asked to do, and what it hands back: the leaf of engine.decoding.

The generator, beam search and the UI's knobs all read these types; keeping
them here lets every decoding module import one way only (as Hugging Face keeps
its generation config apart from its decoding loops).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Protocol

import numpy as np
import torch

from engine.data.corpus import Vocab
from engine.decoding.processors import LogitsPipeline
from engine.errors import ConfigError
from engine.models import CharLM

STRATEGIES = ("greedy", "sample", "beam")
MAX_LENGTH = 1_000_000


@dataclass
class SamplingParams:
    """Everything that decides what gets generated; see engine/decoding/processors.py for exact meanings."""

    strategy: str = "sample"  # "greedy" | "sample" | "beam"
    temperature: float = 1.0
    top_k: int | None = None
    top_p: float | None = None
    min_p: float | None = None
    repetition_penalty: float = 1.0
    repetition_window: int = 64
    beam_width: int = 5
    length_penalty: float = 1.0
    length: int = 200
    seed: int | None = None
    stop: tuple[str, ...] = ()

    def validate(self) -> None:
        """Raise ConfigError (one line) for any setting out of range."""
        if self.strategy not in STRATEGIES:
            raise ConfigError(
                f"unknown strategy '{self.strategy}': choose one of {', '.join(STRATEGIES)}"
            )
        _finite("temperature", self.temperature)
        if self.top_k is not None and (not _is_int(self.top_k) or self.top_k < 0):
            raise ConfigError(f"top-k must be a whole number >= 0 (0 is off), got {self.top_k}")
        if self.top_p is not None and not (0.0 < _finite("top-p", self.top_p) <= 1.0):
            raise ConfigError(f"top-p must be in (0, 1], got {self.top_p}")
        if self.min_p is not None and not (0.0 <= _finite("min-p", self.min_p) <= 1.0):
            raise ConfigError(f"min-p must be in [0, 1], got {self.min_p}")
        if _finite("repetition penalty", self.repetition_penalty) <= 0:
            raise ConfigError(
                f"repetition penalty must be > 0 (1 is off), got {self.repetition_penalty}"
            )
        if not _is_int(self.repetition_window) or self.repetition_window < 0:
            raise ConfigError(
                f"repetition window must be a whole number >= 0, got {self.repetition_window}"
            )
        if not _is_int(self.beam_width) or self.beam_width < 1:
            raise ConfigError(f"beam width must be a whole number >= 1, got {self.beam_width}")
        _finite("length penalty", self.length_penalty)
        if not _is_int(self.length) or not 0 <= self.length <= MAX_LENGTH:
            raise ConfigError(
                f"length must be a whole number in [0, {MAX_LENGTH}], got {self.length}"
            )
        if self.seed is not None and (not _is_int(self.seed) or not 0 <= self.seed < 2**63):
            raise ConfigError(f"seed must be a whole number in [0, 2**63), got {self.seed}")
        if isinstance(self.stop, str) or any(not isinstance(s, str) or not s for s in self.stop):
            raise ConfigError("stop strings must be a list of non-empty strings")

    def pipeline(self) -> LogitsPipeline:
        """The logits processors these settings describe (greedy is temperature 0)."""
        return LogitsPipeline(
            temperature=0.0 if self.strategy == "greedy" else self.temperature,
            top_k=self.top_k,
            top_p=self.top_p,
            min_p=self.min_p,
            repetition_penalty=self.repetition_penalty,
            repetition_window=self.repetition_window,
        )

    def as_dict(self) -> dict:
        values = asdict(self)
        values["stop"] = list(self.stop)
        return values


def _is_int(value: object) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def _finite(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.number)):
        raise ConfigError(f"{name} must be a number, got {value!r}")
    if not math.isfinite(float(value)):
        raise ConfigError(f"{name} must be a finite number, got {value}")
    return float(value)


@dataclass
class TokenInfo:
    """One generated character, with what the UI shows about the choice."""

    char: str
    prob: float  # probability of the chosen char under the processed (sampling) distribution
    model_prob: float  # probability under the raw model distribution (T=1, no truncation)
    top: list[tuple[str, float]]  # up to 5 most likely next chars under the model, (char, prob)


@dataclass
class BeamResult:
    text: str  # generated continuation (without the prompt)
    logprob: float  # total log-probability (natural log) under the model
    score: float  # length-normalised score used for ranking: logprob / len**length_penalty


class DecodingSource(Protocol):
    """What beam search needs of a generator: the model, its vocabulary and id helpers."""

    model: CharLM
    vocab: Vocab
    device: torch.device
    unigram: torch.Tensor

    def decode(self, ids: Sequence[int] | np.ndarray) -> str: ...

    def encode_stops(self, stops: Sequence[str]) -> list[torch.Tensor]: ...

    def history(self, rows: list[np.ndarray], columns: int) -> torch.Tensor: ...
