"""One position of a recurrent model computed with NumPy: generation's hot path on a CPU.

A one-position step is a few matrix-vector products (bound by how fast the
weights stream from cache) and about twenty small element-wise ops (bound by
per-op dispatch). On a CPU PyTorch pays for both: its products go through MKL,
which on AMD processors takes a slower code path (a 1x512 by 512x1024 product:
64 us, against 40 us for NumPy's OpenBLAS on the same core, EPYC, AVX2), and each
small op costs 3-8 us of dispatch where a NumPy ufunc costs about 1. The same
maths in NumPy runs a `notebook`-preset step in ~60% of the time
(bench/generate_speed.py reports both backends).

The equations are nn.LSTM / nn.GRU / nn.RNN's, on the layout of
engine/models/recurrent_step.py (a layer-0 token table, transposed weights, an
LSTM's upper layers as one product over [x, h]); the LSTM's gate columns are
reordered to [i, f, o, g] so that one sigmoid covers three gates. Inputs and
outputs stay torch tensors (zero-copy views), so callers cannot tell the
backends apart except by speed; results agree with the fused kernel to float
rounding. Only float32 CPU weights take this path.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from engine.models import blas_threads

State = torch.Tensor | tuple[torch.Tensor, torch.Tensor]


def supports(tensors: Sequence[torch.Tensor]) -> bool:
    """Whether NumPy can run a step on these weights: float32 on the CPU, no autocast."""
    return not torch.is_autocast_enabled() and all(
        t.device.type == "cpu" and t.dtype == torch.float32 for t in tensors
    )


def _np(tensor: torch.Tensor) -> np.ndarray:
    """A contiguous float32 copy that owns its memory (the weights may change later)."""
    return np.ascontiguousarray(tensor.detach().numpy(), dtype=np.float32).copy()


class NumpyStepPlan:
    """The weights of one recurrent model, laid out for one-position steps in NumPy."""

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
        """Same arguments as recurrent_step.StepPlan."""
        self.sources = [t.detach() for t in (embedding, *flat_weights, head_weight, head_bias)]
        self.kind = kind
        self.layers = num_layers
        hidden = self.hidden = int(flat_weights[1].shape[1])
        self.act = np.maximum if nonlinearity == "relu" else None
        with torch.no_grad():
            w = [t.detach().float() for t in flat_weights]
            order = _gate_order(kind, hidden)
            w_ih, w_hh, b_ih, b_hh = w[:4]
            table = torch.nn.functional.linear(embedding.detach().float(), w_ih, b_ih)
            if kind != "gru":  # a GRU keeps b_hh inside its reset gate
                table = table + b_hh
            self.table = _np(table[:, order])
            self.w_ih0_t = _np(w_ih[order].t())  # a condition label's share of layer 0
            self.w_hh0_t = _np(w_hh[order].t())
            self.b_hh0 = _np(b_hh[None])
            # Layers above 0: one product over [x, h] (LSTM, RNN), or the GRU's two.
            self.upper: list[tuple[np.ndarray, ...]] = []
            for i in range(1, num_layers):
                w_ih, w_hh, b_ih, b_hh = w[4 * i : 4 * i + 4]
                if kind == "gru":
                    self.upper.append(
                        (_np(w_ih.t()), _np(b_ih[None]), _np(w_hh.t()), _np(b_hh[None]))
                    )
                else:
                    both = torch.cat([w_ih, w_hh], dim=1)[order]
                    self.upper.append((_np(both.t()), _np((b_ih + b_hh)[order][None])))
            self.head_weight_t = _np(head_weight.t())
            self.head_bias = _np(head_bias[None])

    def step(
        self, token: torch.Tensor, state: State | None, label: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, State]:
        """Logits (B, vocab) after feeding `token` (B,) to `state`, and the new state."""
        projected = self.table[token.numpy()]
        if label is not None:
            projected += label.detach().float().numpy() @ self.w_ih0_t
        if state is None:
            arrays = self.zero_state(projected.shape[0])
        elif self.kind == "lstm":
            arrays = (state[0].numpy(), state[1].numpy())
        else:
            arrays = (state.numpy(),)
        logits, new = self.step_arrays(projected, arrays)
        tensors = tuple(torch.from_numpy(a) for a in new)
        return torch.from_numpy(logits), tensors if self.kind == "lstm" else tensors[0]

    def zero_state(self, batch: int) -> tuple[np.ndarray, ...]:
        zeros = np.zeros((self.layers, batch, self.hidden), np.float32)
        return (zeros, zeros) if self.kind == "lstm" else (zeros,)

    def step_arrays(
        self, projected: np.ndarray, state: tuple[np.ndarray, ...]
    ) -> tuple[np.ndarray, tuple[np.ndarray, ...]]:
        """The step on NumPy arrays: `projected` (B, gates) is layer 0's input projection
        (rows of `table`: a view of it is fine, it is only read), `state` the (layers, B,
        hidden) arrays (h, c for an LSTM), never written. Returns the logits and the new
        state arrays."""
        blas_threads.use_one_thread()
        if self.kind == "lstm":
            logits, new_h, new_c = self._lstm(projected, state[0], state[1])
            return logits, (new_h, new_c)
        cell = self._gru if self.kind == "gru" else self._rnn
        logits, new_h = cell(projected, state[0])
        return logits, (new_h,)

    # ----- the three cells -----------------------------------------------------------

    def _lstm(
        self, projected: np.ndarray, h: np.ndarray, c: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        new_h = np.empty_like(h, dtype=np.float32)
        new_c = np.empty_like(c, dtype=np.float32)
        gates = h[0] @ self.w_hh0_t
        gates += projected
        x = _lstm_cell(gates, c[0], new_h[0], new_c[0], self.hidden)
        for layer in range(1, self.layers):
            both_t, bias = self.upper[layer - 1]
            gates = np.concatenate((x, h[layer]), axis=1) @ both_t
            gates += bias
            x = _lstm_cell(gates, c[layer], new_h[layer], new_c[layer], self.hidden)
        return self._head(x), new_h, new_c

    def _gru(self, projected: np.ndarray, h: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        new_h = np.empty_like(h, dtype=np.float32)
        recurrent = h[0] @ self.w_hh0_t
        recurrent += self.b_hh0
        x = _gru_cell(projected, recurrent, h[0], new_h[0])
        for layer in range(1, self.layers):
            w_ih_t, b_ih, w_hh_t, b_hh = self.upper[layer - 1]
            inputs = x @ w_ih_t
            inputs += b_ih
            recurrent = h[layer] @ w_hh_t
            recurrent += b_hh
            x = _gru_cell(inputs, recurrent, h[layer], new_h[layer])
        return self._head(x), new_h

    def _rnn(self, projected: np.ndarray, h: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        new_h = np.empty_like(h, dtype=np.float32)
        pre = h[0] @ self.w_hh0_t
        pre += projected
        x = self._activate(pre, new_h[0])
        for layer in range(1, self.layers):
            both_t, bias = self.upper[layer - 1]
            pre = np.concatenate((x, h[layer]), axis=1) @ both_t
            pre += bias
            x = self._activate(pre, new_h[layer])
        return self._head(x), new_h

    def _activate(self, pre: np.ndarray, out: np.ndarray) -> np.ndarray:
        if self.act is None:
            return np.tanh(pre, out=out)
        return np.maximum(pre, 0.0, out=out)

    def _head(self, x: np.ndarray) -> np.ndarray:
        logits = x @ self.head_weight_t
        logits += self.head_bias
        return logits


def _gate_order(kind: str, hidden: int) -> torch.Tensor | slice:
    """Row order of the gate weights: an LSTM's [i, f, g, o] becomes [i, f, o, g]."""
    if kind != "lstm":
        return slice(None)
    return torch.cat(
        [
            torch.arange(2 * hidden),
            torch.arange(3 * hidden, 4 * hidden),
            torch.arange(2 * hidden, 3 * hidden),
        ]
    )


