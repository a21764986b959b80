"""Long short-term memory: the default, and the seed notebook's model (embed 64, 2x256)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from torch import nn

from engine.models.recurrent import RecurrentConfig, RecurrentLM


@dataclass
class LSTMConfig(RecurrentConfig):
    model_type: ClassVar[str] = "lstm"


class LSTMLM(RecurrentLM):
    cell_class = nn.LSTM
