"""Saliency: how much each earlier character mattered for the character at a position.

Method: gradient x input on the input embeddings (every model type). For a
position p >= 1 the score is log P(text[p] | text[:p]), the log-probability the
model gave the character that is actually there. For each earlier position j
in the window, the raw saliency is the L2 norm over the embedding dimension of
(d score / d e_j) * e_j, where e_j is the embedding of character j.

Shape and sum: `scores` has one entry per character of the window [start, p)
(start = max(0, p - window), and at most the context for a Transformer); it is
`raw / raw.sum()`, non-negative and summing to 1. For a recurrent model the
hidden state before `start` is computed without gradients and carried in, so
the prediction is exactly the one over the whole text; only characters inside
the window get a score.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from engine.errors import UserError
from engine.inspect.activations import eval_mode
from engine.inspect.hooks import this_thread_only
from engine.models import CharLM
from engine.models.recurrent import RecurrentLM
from engine.models.transformer import TransformerLM

DEFAULT_WINDOW = 256


@dataclass
class Saliency:
    """Scores over the window [start, position): raw norms and their normalised shares."""

    position: int
    start: int
    raw: np.ndarray
    scores: np.ndarray
    logprob: float

    def as_dict(self) -> dict:
        return {
            "position": self.position,
            "start": self.start,
            "window": int(self.scores.shape[0]),
            "method": "gradient_x_input_l2",
            "logprob": self.logprob,
            "scores": self.scores.tolist(),
            "raw": self.raw.tolist(),
        }


def embedding_module(model: CharLM) -> nn.Embedding:
    """The input embedding table of any charlm-tui model."""
    if isinstance(model, RecurrentLM):
        return model.embedding
    if isinstance(model, TransformerLM):
        return model.wte
    raise UserError(f"cannot inspect a {type(model).__name__}")


def saliency_at(
    model: CharLM, ids: np.ndarray | torch.Tensor, position: int, window: int = DEFAULT_WINDOW
) -> Saliency:
    """Gradient x input saliency of the characters before `position` for predicting it."""
    tokens = torch.as_tensor(np.asarray(ids), dtype=torch.long)
    if not 1 <= position < tokens.shape[0]:
        raise UserError(
            f"saliency needs a position with characters before it: 1-{tokens.shape[0] - 1}, "
            f"got {position}"
        )
    if window < 1:
        raise UserError(f"the saliency window must be at least 1, got {window}")
    if isinstance(model, TransformerLM):
        window = min(window, model.config.block_size)
    start = max(0, position - window)
    device = next(model.parameters()).device
    tokens = tokens.to(device)
    captured: list[torch.Tensor] = []

    def make_leaf(_module: nn.Module, _args: object, output: torch.Tensor) -> torch.Tensor:
        leaf = output.detach().requires_grad_(True)
        captured.append(leaf)
        return leaf

    with eval_mode(model), torch.backends.cudnn.flags(enabled=False):
        state = None
        if start and isinstance(model, RecurrentLM):
            with torch.no_grad():
                _, state = model(tokens[:start].unsqueeze(0))
        handle = embedding_module(model).register_forward_hook(this_thread_only(make_leaf))
        try:
            with torch.enable_grad():
                logits, _ = model(tokens[start:position].unsqueeze(0), state)
                logprob = F.log_softmax(logits[0, -1].float(), dim=-1)[tokens[position]]
                (grad,) = torch.autograd.grad(logprob, captured[0])
        finally:
            handle.remove()
    raw = (grad[0] * captured[0][0]).float().norm(dim=-1).detach().cpu().numpy()
    total = float(raw.sum())
    scores = raw / total if total > 0 else np.full_like(raw, 1.0 / raw.shape[0])
    return Saliency(position, start, raw, scores, float(logprob.detach()))
