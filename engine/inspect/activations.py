"""Every unit's activation at every character of a text.

A unit is one number the model computes per position, named `L{layer}.{kind}.{index}`:

- LSTM: `cell` (the memory c_t) and `hidden` (h_t) of every layer;
- GRU and plain RNN: `hidden` of every layer;
- Transformer: `mlp`, the MLP neurons of every block (after the GELU).

Position t holds the value after the model has read character t, so a unit that
"fires inside quotes" is high on the quoted characters themselves.

A fused nn.LSTM/GRU/RNN returns only the last layer's outputs. Here each
layer runs on its own (a one-layer copy with that layer's weights, the same
fused kernel) and an LSTM's cell states are rebuilt from its gates; the test
suite checks that the last layer, the logits and every layer's final state
equal the plain `forward` to float rounding. Transformers are run
with forward hooks on each MLP's output projection; a text longer than the
context is covered by windows that overlap by half, every kept position having
at least half a context of history.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from engine.errors import UserError
from engine.inspect.hooks import inspecting, this_thread_only
from engine.models import CharLM
from engine.models.recurrent import RecurrentLM
from engine.models.transformer import TransformerLM


@dataclass
class UnitGroup:
    """One layer's units of one kind: `values` is (characters, units), float32."""

    layer: int
    kind: str
    values: np.ndarray

    @property
    def name(self) -> str:
        return f"L{self.layer}.{self.kind}"

    @property
    def size(self) -> int:
        return int(self.values.shape[1])


@dataclass
class Activations:
    """The units of a model over one text, group after group."""

    text: str
    groups: list[UnitGroup]

    def matrix(self) -> np.ndarray:
        """(characters, all units): the groups side by side, in `labels()` order."""
        return np.concatenate([g.values for g in self.groups], axis=1)

    def labels(self) -> list[str]:
        return [f"{g.name}.{i}" for g in self.groups for i in range(g.size)]

    @property
    def num_units(self) -> int:
        return sum(g.size for g in self.groups)

    def unit(self, label: str) -> np.ndarray:
        """The (characters,) values of one unit, by its label (`L1.cell.37`)."""
        group, index = self._locate(label)
        return group.values[:, index]

    def _locate(self, label: str) -> tuple[UnitGroup, int]:
        name, _, index_text = label.strip().rpartition(".")
        for group in self.groups:
            if group.name == name and index_text.isdigit() and int(index_text) < group.size:
                return group, int(index_text)
        sizes = ", ".join(f"{g.name}.0-{g.size - 1}" for g in self.groups)
        raise UserError(f"no unit {label!r}: this model has {sizes}")

    def index_of(self, label: str) -> int:
        """The column of `label` in `matrix()`."""
        group, index = self._locate(label)
        offset = 0
        for g in self.groups:
            if g is group:
                return offset + index
            offset += g.size
        raise AssertionError("unreachable")


def eval_mode(model: nn.Module) -> contextlib.AbstractContextManager[None]:
    """Eval mode for the duration, serialized with other inspect work (engine.inspect.hooks)."""
    return inspecting(model)


def unit_activations(model: CharLM, ids: np.ndarray | torch.Tensor, text: str = "") -> Activations:
    """The activations of every unit of `model` at every position of `ids`."""
    tokens = torch.as_tensor(np.asarray(ids), dtype=torch.long, device=_device(model))
    if tokens.ndim != 1 or tokens.numel() == 0:
        raise UserError("activations need a non-empty text")
    with eval_mode(model), torch.no_grad():
        if isinstance(model, RecurrentLM):
            groups = recurrent_trace(model, tokens)
        elif isinstance(model, TransformerLM):
            groups = transformer_trace(model, tokens)
        else:
            raise UserError(f"cannot inspect a {type(model).__name__}")
    return Activations(text, groups)


def _device(model: nn.Module) -> torch.device:
    return next(model.parameters()).device


def _layer_weights(rnn: nn.RNNBase, layer: int) -> tuple[torch.Tensor, ...]:
    return tuple(
        getattr(rnn, f"{name}_l{layer}")
        for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")
    )


