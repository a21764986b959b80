"""The seed notebook's Part 6 table: several decoding strategies side by side, with statistics.

The strategy list lives here (not in the CLI) so the TUI shows the same table.
Every row uses the same prompt and seed, so rows differ only by strategy.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

from engine.data.items import item_novelty
from engine.decoding.generator import Generator
from engine.decoding.items import generate_items
from engine.decoding.params import SamplingParams
from engine.decoding.quality import chrf
from engine.decoding.scoring import continuation_log_likelihood
from engine.decoding.textstats import TextStats, sample_statistics

# (row name, SamplingParams fields that differ from the defaults)
STRATEGIES: tuple[tuple[str, dict], ...] = (
    ("greedy", {"strategy": "greedy"}),
    ("temperature 0.5", {"temperature": 0.5}),
    ("temperature 1.0", {"temperature": 1.0}),
    ("temperature 1.5", {"temperature": 1.5}),
    ("top-k 10", {"top_k": 10}),
    ("top-p 0.9", {"top_p": 0.9}),
    ("min-p 0.1", {"min_p": 0.1}),
    ("beam 5", {"strategy": "beam", "beam_width": 5}),
)


@dataclass
class CompareRow:
    strategy: str
    settings: dict
    stats: TextStats
    samples: list[str]
    seconds: float
    # Line-per-item models: novelty of the generated items against the corpus's items.
    item_novelty: dict | None = None
    # With a reference continuation: chrF (0-100) of the samples against it.
    chrf: float | None = None

    @property
    def chars_per_s(self) -> float:
        return self.stats.chars / self.seconds if self.seconds > 0 else 0.0

    def as_dict(self) -> dict:
        return {
            "strategy": self.strategy,
            "settings": self.settings,
            **self.stats.as_dict(),
            "seconds": self.seconds,
            "chars_per_s": self.chars_per_s,
            "samples": self.samples,
            "item_novelty": self.item_novelty,
            "chrf": self.chrf,
        }


def compare_strategies(
    generator: Generator,
    prompt: str = "",
    *,
    length: int = 200,
    num_samples: int = 3,
    seed: int | None = None,
    corpus_words: frozenset[str] | None = None,
    items: bool = False,
    item_sets: tuple[frozenset[str], frozenset[str]] | None = None,
    reference: str | None = None,
    drop_unknown: bool = False,
    strategies: Sequence[tuple[str, dict]] = STRATEGIES,
    cancel: threading.Event | None = None,
    on_row: Callable[[CompareRow], None] | None = None,
) -> list[CompareRow]:
    """One row per strategy: `num_samples` continuations of `prompt` and their statistics.

    A seed of None picks one at random, shared by every row. Beam search returns
    its best min(num_samples, beam_width) beams. `on_row` sees each row as it is
    done; `cancel` stops between rows. With `items` (a line-per-item model) every
    sample is one whole item started from a fresh line; with `item_sets` (the
    training and held-out items of its corpus) too, each row reports the items'
    novelty against both sets. With `reference` (the text that truly follows the
    prompt) each row's samples get a chrF against it (sacrebleu).
    """
    if seed is None:
        seed = secrets.randbelow(2**31)
    base = SamplingParams(length=length, seed=seed)
    prompt_ids = generator.vocab.encode(prompt, drop_unknown=drop_unknown)
    items = items or item_sets is not None
    rows = []
    for name, settings in strategies:
        if cancel is not None and cancel.is_set():
            break
        params = replace(base, **settings)
        started = time.perf_counter()
        if items:
            count = (
                min(num_samples, params.beam_width) if params.strategy == "beam" else num_samples
            )
            samples = generate_items(generator, count, params, prompt, drop_unknown=drop_unknown)
        elif params.strategy == "beam":
            count = min(num_samples, params.beam_width)
            beams = generator.beam_search(prompt, params, count, drop_unknown=drop_unknown)
            samples = [beam.text for beam in beams]
        else:
            samples = generator.generate(prompt, params, num_samples, drop_unknown=drop_unknown)
        seconds = time.perf_counter() - started
        context = prompt_ids
        if items:  # an item's context is a fresh line, then the prompt
            context = generator.vocab.encode("\n" + prompt, drop_unknown=drop_unknown)
        logprobs = [
            continuation_log_likelihood(
                generator.model,
                context,
                generator.vocab.encode(s[len(prompt) :] if items else s),
                generator.unigram,
            )
            for s in samples
        ]
        stats = sample_statistics(
            samples, prompt=prompt, logprobs=logprobs, corpus_words=corpus_words
        )
        row = CompareRow(name, dict(settings), stats, samples, seconds)
        if item_sets is not None:
            row.item_novelty = item_novelty(samples, *item_sets)
        if reference:
            row.chrf = chrf(samples, [reference] * len(samples))
        rows.append(row)
        if on_row is not None:
            on_row(row)
    return rows


def compare_conditions(
    generator_for: Callable[[str], Generator],
    conditions: Sequence[str],
    prompt: str = "",
    *,
    length: int = 200,
    num_samples: int = 3,
    seed: int | None = None,
    corpus_words: frozenset[str] | None = None,
    drop_unknown: bool = False,
    settings: dict | None = None,
    cancel: threading.Event | None = None,
    on_row: Callable[[CompareRow], None] | None = None,
) -> list[CompareRow]:
    """One row per condition (a label, or "none") with one strategy (`settings`, default
    sampling at temperature 1), so rows differ only by the label they were asked for."""
    strategy = ("sample", dict(settings or {"temperature": 1.0}))
    rows = []
    for name in conditions:
        if cancel is not None and cancel.is_set():
            break
        row = compare_strategies(
            generator_for(name),
            prompt,
            length=length,
            num_samples=num_samples,
            seed=seed,
            corpus_words=corpus_words,
            drop_unknown=drop_unknown,
            strategies=(strategy,),
        )[0]
        row.strategy = name
        rows.append(row)
        if on_row is not None:
            on_row(row)
    return rows
