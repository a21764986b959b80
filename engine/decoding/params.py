"""What decoding is asked to do, and what it hands back: the leaf of engine.decoding.

The generator, beam search and the UI's knobs all read these types; keeping
them here lets every decoding module import one way only (as Hugging Face keeps
its generation config apart from its decoding loops). The module imports no torch
(the types it names are for type checkers only), so the UI process and the CLI's
`--help` read STRATEGIES and the bounds below from here without loading torch.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Protocol

from engine.errors import ConfigError
from engine.validation import check_choice, check_int, check_number

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np
    import torch

    from engine.data.corpus import Vocab
    from engine.decoding.processors import LogitsPipeline
    from engine.models import CharLM

STRATEGIES = ("greedy", "sample", "beam")
SEED_LIMIT = 2**63 - 1
MAX_LENGTH = 1_000_000
MIN_TEMPERATURE = 1e-4
MAX_TEMPERATURE = 100.0
MAX_PENALTY = 100.0
MAX_BEAM_WIDTH = 256
MAX_LENGTH_PENALTY = 10.0


@dataclass(frozen=True)
class SamplingParams:
    """Everything that decides what gets generated; see engine/decoding/processors.py for exact meanings.

    An instance is valid by construction: `__post_init__` checks every field once
    (a one-line ConfigError otherwise), and the class is frozen, so the decoding
    entry points trust any SamplingParams they are given; `dataclasses.replace`
    checks the new copy again. The TUI builds one where its knobs turn into
    parameters (charlm_tui/widgets/knobs.py `sampling_params`) and carries that
    object through its branches and the worker's Generate command to the generator:
    pickling it across the process boundary restores the fields without checking
    them again.
    """

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

    def __post_init__(self) -> None:
        """Raise ConfigError (one line) for any setting out of range.

        The bounds are stated in `generate --help`: a temperature below
        MIN_TEMPERATURE overflows the logits (NaN probabilities), a length penalty
        beyond +-MAX_LENGTH_PENALTY divides by zero or infinity, and a beam of a
        million needs gigabytes before it produces one character.
        """
        check_choice("strategy", self.strategy, STRATEGIES)
        temperature = check_number("temperature", self.temperature, None, MAX_TEMPERATURE)
        if 0.0 < temperature < MIN_TEMPERATURE:
            raise ConfigError(
                f"temperature must be <= 0 (greedy) or in [{MIN_TEMPERATURE:g}, {MAX_TEMPERATURE:g}], "
                f"got {self.temperature}"
            )
        if self.top_k is not None:
            check_int("top-k (0 is off)", self.top_k, 0)
        if self.top_p is not None:
            check_number("top-p", self.top_p, 0.0, 1.0, low_open=True)
        if self.min_p is not None:
            check_number("min-p", self.min_p, 0.0, 1.0)
        check_number(
            "repetition penalty (1 is off)",
            self.repetition_penalty,
            0.0,
            MAX_PENALTY,
            low_open=True,
        )
        check_int("repetition window", self.repetition_window, 0, MAX_LENGTH)
        check_int("beam width", self.beam_width, 1, MAX_BEAM_WIDTH)
        check_number("length penalty", self.length_penalty, -MAX_LENGTH_PENALTY, MAX_LENGTH_PENALTY)
        check_int("length", self.length, 0, MAX_LENGTH)
        if self.seed is not None:
            check_int("seed", self.seed, 0, SEED_LIMIT)
        stop = self.stop
        if (
            isinstance(stop, str)
            or not isinstance(stop, Sequence)
            or any(not isinstance(s, str) or not s for s in stop)
        ):
            raise ConfigError("stop strings must be a list of non-empty strings")
        object.__setattr__(self, "stop", tuple(stop))  # a list (from JSON) is kept as a tuple

    def pipeline(self) -> LogitsPipeline:
        """The logits processors these settings describe (greedy is temperature 0). A filter
        set to its "off" value (top-k 0, top-p 1, min-p 0) is left out, so a plain stream
        still takes the NumPy loop (engine/decoding/single_stream.py)."""
        from engine.decoding.processors import LogitsPipeline  # torch: the engine side only

        return LogitsPipeline(
            temperature=0.0 if self.strategy == "greedy" else self.temperature,
            top_k=self.top_k or None,
            top_p=None if self.top_p is not None and self.top_p >= 1.0 else self.top_p,
            min_p=self.min_p or None,
            repetition_penalty=self.repetition_penalty,
            repetition_window=self.repetition_window,
        )

    def as_dict(self) -> dict:
        """The fields as JSON values (`stop` a list): `SamplingParams(**d)` rebuilds it."""
        values = asdict(self)
        values["stop"] = list(self.stop)
        return values


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
