"""Blending several models at decode time: a mixture or a product of their distributions.

`BlendedModel` presents the CharLM interface over a merged vocabulary (the
union of the members' characters), so the generator, beam search, scoring and
the compare table decode from a blend exactly as from one model. Members may
differ in architecture and size; each keeps its own state (hidden state or
key/value cache) inside the blend's state, and `select_state` reorders all.

Its "logits" are log-probabilities over the merged vocabulary:

- mixture: log sum_i w_i p_i(c) (the weighted average of the probabilities);
- product: the weighted geometric mean, renormalised,
  sum_i w_i log max(p_i(c), PRODUCT_FLOOR) minus its log-normaliser.

A member gives probability zero to a character it never saw. In a mixture that
is harmless (another member carries it); in a product one zero would veto the
character for every member, so each member's probability is floored at
PRODUCT_FLOOR (1e-6) first: a character only some members know stays possible,
just unlikely. A member fed a character it does not know (a prompt or another
member's pick) sees its own most common character in its place.

The context window: a blend slides when its shortest windowed member is full
(`max_context` is the smallest finite one; None when every member is
recurrent), and then every member, recurrent ones included, restarts from the
same last half window, so all members always condition on the same text.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch

from engine.data.corpus import Vocab
from engine.errors import ConfigError
from engine.models import CharLM, State

BLENDS = ("mixture", "product")
PRODUCT_FLOOR = 1e-6


def check_weights(weights: Sequence[float] | None, count: int) -> list[float]:
    """Weights normalised to sum 1 (equal when None); bad ones are a ConfigError."""
    if weights is None:
        return [1.0 / count] * count
    values = [float(w) for w in weights]
    if len(values) != count:
        raise ConfigError(f"--weights has {len(values)} values for {count} checkpoints")
    if any(not math.isfinite(w) or w < 0 for w in values):
        raise ConfigError("--weights must be finite numbers >= 0")
    total = sum(values)
    if not math.isfinite(total):
        raise ConfigError("--weights are too large (their sum is not finite): use e.g. 0.7,0.3")
    if total <= 0:
        raise ConfigError("--weights are all zero")
    return [w / total for w in values]


def parse_weights(spec: str | None) -> list[float] | None:
    if spec is None:
        return None
    try:
        return [float(part) for part in spec.split(",")]
    except ValueError:
        raise ConfigError(f"--weights takes numbers separated by commas, got {spec!r}") from None


def merge_vocabs(vocabs: Sequence[Vocab]) -> Vocab:
    return Vocab(sorted({c for vocab in vocabs for c in vocab.chars}))


def merged_unigram(
    vocab: Vocab, vocabs: Sequence[Vocab], unigrams: Sequence[np.ndarray], weights: Sequence[float]
) -> np.ndarray:
    """The members' unigram distributions mixed with the blend's weights, over `vocab`."""
    out = np.zeros(len(vocab))
    for member_vocab, unigram, weight in zip(vocabs, unigrams, weights, strict=True):
        index = [vocab.index[c] for c in member_vocab.chars]
        out[index] += weight * np.asarray(unigram, dtype=np.float64)
    return out / out.sum() if out.sum() > 0 else np.full(len(vocab), 1.0 / len(vocab))


class _BlendConfig:
    """What callers read off `model.config`: the merged vocabulary's size."""

    def __init__(self, vocab_size: int) -> None:
        self.vocab_size = vocab_size
        self.num_labels = 0
        self.model_type = "blend"

    def as_dict(self) -> dict:
        return {"model_type": "blend", "vocab_size": self.vocab_size}


