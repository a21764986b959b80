"""The one interface every model implements.

`forward(tokens, state, condition=None) -> (logits, new_state)`: tokens are
(batch, time) ids, logits (batch, time, vocab); `condition` picks the label (or
mix of labels) of a conditional model, see engine/models/conditioning.py. `state` is whatever the model carries between calls
(an RNN's hidden state, a Transformer's key/value cache); `None` starts fresh.
Feeding a sequence in pieces, carrying the state, gives the same logits as
feeding it whole, which is what lets generation cost one step per character.
"""

from __future__ import annotations

import contextlib
from dataclasses import asdict, dataclass
from typing import Any, ClassVar

import torch
from torch import nn

State = Any


@dataclass
class ModelConfig:
    """Fields shared by every architecture; subclasses add their own."""

    vocab_size: int = 0
    dropout: float = 0.0
    # > 0: a conditional model with this many labels (engine/models/conditioning.py).
    num_labels: int = 0
    # A conditional model's labels also bias its logits (False: saved before they did).
    label_bias: bool = True

    model_type: ClassVar[str] = ""

    def as_dict(self) -> dict:
        return {"model_type": self.model_type, **asdict(self)}


class CharLM(nn.Module):
    """Base class: the state-carrying forward, state reordering, size reporting."""

    config: ModelConfig

    @property
    def max_context(self) -> int | None:
        """How many positions one state can hold (None: unbounded, as in an RNN)."""
        return None

    @property
    def num_labels(self) -> int:
        return int(getattr(self.config, "num_labels", 0))

    def forward(
        self, tokens: torch.Tensor, state: State = None, condition: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, State]:
        raise NotImplementedError

    def step_one(self, tokens: torch.Tensor, state: State) -> tuple[torch.Tensor, State]:
        """One position of every row, without a condition: tokens (B,) -> logits (B, V) and
        the new state. Decoding's hot path: a model may answer it without going through
        nn.Module's call machinery (a recurrent model does)."""
        logits, new_state = self(tokens[:, None], state)
        return logits.select(1, 0), new_state

    def steady_weights(self) -> contextlib.AbstractContextManager[None]:
        """A block inside which the caller promises not to change the weights (a generation
        call): a model that prepares decode-time layouts of its weights (a recurrent
        model's step plan) checks them once for the block instead of on every step."""
        return contextlib.nullcontext()

    def select_state(self, state: State, index: torch.Tensor) -> State:
        """Rows `index` of a batched state: beam search reorders beams with it."""
        raise NotImplementedError

    def state_positions(self, state: State) -> int:
        """How many positions a state has consumed (0 for None)."""
        raise NotImplementedError

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())
