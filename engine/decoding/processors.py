"""Logits processors and the choice of the next character, batched over (B, V) logits.

The processors are applied in one fixed order, each to the output of the one
before, so a setting always means the same thing whatever else is switched on:

1. repetition penalty (CTRL, Keskar et al. 2019): for every character that occurs
   in the last `window` characters of a row (prompt included), a positive logit
   is divided by the penalty and a negative one multiplied by it. 1.0 is off.
   It runs first because it is the only step that is not shift-invariant.
2. temperature: logits / T. T <= 0 means greedy (keep only the arg-max; the
   first one on ties, as `torch.argmax`), with no division by zero. Logits are
   shifted by their row maximum first, so a tiny T cannot overflow to inf - inf.
3. top-k: keep the k highest logits; characters tied with the k-th are kept
   too (so the result never depends on the order of equal characters). 0 or
   None is off; k above the vocabulary size keeps everything.
4. top-p (nucleus, Holtzman et al. 2019): keep the smallest set of most likely
   characters whose probability mass is >= p: a character is kept when the mass
   of the characters ranked before it (by probability, ties by index, lower
   first) is below p. p >= 1 keeps everything; the most likely character is
   always kept. Masses within 1e-6 of p count as reaching it, so rounding in
   float32 never adds a character a hand computation would not.
5. min-p: keep characters whose probability is >= min_p * (largest probability).

Each step sees the distribution the previous steps left (renormalised), so top-p
after top-k measures mass inside the top k. Removed characters get a logit of
-inf. Everything is computed in float32 whatever the model's dtype (bf16/fp16
logits would round the cumulative sums of top-p), and NaN / +inf logits are
sanitised (see `sanitize`), so no combination of settings yields NaN or a row
with nothing left. Greedy decoding is temperature 0: the repetition penalty
still applies before the arg-max.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

TOP_P_TOLERANCE = 1e-6
NEG_INF = float("-inf")


def sanitize(logits: torch.Tensor) -> torch.Tensor:
    """float32 logits with NaN and -inf -> the lowest float, +inf -> a large finite value.

    One op on the hot path. The lowest float weighs exp(lowest - max) = 0 next to
    any real logit, exactly as -inf does, but a row made only of them (a broken
    model) becomes uniform instead of NaN. The processors below then use -inf
    for what they remove and always keep at least one character.
    """
    info = torch.finfo(torch.float32)
    return torch.nan_to_num(logits.float(), nan=info.min, posinf=info.max / 4, neginf=info.min)


def presence_mask(recent: torch.Tensor, vocab_size: int) -> torch.Tensor:
    """(B, V) bool: which characters occur in each row of `recent` (B, W).

    Ids equal to `vocab_size` are padding and mark nothing.
    """
    mask = torch.zeros(recent.shape[0], vocab_size + 1, dtype=torch.bool, device=recent.device)
    mask.scatter_(1, recent, True)
    return mask[:, :vocab_size]


def apply_repetition_penalty(
    logits: torch.Tensor, recent: torch.Tensor | None, penalty: float
) -> torch.Tensor:
    """CTRL penalty for characters in `recent` (B, W) ids: positive / penalty, negative * penalty."""
    if penalty == 1.0 or recent is None or recent.numel() == 0:
        return logits
    seen = presence_mask(recent, logits.shape[-1])
    penalised = torch.where(logits > 0, logits / penalty, logits * penalty)
    return torch.where(seen, penalised, logits)


def greedy_mask(logits: torch.Tensor) -> torch.Tensor:
    """Keep only the arg-max of each row (the first on ties)."""
    keep = torch.zeros_like(logits, dtype=torch.bool)
    keep.scatter_(1, logits.argmax(dim=-1, keepdim=True), True)
    return logits.masked_fill(~keep, NEG_INF)


def apply_temperature(logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """logits / T after a shift by the row maximum; T <= 0 is greedy."""
    if temperature <= 0:
        return greedy_mask(logits)
    if temperature == 1.0:
        return logits
    shifted = logits - logits.max(dim=-1, keepdim=True).values
    return shifted / temperature


def apply_top_k(logits: torch.Tensor, k: int | None) -> torch.Tensor:
    """Keep the k largest logits per row (and any tied with the k-th)."""
    if not k or k >= logits.shape[-1]:
        return logits
    kth = logits.topk(k, dim=-1).values[:, -1:]
    return logits.masked_fill(logits < kth, NEG_INF)


def apply_top_p(logits: torch.Tensor, p: float | None) -> torch.Tensor:
    """Keep the smallest set of most likely characters whose mass is >= p."""
    if p is None or p >= 1.0:
        return logits
    sorted_logits, order = torch.sort(logits, dim=-1, descending=True, stable=True)
    sorted_probs = sorted_logits.softmax(dim=-1)
    mass_before = sorted_probs.cumsum(dim=-1) - sorted_probs
    drop_sorted = mass_before >= p - TOP_P_TOLERANCE
    drop_sorted[:, 0] = False
    drop = torch.zeros_like(drop_sorted).scatter_(1, order, drop_sorted)
    return logits.masked_fill(drop, NEG_INF)


def apply_min_p(logits: torch.Tensor, min_p: float | None) -> torch.Tensor:
    """Keep characters with probability >= min_p * the row's largest probability."""
    if not min_p:
        return logits
    # p_i >= min_p * p_max  <=>  logit_i - logit_max >= log(min_p), with no softmax needed.
    threshold = logits.max(dim=-1, keepdim=True).values + math.log(min_p)
    return logits.masked_fill(logits < threshold, NEG_INF)


