"""Statistics of a set of generated samples: diversity, repetition, self-perplexity, novelty.

- `seed_statistics(text)`: the seed notebook's `analyze_generation_statistics`,
  same definitions (unique characters, character entropy in nats, bigram
  diversity = unique bigrams / bigrams). Like the notebook's Part 6,
  `sample_statistics` applies it to the samples joined into one string.
- distinct-n (Li et al. 2016, on characters): unique n-grams / n-grams, n-grams
  taken inside each sample (none spans two samples), pooled over the set.
- repetition rate: the share of a sample's 4-grams that already occurred earlier
  in the same sample, pooled over the set (0: nothing repeats; near 1: a loop).
- mean log-probability per character under the model (natural log) and its
  self-perplexity exp(-mean): how likely the model finds its own output. Needs
  the model; see engine/decoding/scoring.py.
- novelty: the share of generated words (runs of letters/digits, lower-cased)
  that never occur in the training corpus. Words wholly inside the prompt are
  not counted, a word the prompt started counts as the whole word, and a word
  cut off by the length limit at the end of a sample is left out (it is not a
  word the model finished).
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    from engine.data.corpus import Corpus

WORD = re.compile(r"[^\W_]+")
REPETITION_N = 4


def seed_statistics(text: str) -> dict[str, float]:
    """The seed notebook's analyze_generation_statistics, faithfully (entropy in nats)."""
    unique_chars = len(set(text))
    counts = Counter(text)
    entropy = -sum((c / len(text)) * math.log(c / len(text)) for c in counts.values())
    bigrams = [text[i : i + 2] for i in range(len(text) - 1)]
    bigram_diversity = len(set(bigrams)) / len(bigrams) if bigrams else 0.0
    return {
        "unique_chars": unique_chars,
        "entropy": float(entropy),
        "bigram_diversity": bigram_diversity,
    }


def ngrams(text: str, n: int) -> list[str]:
    return [text[i : i + n] for i in range(len(text) - n + 1)]


def distinct_n(samples: Sequence[str], n: int) -> float:
    """Unique character n-grams over all n-grams, n-grams taken inside each sample."""
    grams = [g for s in samples for g in ngrams(s, n)]
    return len(set(grams)) / len(grams) if grams else 0.0


def repetition_rate(samples: Sequence[str], n: int = REPETITION_N) -> float:
    """Share of n-grams that repeat an earlier n-gram of the same sample."""
    repeated = total = 0
    for sample in samples:
        grams = ngrams(sample, n)
        total += len(grams)
        repeated += len(grams) - len(set(grams))
    return repeated / total if total else 0.0


def word_set(text: str) -> frozenset[str]:
    """The lower-cased words of a text (a corpus), for novelty."""
    return frozenset(w.lower() for w in WORD.findall(text))


def corpus_word_set(corpus: Corpus) -> frozenset[str]:
    """The word set of a loaded corpus (the novelty reference), decoded in one numpy gather."""
    chars = np.asarray(corpus.vocab.chars, dtype=object)
    return word_set("".join(chars[np.asarray(corpus.ids)]))


def generated_words(prompt: str, sample: str) -> list[str]:
    """Words of `sample` as the model wrote them after `prompt` (see the module notes)."""
    text = prompt + sample
    words = []
    for match in WORD.finditer(text):
        if match.end() <= len(prompt):
            continue  # wholly the user's
        if match.end() == len(text):
            continue  # may be cut off by the length limit
        words.append(match.group().lower())
    return words


def novelty(
    samples: Sequence[str], corpus_words: Iterable[str] | frozenset[str], prompt: str = ""
) -> float | None:
    """Share of generated words not in `corpus_words`; None when no word was generated."""
    known = corpus_words if isinstance(corpus_words, (set, frozenset)) else set(corpus_words)
    words = [w for s in samples for w in generated_words(prompt, s)]
    if not words:
        return None
    return sum(w not in known for w in words) / len(words)


@dataclass
class TextStats:
    """Everything `charlm-tui compare` reports for one strategy."""

    samples: int
    chars: int
    unique_chars: int
    entropy: float
    bigram_diversity: float
    distinct_1: float
    distinct_2: float
    distinct_3: float
    repetition_4: float
    mean_logprob: float | None = None  # nats/char under the model
    perplexity: float | None = None  # exp(-mean_logprob)
    novelty: float | None = None

    def as_dict(self) -> dict:
        return asdict(self)


def sample_statistics(
    samples: Sequence[str],
    *,
    prompt: str = "",
    logprobs: Sequence[np.ndarray] | None = None,
    corpus_words: frozenset[str] | None = None,
) -> TextStats:
    """Statistics of `samples` (continuations of `prompt`).

    `logprobs`: per-sample arrays of per-character log-probabilities (from
    engine.decoding.scoring), for mean log-probability and self-perplexity.
    `corpus_words`: the training corpus's word set, for novelty.
    """
    seed = seed_statistics("".join(samples))
    mean_logprob = perplexity = None
    if logprobs is not None:
        scored = np.concatenate([np.asarray(lp, dtype=np.float64) for lp in logprobs] or [[]])
        if scored.size:
            mean_logprob = float(scored.mean())
            perplexity = math.exp(min(-mean_logprob, 700.0))
    return TextStats(
        samples=len(samples),
        chars=sum(len(s) for s in samples),
        unique_chars=int(seed["unique_chars"]),
        entropy=seed["entropy"],
        bigram_diversity=seed["bigram_diversity"],
        distinct_1=distinct_n(samples, 1),
        distinct_2=distinct_n(samples, 2),
        distinct_3=distinct_n(samples, 3),
        repetition_4=repetition_rate(samples, REPETITION_N),
        mean_logprob=mean_logprob,
        perplexity=perplexity,
        novelty=novelty(samples, corpus_words, prompt) if corpus_words is not None else None,
    )