class BlendedModel(CharLM):
    """Several CharLMs (over their own vocabularies) as one over the merged vocabulary."""

    def __init__(
        self,
        members: Sequence[CharLM],
        vocabs: Sequence[Vocab],
        weights: Sequence[float] | None = None,
        blend: str = "mixture",
        unigrams: Sequence[np.ndarray] | None = None,
    ) -> None:
        super().__init__()
        if blend not in BLENDS:
            raise ConfigError(f"--blend must be one of {', '.join(BLENDS)}, got '{blend}'")
        if not members:
            raise ConfigError("a blend needs at least one model")
        self.members = torch.nn.ModuleList(members)
        self.blend = blend
        self.weights = check_weights(weights, len(members))
        self.vocab = merge_vocabs(vocabs)
        self.config = _BlendConfig(len(self.vocab))  # type: ignore[assignment]
        device = next(members[0].parameters()).device
        size = len(self.vocab)
        for i, (vocab, member) in enumerate(zip(vocabs, members, strict=True)):
            fallback = 0
            if unigrams is not None:
                fallback = int(np.argmax(unigrams[i]))
            to_member = torch.full((size,), fallback, dtype=torch.long)
            to_merged = torch.tensor([self.vocab.index[c] for c in vocab.chars], dtype=torch.long)
            to_member[to_merged] = torch.arange(len(vocab.chars))
            self.register_buffer(f"to_member_{i}", to_member.to(device), persistent=False)
            self.register_buffer(f"to_merged_{i}", to_merged.to(device), persistent=False)
            if next(member.parameters()).device != device:
                member.to(device)
        log_w = torch.tensor([math.log(w) if w > 0 else -math.inf for w in self.weights])
        self.register_buffer("log_weights", log_w.to(device), persistent=False)
        self.register_buffer(
            "weight_values", torch.tensor(self.weights).to(device), persistent=False
        )

    @property
    def max_context(self) -> int | None:
        contexts = [m.max_context for m in self.members if m.max_context is not None]
        return min(contexts) if contexts else None

    def member_log_probs(self, index: int, logits: torch.Tensor) -> torch.Tensor:
        """A member's log-probabilities spread over the merged vocabulary (-inf where unknown)."""
        log_probs = torch.log_softmax(logits.float(), dim=-1)
        out = log_probs.new_full((*log_probs.shape[:-1], len(self.vocab)), -math.inf)
        out[..., getattr(self, f"to_merged_{index}")] = log_probs
        return out

    def combine(self, member_log_probs: Sequence[torch.Tensor]) -> torch.Tensor:
        """The blend's log-probabilities from the members' (each over the merged vocabulary)."""
        stacked = torch.stack(list(member_log_probs))
        shape = (-1,) + (1,) * (stacked.dim() - 1)
        if self.blend == "mixture":
            return torch.logsumexp(stacked + self.log_weights.view(shape), dim=0)
        floored = stacked.clamp_min(math.log(PRODUCT_FLOOR))
        summed = (floored * self.weight_values.view(shape)).sum(dim=0)
        return torch.log_softmax(summed, dim=-1)

    def forward(
        self, tokens: torch.Tensor, state: State = None, condition: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, State]:
        if condition is not None:
            raise ValueError("condition the members of a blend, not the blend")
        states = list(state) if state is not None else [None] * len(self.members)
        parts, new_states = [], []
        for i, member in enumerate(self.members):
            member_tokens = getattr(self, f"to_member_{i}")[tokens]
            logits, member_state = member(member_tokens, states[i])
            parts.append(self.member_log_probs(i, logits))
            new_states.append(member_state)
        return self.combine(parts), tuple(new_states)

    def select_state(self, state: State, index: torch.Tensor) -> State:
        return tuple(
            member.select_state(s, index) for member, s in zip(self.members, state, strict=True)
        )

    def state_positions(self, state: State) -> int:
        if state is None:
            return 0
        return max(m.state_positions(s) for m, s in zip(self.members, state, strict=True))

    def describe(self, names: Sequence[str]) -> str:
        """`mixture of a 70% + b 30%`: for headers and reports."""
        parts = [f"{name} {w:.0%}" for name, w in zip(names, self.weights, strict=True)]
        return f"{self.blend} of " + " + ".join(parts)


def fit_mixture_weights(
    target_log_probs: torch.Tensor, weights: Sequence[float] | None = None, steps: int = 20
) -> tuple[list[float], list[float]]:
    """EM for mixture weights: `target_log_probs` (members, N) are each member's log p of
    the true next character. Returns (weights, loss after each step, nats/char); each EM
    step never raises the mixture's loss."""
    members = target_log_probs.shape[0]
    w = torch.tensor(check_weights(weights, members), dtype=torch.float64)
    lp = target_log_probs.double()
    losses = []
    for _ in range(steps):
        joint = lp + torch.log(w.clamp_min(1e-300))[:, None]
        total = torch.logsumexp(joint, dim=0)
        responsibilities = torch.exp(joint - total)
        w = responsibilities.mean(dim=1)
        losses.append(
            float(-torch.logsumexp(lp + torch.log(w.clamp_min(1e-300))[:, None], 0).mean())
        )
    return w.tolist(), losses
