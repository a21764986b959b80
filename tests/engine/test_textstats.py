"""Generation statistics: the seed's measures, distinct-n, repetition, novelty, self-perplexity,
and the strategy comparison built on them."""

from __future__ import annotations

import math
from collections import Counter

import numpy as np
import pytest
import torch

from engine.data.corpus import Vocab, load_corpus
from engine.decoding.compare import STRATEGIES, compare_strategies
from engine.decoding.generator import Generator
from engine.decoding.params import SamplingParams
from engine.decoding.scoring import continuation_chars, continuation_log_likelihood
from engine.decoding.textstats import (
    corpus_word_set,
    distinct_n,
    generated_words,
    novelty,
    repetition_rate,
    sample_statistics,
    seed_statistics,
    word_set,
)
from engine.models import build_model, make_config


def seed_analyze_generation_statistics(text, vocab_size):
    """The seed notebook's function, copied verbatim as the reference."""
    unique_chars = len(set(text))
    char_counts = Counter(text)
    entropy = -sum(
        (count / len(text)) * np.log(count / len(text)) for count in char_counts.values()
    )

    # Repetition: ratio of unique bigrams to total bigrams
    bigrams = [text[i : i + 2] for i in range(len(text) - 1)]
    unique_bigrams = len(set(bigrams))
    bigram_diversity = unique_bigrams / len(bigrams) if bigrams else 0

    return {
        "unique_chars": unique_chars,
        "entropy": entropy,
        "bigram_diversity": bigram_diversity,
    }


@pytest.mark.parametrize(
    "text", ["a", "abab", "the quick brown fox jumps over the lazy dog\n\n", "zzzzzz", "aab"]
)
def test_seed_statistics_match_the_seed(text):
    ours = seed_statistics(text)
    theirs = seed_analyze_generation_statistics(text, 65)
    assert ours["unique_chars"] == theirs["unique_chars"]
    assert ours["entropy"] == pytest.approx(float(theirs["entropy"]))
    assert ours["bigram_diversity"] == pytest.approx(theirs["bigram_diversity"])


def test_seed_statistics_by_hand():
    stats = seed_statistics("aab")
    assert stats["unique_chars"] == 2
    assert stats["entropy"] == pytest.approx(-(2 / 3) * math.log(2 / 3) - (1 / 3) * math.log(1 / 3))
    assert stats["bigram_diversity"] == 1.0
    assert seed_statistics("")["bigram_diversity"] == 0.0


def test_distinct_n_by_hand():
    assert distinct_n(["abab"], 1) == 2 / 4
    assert distinct_n(["abab"], 2) == 2 / 3  # ab, ba, ab
    assert distinct_n(["ab", "ab"], 2) == 1 / 2  # no bigram across samples ("ba")
    assert distinct_n(["abc"], 3) == 1.0
    assert distinct_n(["ab"], 3) == 0.0


def test_repetition_rate_by_hand():
    # 4-grams of abcabcabc: abca bcab cabc abca bcab cabc: 3 of 6 repeat an earlier one.
    assert repetition_rate(["abcabcabc"]) == 0.5
    assert repetition_rate(["abcdefg"]) == 0.0
    # Repeats are counted inside a sample, not across samples.
    assert repetition_rate(["abcde", "abcde"]) == 0.0
    assert repetition_rate(["aaaaaa", "abcd"]) == pytest.approx(2 / 4)


def test_novelty_words():
    corpus = word_set("The cat sat. A dog ran!")
    assert corpus == {"the", "cat", "sat", "a", "dog", "ran"}
    assert novelty(["the bird sat "], corpus) == pytest.approx(1 / 3)
    assert novelty(["the do"], corpus) == 0.0  # "do" may be cut off by the length limit
    assert novelty(["do"], corpus) is None  # no finished word at all
    # A word the prompt started counts whole; words inside the prompt are not counted.
    assert generated_words("the c", "at sat ") == ["cat", "sat"]
    assert novelty(["at sat "], corpus, prompt="zebra the c") == 0.0
    assert novelty(["og xyz."], corpus, prompt="a d") == pytest.approx(1 / 2)


def test_corpus_word_set_is_the_word_set_of_its_text(tmp_path):
    text = "The cat sat.\nA DOG ran, the cat too!\n"
    (tmp_path / "c.txt").write_text(text, encoding="utf-8")
    corpus = load_corpus(str(tmp_path / "c.txt"))
    assert (
        corpus_word_set(corpus) == word_set(text) == {"the", "cat", "sat", "a", "dog", "ran", "too"}
    )


