"""A seeded Markov source with a known entropy rate.

Text from it has structure a model can learn and a floor no model can beat: the
entropy rate. Tests train on it and check that the loss falls to near that
floor, and the shipped `markov` sample corpus was made with `generate_markov`.
"""

from __future__ import annotations

import itertools
import math

import numpy as np

DEFAULT_ALPHABET = "abcdefgh ."


class MarkovSource:
    """An order-`order` chain: each context allows a few next characters."""

    def __init__(
        self,
        alphabet: str = DEFAULT_ALPHABET,
        order: int = 2,
        seed: int = 0,
        branching: tuple[int, int] = (1, 4),
    ) -> None:
        self.alphabet = alphabet
        self.order = order
        rng = np.random.default_rng(seed)
        n = len(alphabet)
        self.transitions = np.zeros((n**order, n))
        for state in range(n**order):
            allowed = rng.choice(
                n, size=rng.integers(branching[0], branching[1] + 1), replace=False
            )
            self.transitions[state, allowed] = rng.dirichlet(np.ones(len(allowed)))

    def _next_state(self, state: int, char: int) -> int:
        n = len(self.alphabet)
        return (state * n + char) % (n**self.order)

    def stationary(self) -> np.ndarray:
        """The long-run distribution over contexts (power iteration)."""
        n = len(self.alphabet)
        states = n**self.order
        dist = np.full(states, 1.0 / states)
        for _ in range(2000):
            new = np.zeros(states)
            for state, char in itertools.product(range(states), range(n)):
                p = self.transitions[state, char]
                if p:
                    new[self._next_state(state, char)] += dist[state] * p
            if np.abs(new - dist).max() < 1e-13:
                break
            dist = new
        return dist

    def entropy_rate_bits(self) -> float:
        """H(next | context) under the stationary distribution, in bits per char."""
        probs = self.transitions
        with np.errstate(divide="ignore", invalid="ignore"):
            row_entropy = -np.nansum(np.where(probs > 0, probs * np.log2(probs), 0.0), axis=1)
        return float(self.stationary() @ row_entropy)

    def generate(self, length: int, seed: int = 0) -> str:
        rng = np.random.default_rng(seed)
        n = len(self.alphabet)
        state = 0
        out = np.empty(length, dtype=np.int64)
        cumulative = np.cumsum(self.transitions, axis=1)
        draws = rng.random(length)
        for i in range(length):
            row = cumulative[state]
            char = min(int(np.searchsorted(row, draws[i] * row[-1], side="right")), n - 1)
            out[i] = char
            state = self._next_state(state, char)
        return "".join(self.alphabet[c] for c in out)


def generate_markov(length: int = 200_000, seed: int = 0) -> tuple[str, float]:
    """Text of the shipped `markov` sample and its entropy rate in bits/char."""
    source = MarkovSource(seed=seed)
    return source.generate(length, seed=seed + 1), source.entropy_rate_bits()


if __name__ == "__main__":  # regenerate sample_corpora/markov.txt
    text, rate = generate_markov()
    print(f"entropy rate {rate:.6f} bits/char = {rate * math.log(2):.6f} nats/char")
    with open("sample_corpora/markov.txt", "w", encoding="utf-8") as handle:
        handle.write(text)
