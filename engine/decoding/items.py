"""Generating line-per-item text: N whole items, each ended by its newline.

The context of a fresh item is "\\n" (the end of the previous one), which is what
an items-trained model saw before every item's first character; a prompt is the
beginning of the item. An item is the prompt plus the continuation, without its
newline. `length` caps an item that never ends (it is returned cut).
"""

from __future__ import annotations

from dataclasses import replace

from engine.decoding.generator import Generator
from engine.decoding.params import SamplingParams
from engine.errors import ConfigError, CorpusError


def generate_items(
    generator: Generator,
    count: int,
    params: SamplingParams,
    prompt: str = "",
    *,
    drop_unknown: bool = False,
) -> list[str]:
    """`count` items that start with `prompt` (beam search: the `count` best beams)."""
    if count < 1:
        raise ConfigError(f"--items must be at least 1, got {count}")
    if "\n" not in generator.vocab.index:
        raise CorpusError("the model's vocabulary has no newline: it was not trained on items")
    if "\n" in prompt:
        raise ConfigError("an item prompt is one line: it cannot contain a newline")
    params = replace(params, stop=tuple(dict.fromkeys((*params.stop, "\n"))))
    continuations = generator.generate("\n" + prompt, params, count, drop_unknown=drop_unknown)
    return [prompt + text.split("\n", 1)[0] for text in continuations]