def test_sample_statistics_combines_everything():
    samples = ["abab ", "cd ab "]
    stats = sample_statistics(
        samples,
        logprobs=[np.log([0.5, 0.5]), np.log([0.25, 0.25])],
        corpus_words=frozenset({"ab"}),
    )
    joined = seed_statistics("".join(samples))
    assert stats.unique_chars == joined["unique_chars"]
    assert stats.entropy == pytest.approx(joined["entropy"])
    assert stats.samples == 2 and stats.chars == 11
    assert stats.distinct_1 == pytest.approx(distinct_n(samples, 1))
    assert stats.mean_logprob == pytest.approx((2 * math.log(0.5) + 2 * math.log(0.25)) / 4)
    assert stats.perplexity == pytest.approx(math.exp(-stats.mean_logprob))
    assert stats.novelty == pytest.approx(2 / 3)  # abab and cd are new, ab is known
    bare = sample_statistics(samples)
    assert bare.mean_logprob is None and bare.perplexity is None and bare.novelty is None


# ----- with a model ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def generator() -> Generator:
    vocab = Vocab(sorted("abcd efg.\n"))
    torch.manual_seed(0)
    config = make_config("lstm", vocab_size=len(vocab), embed_dim=8, hidden_size=16, num_layers=1)
    model = build_model(config).eval()
    with torch.no_grad():
        model.head.weight.mul_(5.0)
    return Generator(model, vocab, np.arange(1, len(vocab) + 1))


def test_scoring_equals_a_full_forward(generator):
    vocab, model = generator.vocab, generator.model
    prompt, text = vocab.encode("abc"), vocab.encode("d.efg\nab")
    scored = continuation_log_likelihood(model, prompt, text, generator.unigram)
    with torch.no_grad():
        logits, _ = model(torch.as_tensor(np.concatenate([prompt, text]))[None])
    full = torch.log_softmax(logits[0].double(), dim=-1)
    expected = [full[2 + i, text[i]].item() for i in range(text.size)]
    assert scored == pytest.approx(expected, abs=1e-5)
    # An empty prompt: the first character is scored by the unigram.
    alone = continuation_log_likelihood(model, prompt[:0], text, generator.unigram)
    assert alone[0] == pytest.approx(math.log(generator.unigram[text[0]].item()), abs=1e-6)


def test_continuation_chars_colour_a_text_with_its_scores(generator):
    """What a beam's whole text is coloured with: the scores, plus the top alternatives."""
    vocab, model = generator.vocab, generator.model
    for prompt in ("abc", ""):
        text = "d.efg\nab"
        rows = list(continuation_chars(model, vocab, generator.unigram, prompt, text))
        scored = continuation_log_likelihood(
            model, vocab.encode(prompt), vocab.encode(text), generator.unigram
        )
        assert "".join(r[0] for r in rows) == text
        assert [r[1] for r in rows] == pytest.approx(np.exp(scored), abs=1e-5)
        assert all(r[1] == r[2] for r in rows)
        for char, prob, _, top in rows:
            assert len(top) == 5 and top == sorted(top, key=lambda t: -t[1])
            assert prob <= top[0][1] + 1e-6
            assert (char in dict(top)) == (prob >= top[-1][1] - 1e-9)
    # Characters outside the vocabulary are dropped, as generation drops them.
    assert (
        "".join(r[0] for r in continuation_chars(model, vocab, generator.unigram, "a", "bXc"))
        == "bc"
    )


def test_compare_strategies_rows(generator):
    seen = []
    rows = compare_strategies(
        generator,
        "ab",
        length=40,
        num_samples=2,
        seed=3,
        on_row=seen.append,
        corpus_words=word_set("abc de fg"),
    )
    assert [r.strategy for r in rows] == [name for name, _ in STRATEGIES]
    assert seen == rows
    names = [r.strategy for r in rows]
    assert names[:4] == ["greedy", "temperature 0.5", "temperature 1.0", "temperature 1.5"]
    by_name = {r.strategy: r for r in rows}
    for row in rows:
        assert len(row.samples) == 2 and all(len(s) == 40 for s in row.samples)
        assert row.stats.mean_logprob is not None and row.stats.mean_logprob < 0
        assert row.as_dict()["strategy"] == row.strategy
    greedy = by_name["greedy"]
    assert greedy.samples[0] == greedy.samples[1]  # deterministic
    assert greedy.samples[0] == generator.generate("ab", SamplingParams("greedy", length=40))[0]
    beam = by_name["beam 5"]
    assert beam.samples == [
        b.text for b in generator.beam_search("ab", SamplingParams(length=40, beam_width=5), 2)
    ]
    # The model finds its own greedy and beam text likelier than high-temperature samples.
    hot = by_name["temperature 1.5"].stats.mean_logprob
    assert beam.stats.mean_logprob > hot and greedy.stats.mean_logprob > hot
    # Same seed, same table.
    again = compare_strategies(generator, "ab", length=40, num_samples=2, seed=3)
    assert [r.samples for r in again] == [r.samples for r in rows]


def test_compare_can_be_cancelled(generator):
    import threading

    cancel = threading.Event()
    rows = compare_strategies(
        generator,
        "",
        length=10,
        num_samples=1,
        seed=0,
        cancel=cancel,
        on_row=lambda row: cancel.set(),
    )
    assert len(rows) == 1
