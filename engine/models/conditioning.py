"""The label of a conditional model: one vector per label plus one for "no label".

The label enters a model in two places, so that a small label beside a big one
is followed, not drowned by the context:

- its input vector is added to the (dropped-out) input embedding at every
  position (`x = drop(embed(tokens)) + condition`): the label is seen as often
  as a character, and input dropout never hides it;
- its logit bias (one row of vocab_size per condition) is added to the logits
  at every position: a label's own character frequencies are learned directly
  rather than only through the hidden state, where the last few characters of
  context would otherwise outweigh it.

Both tables start at zero, so a fresh conditional model computes what an
unconditional one with the same weights would, and learns the labels from
there. Both are read through a gain (LABEL_GAIN, a buffer saved with the
weights): with Adam every parameter moves about lr a step, so a zero-started
vector reaches the size of a character embedding (about 1) only after
hundreds of steps; the gain makes the label that much faster to learn.
Checkpoints from before the logit bias and the gain load unchanged: their
model config has no `label_bias`, so they are built without the bias table
(engine.models.config_from_dict), and a missing gain is 1; they compute, and a
resumed run trains, exactly what they did (and a missing bias table, should
weights come without one, is zero).

A `condition` handed to a model's forward is one of:

- None: the "no label" row for every row (an unconditional sample from a
  conditional model; what label dropout trains);
- a long tensor (B,) of condition ids: 0 is "no label", i + 1 is label i;
- a float tensor (B, num_labels + 1) of mixing weights over those same rows
  (a blend of styles: the weighted sum of the rows, i.e. interpolation).

A single row (shape (1,) or (1, L + 1)) is broadcast over the batch.
"""

from __future__ import annotations

import torch
from torch import nn

NO_LABEL = 0
LABEL_GAIN = 10.0


class LabelEmbedding(nn.Module):
    def __init__(self, num_labels: int, dim: int, vocab_size: int = 0) -> None:
        super().__init__()
        self.num_labels = num_labels
        self.table = nn.Embedding(num_labels + 1, dim)
        nn.init.zeros_(self.table.weight)
        self.bias = nn.Embedding(num_labels + 1, vocab_size) if vocab_size else None
        if self.bias is not None:
            nn.init.zeros_(self.bias.weight)
        self.register_buffer("gain", torch.tensor(LABEL_GAIN))
        self.register_load_state_dict_pre_hook(_older_checkpoint)

    def _rows(self, weight: torch.Tensor, condition: torch.Tensor | None, batch: int):
        if condition is None:
            rows = weight[NO_LABEL].expand(batch, -1)
        elif condition.dtype.is_floating_point:
            if condition.shape[-1] != self.num_labels + 1:
                raise ValueError(
                    f"a condition mix needs {self.num_labels + 1} weights, got {condition.shape[-1]}"
                )
            rows = condition.to(weight.dtype) @ weight
        else:
            rows = nn.functional.embedding(condition.long(), weight)
        if rows.shape[0] == 1 and batch > 1:
            rows = rows.expand(batch, -1)
        return (rows * self.gain.to(rows.dtype)).unsqueeze(1)

    def forward(self, condition: torch.Tensor | None, batch: int) -> torch.Tensor:
        """(batch, 1, dim): the vector to add to the input at every position of each row."""
        return self._rows(self.table.weight, condition, batch)

    def logit_bias(self, condition: torch.Tensor | None, batch: int) -> torch.Tensor | None:
        """(batch, 1, vocab): what to add to the logits at every position (None: no table)."""
        if self.bias is None:
            return None
        return self._rows(self.bias.weight, condition, batch)


def _older_checkpoint(module, state_dict, prefix, *args) -> None:
    """A checkpoint saved before the logit bias and the gain: zero bias, gain 1."""
    if prefix + "table.weight" not in state_dict:
        return  # not a label embedding's weights at all: let loading say what is missing
    if prefix + "gain" not in state_dict:
        state_dict[prefix + "gain"] = torch.tensor(1.0)
    if module.bias is not None and prefix + "bias.weight" not in state_dict:
        state_dict[prefix + "bias.weight"] = torch.zeros_like(module.bias.weight)


def make_label_embedding(num_labels: int, dim: int, vocab_size: int = 0) -> LabelEmbedding | None:
    """The embedding for a conditional model, None for an unconditional one (no new weights:
    an old checkpoint's state dict still matches exactly)."""
    return LabelEmbedding(num_labels, dim, vocab_size) if num_labels > 0 else None


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


def condition_logit_bias(
    module: LabelEmbedding | None, condition: torch.Tensor | None, batch: int
) -> torch.Tensor | None:
    """What a model adds to its logits: None for an unconditional model (or an old one)."""
    return None if module is None else module.logit_bias(condition, batch)
