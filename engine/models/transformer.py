"""A small causal Transformer in the spirit of nanoGPT, with a key/value cache.

The state is the cache: keys and values of every layer for the positions seen so
far, so each generated character costs one position of attention, not a re-run
of the whole window. A cache can hold at most `block_size` positions (learned
position embeddings); the generator slides the window when it is full.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn
from torch.nn import functional as F

from engine.models.base import CharLM, ModelConfig
from engine.models.cheap_dropout import CheapDropout
from engine.models.conditioning import (
    condition_logit_bias,
    condition_vector,
    make_label_embedding,
)


@dataclass
class TransformerConfig(ModelConfig):
    n_layer: int = 4
    n_head: int = 4
    n_embd: int = 128
    block_size: int = 128
    dropout: float = 0.1
    bias: bool = False

    model_type: ClassVar[str] = "transformer"


@dataclass
class KVCache:
    keys: list[torch.Tensor]
    values: list[torch.Tensor]

    @property
    def length(self) -> int:
        return int(self.keys[0].shape[2]) if self.keys else 0


class SelfAttention(nn.Module):
    def __init__(self, config: TransformerConfig) -> None:
        super().__init__()
        self.n_head = config.n_head
        self.qkv = nn.Linear(config.n_embd, 3 * config.n_embd, bias=config.bias)
        self.proj = nn.Linear(config.n_embd, config.n_embd, bias=config.bias)
        self.dropout = config.dropout
        self.resid_drop = CheapDropout(config.dropout)

    def forward(
        self, x: torch.Tensor, past: tuple[torch.Tensor, torch.Tensor] | None
    ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        batch, steps, width = x.shape
        q, k, v = self.qkv(x).split(width, dim=2)
        shape = (batch, steps, self.n_head, width // self.n_head)
        q, k, v = (t.view(shape).transpose(1, 2) for t in (q, k, v))
        past_len = 0
        if past is not None:
            past_len = past[0].shape[2]
            k = torch.cat([past[0], k], dim=2)
            v = torch.cat([past[1], v], dim=2)
        dropout = self.dropout if self.training else 0.0
        if past_len == 0:
            y = F.scaled_dot_product_attention(q, k, v, dropout_p=dropout, is_causal=True)
        elif steps == 1:
            y = F.scaled_dot_product_attention(q, k, v, dropout_p=dropout)
        else:
            mask = torch.ones(steps, past_len + steps, dtype=torch.bool, device=x.device)
            mask = mask.tril(diagonal=past_len)
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=dropout)
        y = y.transpose(1, 2).contiguous().view(batch, steps, width)
        return self.resid_drop(self.proj(y)), (k, v)


class MLP(nn.Module):
    def __init__(self, config: TransformerConfig) -> None:
        super().__init__()
        self.fc = nn.Linear(config.n_embd, 4 * config.n_embd, bias=config.bias)
        self.proj = nn.Linear(4 * config.n_embd, config.n_embd, bias=config.bias)
        self.drop = CheapDropout(config.dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.drop(self.proj(F.gelu(self.fc(x))))


class Block(nn.Module):
    def __init__(self, config: TransformerConfig) -> None:
        super().__init__()
        self.ln1 = nn.LayerNorm(config.n_embd, bias=config.bias)
        self.attn = SelfAttention(config)
        self.ln2 = nn.LayerNorm(config.n_embd, bias=config.bias)
        self.mlp = MLP(config)

    def forward(self, x, past):
        attended, present = self.attn(self.ln1(x), past)
        x = x + attended
        return x + self.mlp(self.ln2(x)), present


class TransformerLM(CharLM):
    def __init__(self, config: TransformerConfig) -> None:
        super().__init__()
        if config.n_embd % config.n_head:
            raise ValueError("n_embd must be a multiple of n_head")
        self.config = config
        self.wte = nn.Embedding(config.vocab_size, config.n_embd)
        self.wpe = nn.Embedding(config.block_size, config.n_embd)
        self.drop = CheapDropout(config.dropout)
        self.blocks = nn.ModuleList(Block(config) for _ in range(config.n_layer))
        self.ln_f = nn.LayerNorm(config.n_embd, bias=config.bias)
        self.head = nn.Linear(config.n_embd, config.vocab_size, bias=False)
        self.head.weight = self.wte.weight  # weight tying, as in GPT-2
        self.apply(self._init_weights)
        for name, param in self.named_parameters():
            if name.endswith("proj.weight"):
                nn.init.normal_(param, mean=0.0, std=0.02 / math.sqrt(2 * config.n_layer))
        # After the init above, which would overwrite its zero start.
        self.label = make_label_embedding(
            config.num_labels, config.n_embd, config.vocab_size if config.label_bias else 0
        )

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        if isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)

    @property
    def max_context(self) -> int:
        return self.config.block_size

    def forward(
        self,
        tokens: torch.Tensor,
        state: KVCache | None = None,
        condition: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, KVCache]:
        past_len = state.length if state is not None else 0
        steps = tokens.shape[1]
        if past_len + steps > self.config.block_size:
            raise ValueError(
                f"{past_len + steps} positions exceed the context of {self.config.block_size}"
            )
        positions = torch.arange(past_len, past_len + steps, device=tokens.device)
        x = self.drop(self.wte(tokens) + self.wpe(positions))
        label = condition_vector(self.label, condition, tokens.shape[0])
        if label is not None:
            x = x + label  # after dropout: the label is never dropped out
        keys, values = [], []
        for i, block in enumerate(self.blocks):
            past = (state.keys[i], state.values[i]) if state is not None and past_len else None
            x, (k, v) = block(x, past)
            keys.append(k)
            values.append(v)
        logits = self.head(self.ln_f(x))
        bias = condition_logit_bias(self.label, condition, tokens.shape[0])
        return (logits if bias is None else logits + bias), KVCache(keys, values)

    def select_state(self, state: KVCache, index: torch.Tensor) -> KVCache:
        return KVCache(
            [k.index_select(0, index) for k in state.keys],
            [v.index_select(0, index) for v in state.values],
        )

    def state_positions(self, state: KVCache | None) -> int:
        return state.length if state is not None else 0
