"""Events: what the engine tells the UI (engine/worker/protocol.py says how they travel).

Plain dataclasses only (numbers, strings, lists, dicts; GenerationStarted echoes
the Generate's engine.decoding.params.SamplingParams, plain too), so they pickle
cheaply across the process boundary and the UI reads them without importing torch.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    from engine.decoding.params import SamplingParams


@dataclass
class EngineReady:
    """The engine has imported torch and can take work."""

    device: str
    torch_version: str
    threads: int
    pid: int


@dataclass
class EngineDied:
    """Sent by the client, not the engine: the engine process ended unexpectedly."""

    exitcode: int | None
    reason: str


@dataclass
class CorpusLoading:
    spec: str
    req: int = 0


@dataclass
class DownloadProgress:
    name: str
    done: int
    total: int | None
    req: int = 0


@dataclass
class CorpusLoaded:
    """A corpus is loaded; `stats` is engine.data.corpus.CorpusStats.as_dict()."""

    spec: str
    name: str
    stats: dict
    req: int = 0


@dataclass
class TrainStarted:
    run_dir: str
    corpus: str
    model_type: str
    preset: str
    model: dict
    train: dict
    parameters: int
    device: str
    step: int = 0
    history: list = field(default_factory=list)
    # metrics.jsonl records so far (a resumed run's whole past), thinned for the UI.
    metrics: list = field(default_factory=list)
    labels: list = field(default_factory=list)  # a conditional run's label names
    # What the training request resolved to, and why (engine/training/request.py), and
    # what the set-up fitted (width, regularisation): one line each.
    reasons: list = field(default_factory=list)


@dataclass
class TrainSample:
    """A short text the model writes now, so the user can watch it learn."""

    step: int
    text: str


@dataclass
class TrainFinished:
    """Training ended; `result` is engine.training.events.TrainResult.as_dict()."""

    result: dict


@dataclass
class GenerationStarted:
    """A generation began; `params` are the parameters used: the Generate's own object,
    or a copy with the seed the engine drew when it had none (the UI keeps it with the
    branch, so a branch records the seed that made it)."""

    prompt: str
    params: SamplingParams
    dropped: str = ""  # prompt characters outside the vocabulary, left out
    req: int = 0
    prefix: str = ""  # the Generate's prefix: the new characters follow it


@dataclass
class GenerationChunk:
    """Characters generated since the last chunk (about one per frame).

    For each character: the probability it had under the sampling distribution,
    the probability the model itself gave it, and the top alternatives as
    (char, model probability) pairs.
    """

    text: str
    probs: list
    model_probs: list
    tops: list
    req: int = 0


@dataclass
class GenerationDone:
    text: str
    chars: int
    seconds: float
    chars_per_s: float
    cancelled: bool = False
    beams: list = field(default_factory=list)  # [{"text", "logprob", "score"}] for beam search
    req: int = 0


@dataclass
class CheckpointLoaded:
    path: str
    run_dir: str
    model_type: str
    model: dict
    train: dict
    step: int
    history: list
    corpus: str
    vocab_size: int
    parameters: int
    vocab_matches_corpus: bool
    req: int = 0
    metrics: list = field(default_factory=list)  # the run's metrics.jsonl, thinned
    labels: list = field(default_factory=list)  # a conditional model's label names


@dataclass
class CheckpointSaved:
    path: str
    req: int = 0


@dataclass
class EvaluateProgress:
    """How far an Evaluate has got (characters scored of the split's)."""

    done: int
    total: int
    req: int = 0


@dataclass
class Evaluated:
    loss: float
    bpc: float
    perplexity: float
    chars: int
    req: int = 0


@dataclass
class CompareResult:
    """The rows finished so far (engine.decoding.compare.CompareRow.as_dict()); `done` on the last."""

    prompt: str
    rows: list
    done: bool = False
    req: int = 0
    reference: str | None = None  # the true continuation the rows' chrF is against
    reference_offset: int = -1  # where the prompt is in the held-out split
    note: str = ""  # why there is no chrF column, when one was asked for
    items: bool = False  # a line-per-item model: each row's samples are whole items


@dataclass
class LRFindPoint:
    """One point of a learning-rate range test (throttled: the latest wins)."""

    step: int
    lr: float
    loss: float
    smoothed: float
    req: int = 0


@dataclass
class LRFindDone:
    """The range test ended; `result` is engine.training.lr_find.LRFindResult.as_dict()."""

    result: dict
    req: int = 0


@dataclass
class BlendChanged:
    """The generation blend: its extra members' names (empty: the current model alone)."""

    members: list
    description: str
    req: int = 0


@dataclass
class RunsListed:
    """Saved runs, newest first: {"run_dir", "name", "step", "val_loss", "model_type", ...}."""

    runs: list


@dataclass
class InspectReady:
    """Activations are computed over `text`; `groups` are [name, size] pairs (`L0.cell`, 256)
    in unit order, and the first unit's values come along."""

    text: str
    model_type: str
    groups: list
    unit: str
    values: list
    dropped: str = ""
    seconds: float = 0.0
    req: int = 0


@dataclass
class UnitValues:
    """One unit's activation at every character of the inspected text."""

    unit: str
    values: list
    req: int = 0


@dataclass
class UnitsFound:
    """`top` is [[unit, r], ...], strongest |r| first; `covered` characters lie in a match."""

    pattern: str
    top: list
    covered: int
    chars: int
    req: int = 0


@dataclass
class AttentionWeights:
    """weights[layer][head][j]: attention from `position` to `start + j` (each row sums to 1)."""

    position: int
    start: int
    weights: list
    req: int = 0


@dataclass
class SaliencyScores:
    """scores[j]: share of `start + j` in predicting the character at `position` (sum 1)."""

    position: int
    start: int
    scores: list
    logprob: float
    req: int = 0


@dataclass
class CharMapReady:
    """chars, their 2-D PCA points, variance shares, and neighbours [[char, cosine], ...]."""

    chars: list
    points: list
    explained: list
    neighbours: list
    req: int = 0


@dataclass
class ErrorEvent:
    """Something went wrong: `message` is one line for the user, never a traceback.

    `user` is False for an engine bug (its traceback went to the engine log).
    """

    message: str
    command: str = ""
    req: int = 0
    user: bool = True
