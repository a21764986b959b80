"""From checkpoints and decoding options to the one model a Generator decodes from.

One checkpoint with no condition is used as it is. A condition (and guidance)
wraps each conditional model in a ConditionedLM; several checkpoints become a
BlendedModel over their merged vocabulary. The CLI and the TUI's worker both
build their decoder here, so the rules (and their one-line errors) are one set:

- `condition` on checkpoints none of which has labels, `guidance` without a
  `condition`, a label a conditional member does not know, weights that do not
  match the checkpoints, are negative, all zero or NaN: ConfigError.
- In a blend, the condition applies to every conditional member; members
  trained without labels decode unconditionally.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from engine.data.corpus import Vocab
from engine.decoding.blend import BLENDS, BlendedModel, check_weights, merged_unigram
from engine.decoding.condition_spec import describe_condition, parse_condition
from engine.decoding.conditioned import ConditionedLM, condition_mix
from engine.errors import ConfigError
from engine.models import CharLM
from engine.runs.checkpoint import Checkpoint, load_checkpoint
from engine.wording import setting


@dataclass
class Source:
    """A model to decode from that is not (only) a checkpoint on disk: the TUI's model in
    training. A Checkpoint has the same fields, so either can be a member."""

    model: CharLM
    vocab: Vocab
    unigram: np.ndarray
    labels: tuple[str, ...] = ()
    name: str = "current"
    path: str = ""


@dataclass
class Decoder:
    """What a Generator needs, plus what a header shows about it."""

    model: CharLM
    vocab: Vocab
    unigram: np.ndarray
    checkpoints: list[Checkpoint | Source]
    condition: dict[str, float] | None = None
    guidance: float = 1.0
    weights: list[float] = field(default_factory=list)
    blend: str = "mixture"

    @property
    def labels(self) -> tuple[str, ...]:
        """The labels a condition may name: those of the conditional checkpoints, in order."""
        seen: list[str] = []
        for checkpoint in self.checkpoints:
            seen.extend(label for label in checkpoint.labels if label not in seen)
        return tuple(seen)

    def describe(self) -> str:
        """`run-a` / `mixture of run-a 70% + run-b 30%`, plus the condition and guidance."""
        names = [checkpoint_name(c) for c in self.checkpoints]
        text = names[0]
        if len(names) > 1:
            text = f"{self.blend} of " + " + ".join(
                f"{n} {w:.0%}" for n, w in zip(names, self.weights, strict=True)
            )
        if self.condition:
            text += f" | condition {describe_condition(self.condition)}"
            if self.guidance != 1.0:
                text += f" (guidance {self.guidance:g})"
        return text


def checkpoint_name(checkpoint: Checkpoint | Source) -> str:
    """The run directory's name (a checkpoint dir sits inside its run)."""
    if isinstance(checkpoint, Source):
        return checkpoint.name
    path = Path(checkpoint.path)
    return path.parent.name if path.name.startswith("step-") else path.name


def require_char_models(checkpoints: Sequence[object], what: str) -> None:
    """Refuse word-token models where only character models work (blends mix characters)."""
    for checkpoint in checkpoints:
        vocab = getattr(checkpoint, "vocab", None)
        if vocab is not None and vocab.kind != "char":
            raise ConfigError(
                f"{what} needs character models: {getattr(checkpoint, 'path', 'a model')} "
                f"uses {vocab.kind} tokens"
            )


def load_checkpoints(paths: Sequence[str | Path], device: torch.device) -> list[Checkpoint]:
    if not paths:
        raise ConfigError("give at least one --checkpoint")
    return [load_checkpoint(path, device) for path in paths]


def check_guidance(condition: str | None, guidance: float | None) -> float:
    if guidance is None:
        return 1.0
    if condition is None:
        raise ConfigError(
            f"{setting('guidance')} needs {setting('condition')}: guidance pushes towards one"
        )
    if not math.isfinite(guidance) or guidance < 0:
        raise ConfigError(f"{setting('guidance')} must be a finite number >= 0, got {guidance}")
    return float(guidance)


def build_decoder(
    checkpoints: Sequence[Checkpoint | Source],
    *,
    condition: str | None = None,
    guidance: float | None = None,
    weights: Sequence[float] | None = None,
    blend: str = "mixture",
) -> Decoder:
    """The model to decode from; checks every option before anything is generated."""
    checkpoints = list(checkpoints)
    if blend not in BLENDS:
        raise ConfigError(f"--blend must be one of {', '.join(BLENDS)}, got '{blend}'")
    scale = check_guidance(condition, guidance)
    normalised = check_weights(weights, len(checkpoints))
    mixes: dict[str, float] | None = None
    members: list[CharLM] = []
    if condition is not None and not any(c.labels for c in checkpoints):
        raise ConfigError(
            f"{setting('condition')} needs a model trained with {setting('conditional')} "
            "(this checkpoint was trained without labels)"
        )
    for checkpoint in checkpoints:
        model = checkpoint.model
        if condition is not None and checkpoint.labels:
            mixes = parse_condition(condition, checkpoint.labels)
            mix = condition_mix(mixes, checkpoint.labels)
            model = ConditionedLM(model, mix, scale)
        members.append(model)
    if len(checkpoints) == 1:
        only = checkpoints[0]
        return Decoder(
            members[0], only.vocab, only.unigram, checkpoints, mixes, scale, normalised, blend
        )
    require_char_models(checkpoints, "a blend")
    vocabs = [c.vocab for c in checkpoints]
    unigrams = [c.unigram for c in checkpoints]
    model = BlendedModel(members, vocabs, normalised, blend, unigrams)
    unigram = merged_unigram(model.vocab, vocabs, unigrams, normalised)
    return Decoder(model, model.vocab, unigram, checkpoints, mixes, scale, normalised, blend)
