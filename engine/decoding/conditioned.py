"""Decoding from a conditional model: a style (or a blend of styles) and classifier-free guidance.

`ConditionedLM` wraps a conditional model so that it looks like any other
CharLM (`forward(tokens, state)`): the generator, beam search, scoring and the
compare table run on it unchanged, and every one of them honours the condition.

- The condition is a mix over the model's condition rows (row 0 "no label",
  row i + 1 label i): `--condition shakespeare` is a one-hot mix,
  `--condition shakespeare=0.7,code=0.3` interpolates the label embeddings
  with those weights (normalised to sum to 1).
- Guidance g != 1 is classifier-free guidance (Ho & Salimans) in log
  probabilities, `U + g * (C - U)`, where C is the conditional log-softmax and
  U is the log of the *mixture of the labels*: the mean of the model's
  distributions under each label on its own (uniform weights). Then
  C - U = log P(label | text so far, next char) - log(1 / labels) under the
  model's own labels, and guiding tilts each step towards characters that make
  the asked label more likely: with g > 1 the expected posterior of the label
  can only go up (a tilt by an increasing function raises its mean), so
  guidance raises the label's share, never lowers it. The "no label" row is
  not used for this: it is trained on a tenth of the windows and only
  approximates that mixture, and where it errs, `g * (C - U)` amplifies the
  error (guidance lowered some labels' share that way).
  A guided step runs every row once per label in one batch (the asked label's
  block doubles as C when the condition is a single label; a blend or `none`
  adds its own block first): the state holds the blocks one after another,
  rows [k * B, (k + 1) * B) for block k. g == 1 is plain conditioning (no
  extra row).
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Sequence

import torch

from engine.errors import ConfigError
from engine.models import CharLM, State
from engine.models.conditioning import NO_LABEL


def condition_mix(weights: dict[str, float], labels: Sequence[str]) -> torch.Tensor:
    """(len(labels) + 1,) float mix over the condition rows (row 0: no label)."""
    mix = torch.zeros(len(labels) + 1)
    for name, weight in weights.items():
        mix[NO_LABEL if name == "none" else list(labels).index(name) + 1] = weight
    return mix


class ConditionedLM(CharLM):
    """A conditional model fixed to one condition mix (and guidance scale) for decoding."""

    def __init__(self, model: CharLM, mix: torch.Tensor, guidance: float = 1.0) -> None:
        super().__init__()
        if model.num_labels == 0:
            raise ConfigError("this checkpoint was trained without labels")
        if mix.shape != (model.num_labels + 1,):
            raise ConfigError("the condition does not match the model's labels")
        if not math.isfinite(guidance):
            raise ConfigError(f"--guidance must be a finite number, got {guidance}")
        self.inner = model
        self.config = model.config
        self.guidance = float(guidance)
        device = next(model.parameters()).device
        self.register_buffer("mix", mix.float().to(device)[None], persistent=False)
        # The guided blocks: each label on its own, after the condition's own block
        # unless the condition is one of them.
        labels = torch.eye(model.num_labels + 1, device=device)[1:]
        single = mix[NO_LABEL] == 0 and int((mix > 0).sum()) == 1
        self.conditional_block = int(mix.argmax()) - 1 if single else 0
        blocks = labels if single else torch.cat([self.mix, labels])
        self.register_buffer("blocks", blocks, persistent=False)
        self.label_blocks = slice(0 if single else 1, None)

    @property
    def guided(self) -> bool:
        return self.guidance != 1.0

    @property
    def max_context(self) -> int | None:
        return self.inner.max_context

    def forward(
        self, tokens: torch.Tensor, state: State = None, condition: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, State]:
        if condition is not None:
            raise ValueError("a ConditionedLM has its condition already")
        batch = tokens.shape[0]
        if not self.guided:
            return self.inner(tokens, state, self.mix.expand(batch, -1))
        count = self.blocks.shape[0]
        rows = self.blocks.repeat_interleave(batch, dim=0)
        inner_state = state[0] if state is not None else None
        logits, new_state = self.inner(tokens.repeat(count, 1), inner_state, rows)
        logp = torch.log_softmax(logits.float(), dim=-1).unflatten(0, (count, batch))
        labels = logp[self.label_blocks]
        mixture = torch.logsumexp(labels, dim=0) - math.log(labels.shape[0])
        conditional = logp[self.conditional_block]
        guided = mixture + self.guidance * (conditional - mixture)
        return guided, (new_state, batch)

    def steady_weights(self) -> contextlib.AbstractContextManager[None]:
        return self.inner.steady_weights()

    def select_state(self, state: State, index: torch.Tensor) -> State:
        if not self.guided:
            return self.inner.select_state(state, index)
        inner, batch = state
        every = torch.cat([index + k * batch for k in range(self.blocks.shape[0])])
        return self.inner.select_state(inner, every), int(index.numel())

    def state_positions(self, state: State) -> int:
        if state is None:
            return 0
        return self.inner.state_positions(state[0] if self.guided else state)
