"""The commands and events that cross the worker queue.

The TUI and the engine share nothing but these: small dataclasses of numbers,
strings, lists and dicts, never tensors, so they pickle cheaply across a process
boundary and can be read by code that never imports torch. Commands that start
something long (a corpus load, a generation, a comparison) carry a request id
`req`, chosen by the sender, that every event about it repeats, so the UI can
drop events of a request it has since replaced.

This module imports nothing heavy: the UI process imports it at start-up.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

# The trainer's own events cross the queue unchanged (they are plain already).
from engine.training.events import (
    CheckpointEvent,
    EvalEvent,
    EvalProgressEvent,
    StatusEvent,
    StepEvent,
)

_request_ids = itertools.count(1)


def new_request_id() -> int:
    """A fresh id for a command whose events the sender wants to recognise."""
    return next(_request_ids)


# ----- commands: UI -> engine -------------------------------------------------------


@dataclass
class LoadCorpus:
    """Load a sample name, file or directory; it becomes the corpus to train on."""

    spec: str
    encoding: str = "utf-8"
    req: int = 0


@dataclass
class Train:
    """Train a model on the loaded corpus.

    `model` and `train` override the preset's settings (TrainConfig field names;
    None for `max_steps` / `time_budget` means no limit of that kind). With
    `resume`, training continues the run of the checkpoint loaded last.
    """

    model_type: str = "lstm"
    preset: str = "tiny"
    model: dict = field(default_factory=dict)
    train: dict = field(default_factory=dict)
    resume: bool = False
    sample_every_s: float = 4.0
    sample_chars: int = 160
    # Also write TensorBoard event files there (a relative path: inside the run directory).
    tensorboard_dir: str | None = None


@dataclass
class Pause:
    pass


@dataclass
class Resume:
    pass


@dataclass
class Stop:
    pass


@dataclass
class Evaluate:
    """Score the current model on the whole held-out split of the loaded corpus."""

    req: int = 0


@dataclass
class Generate:
    """Stream a generation from the current model (the latest weights while training).

    `params` are engine.decoding.params.SamplingParams fields; missing ones come from
    the last SetSampling. `prefix` is text to continue from without generating it
    again (a branch: a generation up to a fork, then the character chosen there):
    it follows the prompt, and the new characters follow it.
    """

    prompt: str = ""
    params: dict = field(default_factory=dict)
    req: int = 0
    prefix: str = ""
    # A conditional model's label (or "a=0.7,b=0.3"), and the guidance scale (None: 1).
    condition: str | None = None
    guidance: float | None = None


@dataclass
class SetSampling:
    """Validate and remember sampling parameters for later generations."""

    params: dict = field(default_factory=dict)


@dataclass
class LoadCheckpoint:
    """Load a checkpoint directory or a run directory (its best checkpoint)."""

    path: str
    req: int = 0


@dataclass
class SaveCheckpoint:
    """Save the current model: into its run directory, or into `path` if given."""

    path: str | None = None
    req: int = 0


@dataclass
class Compare:
    """The same prompt under several strategies, with statistics of each output."""

    prompt: str = ""
    length: int = 200
    num_samples: int = 3
    seed: int = 0
    req: int = 0
    by_label: bool = False  # rows are "none" and each label instead of strategies
    condition: str | None = None
    guidance: float | None = None
    # Cut the prompt from the held-out split (at a place the seed picks) and score chrF
    # against the text that follows it; without it a typed prompt found there gets chrF too.
    held_out: bool = False


@dataclass
class AddToBlend:
    """Load a run or checkpoint as one more member of the generation blend (equal weights)."""

    path: str
    req: int = 0


@dataclass
class ClearBlend:
    """Generate from the current model alone again."""


@dataclass
class Cancel:
    """Cancel a generation or comparison (`req` 0: every one running)."""

    req: int = 0


@dataclass
class LRFind:
    """A learning-rate range test on a fresh model of the loaded corpus; writes nothing."""

    model_type: str = "lstm"
    preset: str = "tiny"
    model: dict = field(default_factory=dict)
    train: dict = field(default_factory=dict)
    min_lr: float = 1e-5
    max_lr: float = 1.0
    steps: int = 100
    req: int = 0


# engine.inspect.MAX_TEXT_CHARS, here too so the UI knows it without importing torch
# (tests/engine/test_inspect_worker.py checks the two agree).
INSPECT_MAX_CHARS = 20_000


@dataclass
class InspectText:
    """Compute every unit's activation over a text with the current model (a snapshot while
    training); the engine keeps them for InspectUnit and FindUnits.

    `source` is "text" (use `text`) or "excerpt" (`chars` characters of the loaded
    corpus's held-out split). Characters the model lacks are left out and reported;
    more than engine.inspect.MAX_TEXT_CHARS characters is an error. `unit` names the
    unit to send back first (default: the most varying one).
    """

    source: str = "text"
    text: str = ""
    chars: int = 2000
    unit: str = ""
    req: int = 0


@dataclass
class InspectUnit:
    """The values of one unit (`L1.cell.37`) over the text of the last InspectText."""

    unit: str
    req: int = 0


@dataclass
class FindUnits:
    """Units of the last InspectText that best track "inside a match of `pattern`"."""

    pattern: str
    top: int = 10
    req: int = 0


@dataclass
class InspectAttention:
    """A Transformer's attention at `position` of the last InspectText, every layer and head."""

    position: int
    req: int = 0


@dataclass
class InspectSaliency:
    """Gradient x input saliency of the characters before `position` (any model type)."""

    position: int
    window: int = 256
    req: int = 0


@dataclass
class InspectEmbeddings:
    """The character map of the current model: PCA of the embeddings and cosine neighbours."""

    neighbours: int = 5
    req: int = 0


@dataclass
class ListRuns:
    """List the training runs saved under the user's data directory."""


@dataclass
class Shutdown:
    """Stop everything and exit the engine."""


# ----- events: engine -> UI ---------------------------------------------------------


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
    """A generation began; `params` are the full parameters used (with the seed)."""

    prompt: str
    params: dict
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
class SamplingSet:
    params: dict


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


COMMANDS = (
    LoadCorpus,
    Train,
    Pause,
    Resume,
    Stop,
    Evaluate,
    Generate,
    SetSampling,
    LoadCheckpoint,
    SaveCheckpoint,
    Compare,
    Cancel,
    LRFind,
    InspectText,
    InspectUnit,
    FindUnits,
    InspectAttention,
    InspectSaliency,
    InspectEmbeddings,
    ListRuns,
    Shutdown,
    AddToBlend,
    ClearBlend,
)

__all__ = [
    "COMMANDS",
    "AddToBlend",
    "AttentionWeights",
    "BlendChanged",
    "Cancel",
    "CharMapReady",
    "CheckpointEvent",
    "CheckpointLoaded",
    "CheckpointSaved",
    "ClearBlend",
    "Compare",
    "CompareResult",
    "CorpusLoaded",
    "CorpusLoading",
    "DownloadProgress",
    "EngineDied",
    "EngineReady",
    "ErrorEvent",
    "EvalEvent",
    "EvalProgressEvent",
    "Evaluate",
    "EvaluateProgress",
    "Evaluated",
    "FindUnits",
    "Generate",
    "GenerationChunk",
    "GenerationDone",
    "GenerationStarted",
    "InspectAttention",
    "InspectEmbeddings",
    "InspectReady",
    "InspectSaliency",
    "InspectText",
    "InspectUnit",
    "LRFind",
    "LRFindDone",
    "LRFindPoint",
    "ListRuns",
    "LoadCheckpoint",
    "LoadCorpus",
    "Pause",
    "Resume",
    "RunsListed",
    "SaliencyScores",
    "SamplingSet",
    "SaveCheckpoint",
    "SetSampling",
    "Shutdown",
    "StatusEvent",
    "StepEvent",
    "Stop",
    "Train",
    "TrainFinished",
    "TrainSample",
    "TrainStarted",
    "UnitValues",
    "UnitsFound",
    "new_request_id",
]
