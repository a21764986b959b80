"""Commands: what the UI asks the engine to do (engine/worker/protocol.py says how they travel).

Each is a small dataclass of plain values (Generate's settings are one
engine.decoding.params.SamplingParams, itself a frozen dataclass of plain values
whose module imports no torch); one that starts something long carries the
sender's request id `req`, which every event about it repeats.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

from engine.decoding.params import SamplingParams

_request_ids = itertools.count(1)


def new_request_id() -> int:
    """A fresh id for a command whose events the sender wants to recognise."""
    return next(_request_ids)


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

    `params` are all the settings it uses, checked when the sender built them (an
    invalid SamplingParams cannot exist), so the engine uses them as they come; with
    no seed the engine draws one and reports it in GenerationStarted. `prefix` is
    text to continue from without generating it again (a branch: a generation up to
    a fork, then the character chosen there): it follows the prompt, and the new
    characters follow it.
    """

    prompt: str = ""
    params: SamplingParams = field(default_factory=SamplingParams)
    req: int = 0
    prefix: str = ""
    # A conditional model's label (or "a=0.7,b=0.3"), and the guidance scale (None: 1).
    condition: str | None = None
    guidance: float | None = None


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
