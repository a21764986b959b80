"""Embedding -> stacked recurrent cell -> linear head, shared by LSTM, GRU and RNN.

The cells are PyTorch's fused nn.LSTM / nn.GRU / nn.RNN, which are much faster
than a Python loop over time steps on both CPU and GPU.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn

from engine.models.base import CharLM, ModelConfig, State


@dataclass
class RecurrentConfig(ModelConfig):
    embed_dim: int = 64
    hidden_size: int = 256
    num_layers: int = 2
    dropout: float = 0.2

    model_type: ClassVar[str] = ""


class RecurrentLM(CharLM):
    cell_class: ClassVar[type[nn.RNNBase]]

    def __init__(self, config: RecurrentConfig) -> None:
        super().__init__()
        self.config = config
        self.embedding = nn.Embedding(config.vocab_size, config.embed_dim)
        self.rnn = self.cell_class(
            config.embed_dim,
            config.hidden_size,
            num_layers=config.num_layers,
            batch_first=True,
            dropout=config.dropout if config.num_layers > 1 else 0.0,
        )
        self.drop = nn.Dropout(config.dropout)
        self.head = nn.Linear(config.hidden_size, config.vocab_size)

    def forward(self, tokens: torch.Tensor, state: State = None) -> tuple[torch.Tensor, State]:
        x = self.drop(self.embedding(tokens))
        out, new_state = self.rnn(x, state)
        return self.head(self.drop(out)), new_state

    def select_state(self, state: State, index: torch.Tensor) -> State:
        # Hidden states are (layers, batch, hidden): the batch is dimension 1.
        if isinstance(state, tuple):
            return tuple(s.index_select(1, index) for s in state)
        return state.index_select(1, index)

    def state_positions(self, state: State) -> int:
        return 0  # a recurrent state has no length limit to track
