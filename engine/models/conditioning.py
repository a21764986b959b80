"""The label embedding of a conditional model: one vector per label plus one for "no label".

Every architecture adds the vector to its input embedding at every position
(`x = embed(tokens) + condition`), so the label is seen as often as a character.
A `condition` handed to a model's forward is one of:

- None: the "no label" vector for every row (an unconditional sample from a
  conditional model; what label dropout trains);
- a long tensor (B,) of condition ids: 0 is "no label", i + 1 is label i;
- a float tensor (B, num_labels + 1) of mixing weights over those same rows
  (a blend of styles: the weighted sum of the vectors, i.e. interpolation).

A single row (shape (1,) or (1, L + 1)) is broadcast over the batch. The table
starts at zero, so a fresh conditional model computes what an unconditional one
with the same weights would, and learns the labels from there.
"""

from __future__ import annotations

import torch
from torch import nn

NO_LABEL = 0


class LabelEmbedding(nn.Module):
    def __init__(self, num_labels: int, dim: int) -> None:
        super().__init__()
        self.num_labels = num_labels
        self.table = nn.Embedding(num_labels + 1, dim)
        nn.init.zeros_(self.table.weight)

    def forward(self, condition: torch.Tensor | None, batch: int) -> torch.Tensor:
        """(batch, 1, dim): the vector to add at every position of each row."""
        weight = self.table.weight
        if condition is None:
            vectors = weight[NO_LABEL].expand(batch, -1)
        elif condition.dtype.is_floating_point:
            if condition.shape[-1] != self.num_labels + 1:
                raise ValueError(
                    f"a condition mix needs {self.num_labels + 1} weights, got {condition.shape[-1]}"
                )
            vectors = condition.to(weight.dtype) @ weight
        else:
            vectors = self.table(condition.long())
        if vectors.shape[0] == 1 and batch > 1:
            vectors = vectors.expand(batch, -1)
        return vectors.unsqueeze(1)


def make_label_embedding(num_labels: int, dim: int) -> LabelEmbedding | None:
    """The embedding for a conditional model, None for an unconditional one (no new weights:
    an old checkpoint's state dict still matches exactly)."""
    return LabelEmbedding(num_labels, dim) if num_labels > 0 else None


def condition_vector(
    module: LabelEmbedding | None, condition: torch.Tensor | None, batch: int
) -> torch.Tensor | None:
    """What a model adds to its input embedding: None for an unconditional model.

    An unconditional model handed a condition is a bug in the caller (the CLI
    checks labels first), so it raises.
    """
    if module is None:
        if condition is not None:
            raise ValueError("this model was not trained with labels")
        return None
    return module(condition, batch)