@dataclass(frozen=True)
class LogitsPipeline:
    """The processors above with their settings, applied in the documented order."""

    temperature: float = 1.0
    top_k: int | None = None
    top_p: float | None = None
    min_p: float | None = None
    repetition_penalty: float = 1.0
    repetition_window: int = 64

    @property
    def greedy(self) -> bool:
        return self.temperature <= 0

    @property
    def needs_history(self) -> bool:
        return self.repetition_penalty != 1.0 and self.repetition_window > 0

    def __call__(self, logits: torch.Tensor, recent: torch.Tensor | None = None) -> torch.Tensor:
        """Processed float32 (B, V) logits; removed characters are -inf."""
        return self.process(sanitize(logits), recent)

    def process(self, out: torch.Tensor, recent: torch.Tensor | None = None) -> torch.Tensor:
        """`__call__` on logits that went through `sanitize` already. Returns `out` itself
        when no processor changes anything (T = 1, no truncation, no penalty)."""
        if self.needs_history:
            out = apply_repetition_penalty(out, recent, self.repetition_penalty)
        out = apply_temperature(out, self.temperature)
        if self.greedy:
            return out
        out = apply_top_k(out, self.top_k)
        out = apply_top_p(out, self.top_p)
        return apply_min_p(out, self.min_p)

    def probs(self, logits: torch.Tensor, recent: torch.Tensor | None = None) -> torch.Tensor:
        """The sampling distribution (B, V): softmax of the processed logits."""
        return self(logits, recent).softmax(dim=-1)

    def choose(
        self,
        logits: torch.Tensor,
        recent: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """The next character id of each row, (B,) long, on the logits' device."""
        return self.draw(self(logits, recent), generator)

    def draw(
        self,
        processed: torch.Tensor,
        generator: torch.Generator | None = None,
        probs: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """The choice from processed logits, the one place greedy is decided: the arg-max
        when greedy, else one draw from `probs` (their softmax, if the caller has it)."""
        if self.greedy:
            return processed.argmax(dim=-1)
        return sample(processed.softmax(dim=-1) if probs is None else probs, generator)


def sample(probs: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """One draw per row of (B, V) probabilities, (B,) long; never touches the global RNG.

    Inverse CDF: one uniform number per row, scaled by the row's total, located in the
    running sum. It is the one draw every sampling path uses (`choose`, and the
    generator's streaming path), so they agree for a seed, and it costs a few small
    ops where torch.multinomial costs about 50 us per call on a CPU. A character of
    probability 0 is never drawn: its running sum equals its predecessor's, and the
    search returns the first position whose sum is strictly above the draw; the draw
    (u < 1 times the total) is strictly below the last sum, so it always lands.
    """
    cdf = probs.cumsum(dim=-1)
    u = torch.rand(probs.shape[0], 1, generator=generator, device=probs.device, dtype=cdf.dtype)
    return torch.searchsorted(cdf, u.mul_(cdf[:, -1:]), right=True).squeeze(1)


def greedy(logits: torch.Tensor) -> torch.Tensor:
    """The arg-max character of each row (the first on ties)."""
    return sanitize(logits).argmax(dim=-1)
