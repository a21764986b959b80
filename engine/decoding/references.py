"""The text that truly follows a prompt, from the held-out split, for chrF in comparisons.

chrF scores a continuation against a reference, and a reference exists only
where the model's training text goes on. The compare view gets one in two
ways: a prompt the user typed that occurs in the held-out split (the text
after its first occurrence), or a prompt cut from the held-out split at a
place the seed picks (so `r`, a new seed, is a new prompt). Only the held-out
split is used: a reference the model trained on would reward memorising.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from engine.data.corpus import Corpus
from engine.data.items import decode_ids

MIN_LOOKUP_CHARS = 8  # shorter prompts occur everywhere: "the" is no reference
MAX_SEARCH_CHARS = 5_000_000  # a bigger split is searched in its first 5 M characters
PROMPT_CHARS = 64
LINE_START_SEARCH = 200  # a cut prompt starts at the next line start when one is this close


@dataclass(frozen=True)
class Reference:
    """A prompt, the text that follows it, and where it was found (for the title)."""

    prompt: str
    text: str
    offset: int  # character offset of the prompt in the held-out split


def held_out_text(corpus: Corpus, val_fraction: float) -> str:
    """The held-out split as text (its first MAX_SEARCH_CHARS characters)."""
    _, val = corpus.split(val_fraction)
    return decode_ids(corpus.vocab.chars, val[:MAX_SEARCH_CHARS])


def reference_after(held_out: str, prompt: str, length: int) -> Reference | None:
    """The `length` characters after the first occurrence of `prompt` that has that many."""
    if len(prompt) < MIN_LOOKUP_CHARS:
        return None
    start = held_out.find(prompt)
    while start >= 0:
        end = start + len(prompt)
        if end + length <= len(held_out):
            return Reference(prompt, held_out[end : end + length], start)
        start = held_out.find(prompt, start + 1)
    return None


def held_out_prompt(
    held_out: str, length: int, seed: int, prompt_chars: int = PROMPT_CHARS
) -> Reference | None:
    """A prompt of `prompt_chars` cut at a seeded place, starting a line where one is near."""
    room = len(held_out) - prompt_chars - length
    if room < 0:
        return None
    start = random.Random(seed).randrange(room + 1)
    line = held_out.find("\n", start, start + LINE_START_SEARCH)
    if line >= 0 and line + 1 <= room:
        start = line + 1
    end = start + prompt_chars
    return Reference(held_out[start:end], held_out[end : end + length], start)
