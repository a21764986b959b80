"""Attention weights of a Transformer: which earlier characters each head reads.

For a position p the model sees the window of at most `block_size` characters
ending at p (exactly what it sees when it predicts the character after p). The
result is (layers, heads, window) weights over that window, each row a softmax
over the causal window, so it sums to 1. The weights are recomputed from the
queries and keys that forward hooks catch on each attention layer, the same
scaled dot product the model's fused kernel computes (the tests check that
weights @ values equals the layer's output).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from engine.errors import UserError
from engine.inspect.activations import eval_mode
from engine.inspect.hooks import this_thread_only
from engine.models import CharLM
from engine.models.transformer import TransformerLM


@dataclass
class AttentionMap:
    """Weights of every head of every layer for one position.

    `weights[layer, head, j]` is how much position `start + j` is attended to;
    the window is [start, position], so each row has `position - start + 1`
    entries and sums to 1.
    """

    position: int
    start: int
    weights: np.ndarray

    def as_dict(self) -> dict:
        layers, heads, window = self.weights.shape
        return {
            "position": self.position,
            "start": self.start,
            "layers": layers,
            "heads": heads,
            "window": window,
            "weights": self.weights.tolist(),
        }


def require_transformer(model: CharLM) -> TransformerLM:
    if not isinstance(model, TransformerLM):
        kind = getattr(model.config, "model_type", type(model).__name__)
        raise UserError(
            f"attention needs a Transformer; this model is a {kind} (try saliency instead)"
        )
    return model


def attention_matrices(
    model: TransformerLM, tokens: torch.Tensor
) -> tuple[torch.Tensor, list[torch.Tensor], list[torch.Tensor]]:
    """(layers, heads, T, T) causal attention weights of one window, plus values and outputs.

    Also returns, per layer, the values (heads, T, head_dim) and the attention
    output before the projection (T, width), so callers can check weights @ values.
    """
    inputs: list[torch.Tensor] = []
    outputs: list[torch.Tensor] = []

    def catch_input(_module: nn.Module, args: tuple[torch.Tensor, ...]) -> None:
        inputs.append(args[0])

    def catch_output(_module: nn.Module, args: tuple[torch.Tensor, ...]) -> None:
        outputs.append(args[0])

    handles = []
    for block in model.blocks:
        handles.append(block.attn.register_forward_pre_hook(this_thread_only(catch_input)))
        handles.append(block.attn.proj.register_forward_pre_hook(this_thread_only(catch_output)))
    try:
        with eval_mode(model), torch.no_grad():
            model(tokens.unsqueeze(0))
            weights, values = [], []
            for block, x in zip(model.blocks, inputs, strict=True):
                steps, width = x.shape[1], x.shape[2]
                heads = block.attn.n_head
                q, k, v = block.attn.qkv(x[0]).split(width, dim=1)
                q, k, v = (t.view(steps, heads, width // heads).transpose(0, 1) for t in (q, k, v))
                scores = (q @ k.transpose(1, 2)) / math.sqrt(width // heads)
                causal = torch.ones(steps, steps, dtype=torch.bool, device=x.device).tril()
                scores = scores.masked_fill(~causal, float("-inf"))
                weights.append(torch.softmax(scores.float(), dim=-1))
                values.append(v)
    finally:
        for handle in handles:
            handle.remove()
    return torch.stack(weights), values, [o[0] for o in outputs]


def attention_at(model: CharLM, ids: np.ndarray | torch.Tensor, position: int) -> AttentionMap:
    """The attention of every head at `position`, over the window the model sees there."""
    transformer = require_transformer(model)
    tokens = torch.as_tensor(np.asarray(ids), dtype=torch.long)
    if not 0 <= position < tokens.shape[0]:
        raise UserError(f"position {position} is outside the text (0-{tokens.shape[0] - 1})")
    start = max(0, position - transformer.config.block_size + 1)
    device = next(transformer.parameters()).device
    weights, _, _ = attention_matrices(transformer, tokens[start : position + 1].to(device))
    return AttentionMap(position, start, weights[:, :, -1, :].cpu().numpy())