def _sigmoid(x: np.ndarray) -> np.ndarray:
    """In place, as 0.5 * tanh(x / 2) + 0.5: exact maths, and no overflow for large -x."""
    x *= 0.5
    np.tanh(x, out=x)
    x *= 0.5
    x += 0.5
    return x


def _lstm_cell(
    gates: np.ndarray, c: np.ndarray, h_out: np.ndarray, c_out: np.ndarray, hidden: int
) -> np.ndarray:
    """h into `h_out` and c into `c_out`, from (B, 4H) pre-activations ordered [i, f, o, g]."""
    squashed = _sigmoid(gates[:, : 3 * hidden])
    g = np.tanh(gates[:, 3 * hidden :])
    np.multiply(squashed[:, hidden : 2 * hidden], c, out=c_out)
    g *= squashed[:, :hidden]
    c_out += g
    np.tanh(c_out, out=h_out)
    h_out *= squashed[:, 2 * hidden :]
    return h_out


def _gru_cell(
    inputs: np.ndarray, recurrent: np.ndarray, h: np.ndarray, h_out: np.ndarray
) -> np.ndarray:
    """nn.GRU's update into `h_out`, from the input and recurrent projections [r, z, n]."""
    hidden = h.shape[-1]
    rz = inputs[:, : 2 * hidden] + recurrent[:, : 2 * hidden]
    _sigmoid(rz)
    n = recurrent[:, 2 * hidden :] * rz[:, :hidden]
    n += inputs[:, 2 * hidden :]
    np.tanh(n, out=n)
    np.subtract(h, n, out=h_out)
    h_out *= rz[:, hidden:]
    h_out += n
    return h_out
