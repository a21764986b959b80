"""Plain tanh RNN: the simplest recurrent model, useful to show why gates matter."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from torch import nn

from engine.models.recurrent import RecurrentConfig, RecurrentLM


@dataclass
class RNNConfig(RecurrentConfig):
    model_type: ClassVar[str] = "rnn"


class RNNLM(RecurrentLM):
    cell_class = nn.RNN
