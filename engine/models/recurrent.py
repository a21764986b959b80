"""Embedding -> stacked recurrent cell -> linear head, shared by LSTM, GRU and RNN.

The cells are PyTorch's fused nn.LSTM / nn.GRU / nn.RNN, which are much faster
than a Python loop over time steps on both CPU and GPU.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn
from torch.nn import functional as F

from engine.models.base import CharLM, ModelConfig, State
from engine.models.conditioning import condition_vector, make_label_embedding


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
        self.label = make_label_embedding(config.num_labels, config.embed_dim)
        self.rnn = self.cell_class(
            config.embed_dim,
            config.hidden_size,
            num_layers=config.num_layers,
            batch_first=True,
            dropout=config.dropout if config.num_layers > 1 else 0.0,
        )
        self.drop = nn.Dropout(config.dropout)
        self.head = nn.Linear(config.hidden_size, config.vocab_size)

    def forward(
        self, tokens: torch.Tensor, state: State = None, condition: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, State]:
        label = condition_vector(self.label, condition, tokens.shape[0])
        if tokens.shape[1] == 1 and not self.training and not torch.is_grad_enabled():
            return self._decode_step(tokens[:, 0], state, label)
        x = self.embedding(tokens)
        if label is not None:
            x = x + label
        x = self.drop(x)
        out, new_state = self.rnn(x, state)
        return self.head(self.drop(out)), new_state

    def _decode_step(
        self, token: torch.Tensor, state: State, label: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, State]:
        """One position, written out with the cell's own weights.

        Generation feeds one character at a time, and for that a fused nn.LSTM call
        is mostly fixed overhead (about 245 us for a 512-unit step on one CPU core,
        700 us through oneDNN) around one matrix-vector product. The same maths as
        a handful of plain ops costs about half; it is only used in eval mode (no
        dropout) and agrees with the fused kernel to float rounding.
        """
        batch = token.shape[0]
        layers, hidden = self.config.num_layers, self.config.hidden_size
        weights = self.rnn._flat_weights  # [w_ih, w_hh, b_ih, b_hh] per layer
        if state is None:
            zeros = weights[1].new_zeros(layers, batch, hidden)
            state = (zeros, zeros) if isinstance(self.rnn, nn.LSTM) else zeros
        hs, cs = [], []
        x = token  # layer 0 reads its input projection from the table, by token
        for layer in range(layers):
            w_ih, w_hh, b_ih, b_hh = weights[4 * layer : 4 * layer + 4]
            # Layer 0's input projection depends on the token alone: look it up.
            projected = self._input_table()[token] if layer == 0 else None
            if projected is not None and label is not None:  # the label's share of layer 0
                projected = projected + F.linear(label[:, 0], weights[0])
            if isinstance(self.rnn, nn.LSTM):
                h, c = state[0][layer], state[1][layer]
                if projected is None:
                    projected = F.linear(x, w_ih, b_ih).add_(b_hh)
                gates = torch.addmm(projected, h, w_hh.t())
                # Few, whole-tensor ops: per-op overhead is most of a one-position step.
                squashed = torch.sigmoid(gates)
                i, f, _, o = squashed.chunk(4, dim=1)
                g = torch.tanh(gates[:, 2 * hidden : 3 * hidden])
                c = torch.addcmul(f * c, i, g)
                x = o * torch.tanh(c)
                cs.append(c)
            elif isinstance(self.rnn, nn.GRU):
                h = state[layer]
                if projected is None:
                    projected = F.linear(x, w_ih, b_ih)
                i_r, i_z, i_n = projected.chunk(3, dim=1)
                h_r, h_z, h_n = F.linear(h, w_hh, b_hh).chunk(3, dim=1)
                r = torch.sigmoid(i_r + h_r)
                z = torch.sigmoid(i_z + h_z)
                n = torch.tanh(i_n + r * h_n)
                x = n + z * (h - n)
            else:
                h = state[layer]
                if projected is None:
                    projected = F.linear(x, w_ih, b_ih).add_(b_hh)
                pre = torch.addmm(projected, h, w_hh.t())
                x = torch.tanh(pre) if self.rnn.nonlinearity == "tanh" else torch.relu(pre)
            hs.append(x)

        def stacked(parts: list[torch.Tensor]) -> torch.Tensor:
            return parts[0].unsqueeze(0) if len(parts) == 1 else torch.stack(parts)

        new_h = stacked(hs)
        new_state = (new_h, stacked(cs)) if cs else new_h
        return self.head(x).unsqueeze(1), new_state

    def _input_table(self) -> torch.Tensor:
        """(vocab, gates): layer 0's input projection of every character, biases folded in.

        Rebuilt whenever the embedding or those weights change (their version
        counters move on every optimizer step), so it is never stale.
        """
        w_ih, _, b_ih, b_hh = self.rnn._flat_weights[:4]
        sources = (self.embedding.weight, w_ih, b_ih, b_hh)
        key = tuple((t.data_ptr(), t._version, t.dtype, t.device) for t in sources)
        cached = getattr(self, "_table_cache", None)
        if cached is None or cached[0] != key or torch.is_autocast_enabled():
            with torch.no_grad():
                table = F.linear(self.embedding.weight, w_ih, b_ih)
                if not isinstance(self.rnn, nn.GRU):  # GRU keeps b_hh inside its reset gate
                    table = table + b_hh
            if torch.is_autocast_enabled():
                return table  # under autocast, never cache a reduced-precision copy
            self._table_cache = (key, table)
            return table
        return cached[1]

    def select_state(self, state: State, index: torch.Tensor) -> State:
        # Hidden states are (layers, batch, hidden): the batch is dimension 1.
        if isinstance(state, tuple):
            return tuple(s.index_select(1, index) for s in state)
        return state.index_select(1, index)

    def state_positions(self, state: State) -> int:
        return 0  # a recurrent state has no length limit to track
