"""Gated recurrent unit: three gates instead of four, so a quarter cheaper per step than an LSTM."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from torch import nn

from engine.models.recurrent import RecurrentConfig, RecurrentLM


@dataclass
class GRUConfig(RecurrentConfig):
    model_type: ClassVar[str] = "gru"


class GRULM(RecurrentLM):
    cell_class = nn.GRU