def _single_layer(rnn: nn.RNNBase, layer: int, input_size: int) -> nn.RNNBase:
    """A one-layer copy of layer `layer` of `rnn`: the same fused kernel, that layer's weights."""
    extra = {"nonlinearity": rnn.nonlinearity} if isinstance(rnn, nn.RNN) else {}
    single = type(rnn)(input_size, rnn.hidden_size, num_layers=1, batch_first=True, **extra)
    names = ("weight_ih", "weight_hh", "bias_ih", "bias_hh")
    weights = _layer_weights(rnn, layer)
    single.load_state_dict({f"{n}_l0": w for n, w in zip(names, weights, strict=True)})
    return single.to(device=weights[0].device, dtype=weights[0].dtype).eval()


def _lstm_cells(x: torch.Tensor, hs: torch.Tensor, weights: tuple[torch.Tensor, ...]) -> np.ndarray:
    """The cell states c_t of an LSTM layer, given its input and its hidden states h_t.

    Every gate is a function of x_t and h_{t-1}, so all gates come from two
    matmuls; what is left, c_t = f_t * c_{t-1} + i_t * g_t, is a cheap
    element-wise recurrence.
    """
    w_ih, w_hh, b_ih, b_hh = weights
    previous = torch.cat([hs.new_zeros(1, hs.shape[1]), hs[:-1]])
    gates = F.linear(x, w_ih, b_ih) + F.linear(previous, w_hh, b_hh)
    i, f, g, _ = gates.float().chunk(4, dim=1)
    inflow = (torch.sigmoid(i) * torch.tanh(g)).cpu().numpy()
    forget = torch.sigmoid(f).cpu().numpy()
    cells = np.empty_like(inflow)
    c = np.zeros(inflow.shape[1], dtype=inflow.dtype)
    for t in range(inflow.shape[0]):
        c = forget[t] * c + inflow[t]
        cells[t] = c
    return cells


def recurrent_trace(model: RecurrentLM, tokens: torch.Tensor) -> list[UnitGroup]:
    """Every layer's hidden states (and an LSTM's cell states) over the text.

    nn.LSTM/GRU/RNN return only the last layer's outputs, so each layer runs on
    its own as a one-layer copy with its weights (the same fused kernel) on the
    previous layer's outputs; eval mode, so no dropout sits between layers.
    """
    rnn = model.rnn
    if not rnn.bias or getattr(rnn, "proj_size", 0) or rnn.bidirectional or not rnn.batch_first:
        raise UserError("only the plain unidirectional cells charlm-tui builds can be inspected")
    x = model.embedding(tokens)
    groups: list[UnitGroup] = []
    for layer in range(rnn.num_layers):
        single = _single_layer(rnn, layer, x.shape[1])
        hs = single(x.unsqueeze(0))[0][0]
        if isinstance(rnn, nn.LSTM):
            cells = _lstm_cells(x, hs, _layer_weights(rnn, layer))
            groups.append(UnitGroup(layer, "cell", cells))
        groups.append(UnitGroup(layer, "hidden", hs.float().cpu().numpy()))
        x = hs
    return groups


def transformer_windows(total: int, block: int) -> Iterator[tuple[int, int, int]]:
    """(start, end, keep_from): windows of at most `block` positions covering `total`.

    Positions [start + keep_from, end) of each window are kept; windows after the
    first advance by half a block, so every kept position sees >= block // 2 of history.
    """
    if total <= block:
        yield 0, total, 0
        return
    stride = max(1, block // 2)
    yield 0, block, 0
    end = block
    while end < total:
        new_end = min(end + stride, total)
        start = new_end - block
        yield start, new_end, end - start
        end = new_end


def transformer_trace(model: TransformerLM, tokens: torch.Tensor) -> list[UnitGroup]:
    """The MLP neurons of every block, read by a pre-hook on each MLP's output projection."""
    captured: list[torch.Tensor | None] = [None] * len(model.blocks)

    def hook_for(layer: int):
        def hook(_module: nn.Module, inputs: tuple[torch.Tensor, ...]) -> None:
            captured[layer] = inputs[0]

        return hook

    handles = [
        block.mlp.proj.register_forward_pre_hook(this_thread_only(hook_for(i)))
        for i, block in enumerate(model.blocks)
    ]
    parts: list[list[np.ndarray]] = [[] for _ in model.blocks]
    try:
        for start, end, keep in transformer_windows(tokens.shape[0], model.config.block_size):
            model(tokens[start:end].unsqueeze(0))
            for layer, values in enumerate(captured):
                assert values is not None
                parts[layer].append(values[0, keep:].float().cpu().numpy())
    finally:
        for handle in handles:
            handle.remove()
    return [UnitGroup(i, "mlp", np.concatenate(p, axis=0)) for i, p in enumerate(parts)]
