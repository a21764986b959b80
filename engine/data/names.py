"""A seeded, names-like list (one per line) for tests and benches of line-per-item corpora.

Names are drawn from a small syllable grammar (an onset, one to three syllables,
an ending), so a model can learn the structure and make names that are not in
the list, the way makemore's names.txt is used. Nothing is downloaded.
"""

from __future__ import annotations

import random

ONSETS = ("", "b", "d", "k", "l", "m", "n", "r", "s", "t", "v", "j", "br", "st", "tr", "el")
VOWELS = ("a", "e", "i", "o", "u", "ai", "ia", "ee")
CODAS = ("", "", "", "n", "l", "r", "s", "th")
ENDINGS = ("", "a", "ie", "o", "ella", "iah", "on", "yn", "us")


def synthetic_names(count: int, seed: int = 0) -> list[str]:
    """`count` names (duplicates happen, as in real name lists)."""
    rng = random.Random(seed)
    names = []
    for _ in range(count):
        syllables = rng.choices((1, 2, 3), weights=(3, 5, 2))[0]
        parts = [
            rng.choice(ONSETS) + rng.choice(VOWELS) + rng.choice(CODAS) for _ in range(syllables)
        ]
        names.append("".join(parts) + rng.choice(ENDINGS))
    return names
