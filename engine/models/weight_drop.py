"""DropConnect on a recurrent cell's hidden-to-hidden weights (AWD-LSTM's "weight drop").

Output dropout hides a unit at every position independently; it cannot stop the
recurrence itself from memorising a small corpus read dozens of times, which is
where the `cpu` preset's single-layer LSTM overfits (tinyshakespeare read ~35
times in 600 s). Dropping entries of the hidden-to-hidden matrices once per
training step, the same mask for every position and row, regularises the
recurrence while the fused kernel still runs: the cost is one mask over the
weights a step (a 2048x512 matrix: ~1M draws against the ~8M of output dropout).

The recurrence is called through torch's functional cell ops (`torch.lstm`,
`torch.gru`, `torch.rnn_tanh`, `torch.rnn_relu`: the calls nn.LSTM & co. make
themselves) with the dropped weights as arguments, rather than by swapping the
module's parameters for the call: the engine copies the training model from
another thread to generate while it trains (Trainer.snapshot), and a swapped-in
mask must never be what that copy sees. Eval mode never drops, so generation,
evaluation and checkpoints are unchanged.
"""

from __future__ import annotations

import torch
from torch import nn

from engine.models.base import State
from engine.models.cheap_dropout import cheap_dropout

_CELLS = {"GRU": torch.gru, "RNN_TANH": torch.rnn_tanh, "RNN_RELU": torch.rnn_relu}


def dropped_weights(rnn: nn.RNNBase, p: float) -> list[torch.Tensor]:
    """The cell's flat weights with each hidden-to-hidden matrix dropped at rate `p`."""
    return [
        cheap_dropout(weight, p, True) if name.startswith("weight_hh") else weight
        for name, weight in zip(rnn._flat_weights_names, rnn._flat_weights, strict=True)
    ]


def run_with_weight_drop(
    rnn: nn.RNNBase, x: torch.Tensor, state: State, p: float
) -> tuple[torch.Tensor, State]:
    """`rnn(x, state)` in training mode, with its recurrent weights dropped at rate `p`.

    Batch-first input, one direction: the shapes the recurrent models build.
    """
    weights = dropped_weights(rnn, p)
    layers, rows = rnn.num_layers, x.shape[0]
    if state is None:
        zeros = x.new_zeros(layers, rows, rnn.hidden_size)
        state = (zeros, zeros.clone()) if rnn.mode == "LSTM" else zeros
    args = (weights, rnn.bias, layers, float(rnn.dropout), True, rnn.bidirectional, True)
    if rnn.mode == "LSTM":
        out, h, c = torch.lstm(x, state, *args)
        return out, (h, c)
    out, h = _CELLS[rnn.mode](x, state, *args)
    return out, h
