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
from engine.training.checkpoint import Checkpoint
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
    vocabs = [c.vocab for c in checkpoints]
    model = BlendedModel(
        [c.model for c in checkpoints], vocabs, weights, blend, [c.unigram for c in checkpoints]
    )
    unknown = sorted(set(text_vocab.chars) - set(model.vocab.chars))
    if unknown:
        raise CorpusError(
            f"the corpus has {len(unknown)} characters no model of the blend saw: "
            f"{''.join(unknown)[:20]!r}"
        )
    merged = np.array([model.vocab.index[c] for c in text_vocab.chars], dtype=np.int64)
    ids = merged[np.asarray(text_ids)]
    targets = torch.as_tensor(ids[1:], device=device)
    member_full, member_target = [], []
    for i, checkpoint in enumerate(checkpoints):
        member_ids = getattr(model, f"to_member_{i}").cpu().numpy()[ids]
        condition = 0 if checkpoint.model.num_labels else None
        log_probs = split_log_probs(checkpoint.model, member_ids, device, condition)
        spread = model.member_log_probs(i, log_probs)
        member_target.append(spread.gather(1, targets[:, None]).squeeze(1))
        if blend == "product":  # a product renormalises over every character
            member_full.append(spread)
    target_lp = torch.stack(member_target)
    member_losses = [float(-lp.mean()) for lp in target_lp]
    fitted = fit_losses = None
    if fit_steps:
        fitted, fit_losses = fit_mixture_weights(target_lp, model.weights, fit_steps)
        model = BlendedModel(
            [c.model for c in checkpoints], vocabs, fitted, blend, [c.unigram for c in checkpoints]
        )
    if blend == "product":
        combined = model.combine(member_full)
        loss = float(-combined.gather(1, targets[:, None]).mean())
    else:
        loss = float(-model.combine([lp[:, None] for lp in target_lp])[:, 0].mean())
    return BlendEval(loss, int(targets.numel()), member_losses, model.weights, fitted, fit_losses)
