"""Scoring a blend of models on held-out text, and fitting its mixture weights (EM).

Each member scores the text the way `evaluate_split` scores one model (its own
context regime: recurrent streams, or a Transformer's half-window slides), as
log-probabilities over its vocabulary; the blend combines them position by
position with BlendedModel.combine. So a member's figure here equals its
single-model `eval`, and the blend's is comparable with both. Conditional
members score with no label. The (chars x vocab) log-probabilities of every
member are held in memory: fine for a held-out split, not for gigabytes.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from engine.data.corpus import Vocab
from engine.decoding.blend import BlendedModel, fit_mixture_weights
from engine.errors import CorpusError
from engine.runs.checkpoint import Checkpoint
from engine.training.evaluate import split_log_probs


@dataclass
class BlendEval:
    loss: float
    chars: int
    member_losses: list[float]
    weights: list[float]
    fitted_weights: list[float] | None = None
    fit_losses: list[float] | None = None

    def as_dict(self) -> dict:
        return {
            "loss": self.loss,
            "bpc": self.loss / math.log(2),
            "perplexity": math.exp(min(self.loss, 700.0)),
            "chars": self.chars,
            "member_losses": self.member_losses,
            "weights": self.weights,
            "fitted_weights": self.fitted_weights,
            "fit_losses": self.fit_losses,
        }


@dataclass
class ScoredMembers:
    """Each member's log-probabilities on one text, over the merged vocabulary."""

    checkpoints: list[Checkpoint]
    vocab: Vocab
    targets: torch.Tensor  # (N,) merged ids of the characters predicted
    target_log_probs: torch.Tensor  # (members, N)
    full: list[torch.Tensor] | None  # (N, V) per member; kept only for a product

    def blend(
        self, weights: Sequence[float] | None, blend: str, *, fit_steps: int = 0
    ) -> BlendEval:
        """The blend's loss with these weights (fitted first by EM when `fit_steps`)."""
        model = _blended(self.checkpoints, weights, blend)
        fitted = fit_losses = None
        if fit_steps:
            fitted, fit_losses = fit_mixture_weights(
                self.target_log_probs, model.weights, fit_steps
            )
            model = _blended(self.checkpoints, fitted, blend)
        if blend == "product":
            if self.full is None:
                raise ValueError("score the members with keep_full=True for a product")
            combined = model.combine(self.full)
            loss = float(-combined.gather(1, self.targets[:, None]).mean())
        else:
            lp = self.target_log_probs
            loss = float(-model.combine([row[:, None] for row in lp])[:, 0].mean())
        member_losses = [float(-row.mean()) for row in self.target_log_probs]
        chars = int(self.targets.numel())
        return BlendEval(loss, chars, member_losses, model.weights, fitted, fit_losses)


def _blended(
    checkpoints: Sequence[Checkpoint], weights: Sequence[float] | None, blend: str
) -> BlendedModel:
    return BlendedModel(
        [c.model for c in checkpoints],
        [c.vocab for c in checkpoints],
        weights,
        blend,
        [c.unigram for c in checkpoints],
    )


def score_members(
    checkpoints: Sequence[Checkpoint],
    text_ids: np.ndarray,
    text_vocab: Vocab,
    device: torch.device,
    *,
    keep_full: bool = False,
) -> ScoredMembers:
    """Every member scores `text_ids` (over `text_vocab`) once; blends are computed from this."""
    model = _blended(checkpoints, None, "mixture")
    unknown = sorted(set(text_vocab.chars) - set(model.vocab.chars))
    if unknown:
        raise CorpusError(
            f"the corpus has {len(unknown)} characters no model of the blend saw: "
            f"{''.join(unknown)[:20]!r}"
        )
    merged = np.array([model.vocab.index[c] for c in text_vocab.chars], dtype=np.int64)
    ids = merged[np.asarray(text_ids)]
    targets = torch.as_tensor(ids[1:], device=device)
    full, target_lp = [], []
    for i, checkpoint in enumerate(checkpoints):
        member_ids = getattr(model, f"to_member_{i}").cpu().numpy()[ids]
        condition = 0 if checkpoint.model.num_labels else None
        log_probs = split_log_probs(checkpoint.model, member_ids, device, condition)
        spread = model.member_log_probs(i, log_probs)
        target_lp.append(spread.gather(1, targets[:, None]).squeeze(1))
        if keep_full:  # a product renormalises over every character
            full.append(spread)
    return ScoredMembers(
        list(checkpoints), model.vocab, targets, torch.stack(target_lp), full if keep_full else None
    )


def evaluate_blend(
    checkpoints: Sequence[Checkpoint],
    text_ids: np.ndarray,
    text_vocab: Vocab,
    weights: Sequence[float] | None,
    blend: str,
    device: torch.device,
    *,
    fit_steps: int = 0,
) -> BlendEval:
    """The blend's loss on `text_ids` (over `text_vocab`); with `fit_steps`, the mixture
    weights are first fitted on the same text by that many EM steps."""
    scored = score_members(checkpoints, text_ids, text_vocab, device, keep_full=blend == "product")
    return scored.blend(weights, blend, fit_steps=fit_steps)
