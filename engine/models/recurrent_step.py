"""One position of a recurrent model, from weights laid out once for it (generation's hot path).

Generation feeds one character at a time. For that, a fused nn.LSTM call is
mostly fixed overhead around a few matrix-vector products, and on a CPU those
products are bound by memory bandwidth (a 2x256 LSTM reads 3 MB of weights per
character), so what is left to win is the number of ops around them: at a few
microseconds of dispatch each, they cost as much as the arithmetic. A `StepPlan`
lays the weights out so that a step is as few ops as the maths allows:

- layer 0's input projection depends on the character alone: a (vocab, gates)
  table with both biases folded in, read by index (an LSTM or RNN; a GRU keeps
  b_hh inside its reset gate, so it reads the table without it);
- an LSTM layer above reads its input and its own state in one product,
  [x, h] @ [w_ih | w_hh]^T + (b_ih + b_hh): one pass over the weights instead
  of two products and an add;
- the weights are stored transposed, (in, out) row-major, which a one-row
  product reads fastest, and the state stays (layers, batch, hidden) throughout,
  so no op reshapes anything;
- a GRU or plain RNN layer above layer 0 runs as PyTorch's own cell function
  (the pointwise maths in C++, one Python call).

Every path computes nn.LSTM / nn.GRU / nn.RNN's equations and agrees with the
fused kernel to float rounding. A plan holds copies of weights, so it is only
valid while the weights it was built from are unchanged: `weights_key` says
when to build a new one (engine/models/recurrent.py).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import torch
from torch.nn import functional as F

State = torch.Tensor | tuple[torch.Tensor, torch.Tensor]


def weights_key(tensors: Iterable[torch.Tensor]) -> tuple:
    """Changes whenever any of `tensors` is written in place (an optimizer step, a load)
    or replaced (`.to()`, `.data = ...`): the storage address and version counter of
    each. A plan keeps the storages it was built from alive (`StepPlan.sources`), so
    a new tensor can never reuse one of those addresses while the plan is cached."""
    return tuple((t.data_ptr(), t._version) for t in tensors)


class StepPlan:
    """The weights of one recurrent model, laid out for one-position steps."""

    def __init__(
        self,
        kind: str,
        embedding: torch.Tensor,
        flat_weights: Sequence[torch.Tensor],
        head_weight: torch.Tensor,
        head_bias: torch.Tensor,
        num_layers: int,
        nonlinearity: str = "tanh",
    ) -> None:
        """`kind` is "lstm", "gru" or "rnn"; `flat_weights` is the cell's
        [w_ih, w_hh, b_ih, b_hh] per layer (nn.RNNBase._flat_weights)."""
        self.sources = [t.detach() for t in (embedding, *flat_weights, head_weight, head_bias)]
        self.kind = kind
        self.layers = num_layers
        self.hidden = int(flat_weights[1].shape[1])
        self.relu = nonlinearity == "relu"
        with torch.no_grad():
            weights = [w.detach() for w in flat_weights]
            self.w_ih0 = weights[0]  # a condition label's share of layer 0 is projected per call
            w_ih, _, b_ih, b_hh = weights[:4]
            table = F.linear(embedding.detach(), w_ih, b_ih)
            if kind != "gru":
                table = table + b_hh
            self.table = table
            self.cells = [tuple(weights[4 * i : 4 * i + 4]) for i in range(num_layers)]
            # Transposed copies: a one-row product reads (in, out) row-major weights
            # fastest. Layer 0's recurrent product, and an LSTM's layers above as one
            # product each over [x, h].
            self.w_hh0_t = weights[1].t().contiguous()
            self.b_hh0 = weights[3][None]
            self.stacked: list[tuple[torch.Tensor, torch.Tensor]] = []
            if kind == "lstm":
                for i in range(1, num_layers):
                    w_ih, w_hh, b_ih, b_hh = self.cells[i]
                    both_t = torch.cat([w_ih, w_hh], dim=1).t().contiguous()
                    self.stacked.append((both_t, (b_ih + b_hh)[None]))
            self.head_weight_t = head_weight.detach().t().contiguous()
            self.head_bias = head_bias.detach()[None]

    def step(
        self, token: torch.Tensor, state: State | None, label: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, State]:
        """Logits (B, vocab) after feeding `token` (B,) to `state`, and the new state.

        `label` (B, embed) is a condition vector added to every row's input.
        """
        projected = self.table.index_select(0, token)
        if label is not None:
            projected = projected + F.linear(label, self.w_ih0)
        if self.kind == "lstm":
            return self._lstm(projected, state)
        return self._cells(projected, state)

    # ----- LSTM --------------------------------------------------------------------

    def _lstm(self, projected: torch.Tensor, state: State | None) -> tuple[torch.Tensor, State]:
        if state is None:
            zeros = projected.new_zeros(self.layers, projected.shape[0], self.hidden)
            state = (zeros, zeros)
        hs, cs = state[0].unbind(0), state[1].unbind(0)
        x, c = _lstm_cell(torch.addmm(projected, hs[0], self.w_hh0_t), cs[0], self.hidden)
        new_h, new_c = [x], [c]
        for layer in range(1, self.layers):
            both_t, bias = self.stacked[layer - 1]
            gates = torch.addmm(bias, torch.cat([x, hs[layer]], dim=1), both_t)
            x, c = _lstm_cell(gates, cs[layer], self.hidden)
            new_h.append(x)
            new_c.append(c)
        logits = torch.addmm(self.head_bias, x, self.head_weight_t)
        return logits, (torch.stack(new_h), torch.stack(new_c))

    # ----- GRU and RNN -------------------------------------------------------------

    def _cells(self, projected: torch.Tensor, state: State | None) -> tuple[torch.Tensor, State]:
        batch = projected.shape[0]
        if state is None:
            state = projected.new_zeros(self.layers, batch, self.hidden)
        hs = state.unbind(0)
        if self.kind == "gru":
            x = _gru_first(projected, hs[0], self.w_hh0_t, self.b_hh0, self.hidden)
        else:
            pre = torch.addmm(projected, hs[0], self.w_hh0_t)
            x = torch.relu(pre) if self.relu else torch.tanh(pre)
        new_h = [x]
        cell = torch.gru_cell if self.kind == "gru" else _rnn_cell(self.relu)
        for layer in range(1, self.layers):
            x = cell(x, hs[layer], *self.cells[layer])
            new_h.append(x)
        logits = torch.addmm(self.head_bias, x, self.head_weight_t)
        return logits, torch.stack(new_h)


def _lstm_cell(
    gates: torch.Tensor, c: torch.Tensor, hidden: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """h, c from the (..., 4 * hidden) pre-activations [i, f, g, o]: few whole-tensor ops."""
    squashed = gates.sigmoid()
    i, f, _, o = squashed.chunk(4, dim=-1)
    g = gates.narrow(-1, 2 * hidden, hidden).tanh()
    c = torch.addcmul(f * c, i, g)
    return o * c.tanh(), c


def _gru_first(
    projected: torch.Tensor, h: torch.Tensor, w_hh_t: torch.Tensor, b_hh: torch.Tensor, hidden: int
) -> torch.Tensor:
    """A GRU layer whose input projection (b_ih included) is given; nn.GRU's equations."""
    i_r, i_z, i_n = projected.chunk(3, dim=1)
    h_r, h_z, h_n = torch.addmm(b_hh, h, w_hh_t).chunk(3, dim=1)
    r = torch.sigmoid(i_r + h_r)
    z = torch.sigmoid(i_z + h_z)
    n = torch.tanh(torch.addcmul(i_n, r, h_n))
    return n + z * (h - n)


def _rnn_cell(relu: bool):
    return torch.rnn_relu_cell if relu else torch.rnn_tanh_cell
