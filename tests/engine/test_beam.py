"""Beam search: batched over beams, exact against exhaustive search, width 1 == greedy."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch

from engine.data.corpus import Vocab
from engine.decoding.generator import Generator
from engine.decoding.params import BeamResult, SamplingParams
from engine.errors import ConfigError
from tests.helpers import context_generator

SETTINGS = {
    "lstm": {"embed_dim": 8, "hidden_size": 24, "num_layers": 1, "dropout": 0.0},
    "transformer": {"n_layer": 2, "n_head": 2, "n_embd": 16, "block_size": 8, "dropout": 0.0},
}


@pytest.fixture(scope="module")
def vocab() -> Vocab:
    return Vocab(sorted("abcde .\n"))


def make_generator(kind: str, vocab: Vocab, unigram=None) -> Generator:
    return context_generator(kind, vocab, SETTINGS, seed=1, unigram=unigram)


@pytest.fixture(scope="module", params=list(SETTINGS))
def gen(request, vocab) -> Generator:
    return make_generator(request.param, vocab)


@pytest.fixture(scope="module")
def lstm(vocab) -> Generator:
    return make_generator("lstm", vocab)


def full_logprob(model, prompt_ids: list[int], text_ids: list[int]) -> float:
    """log P(text | prompt) from one forward over prompt + text (no window involved)."""
    ids = torch.tensor([prompt_ids + text_ids])
    with torch.no_grad():
        logits, _ = model(ids[:, :-1])
    log_probs = torch.log_softmax(logits[0].double(), dim=-1)
    positions = range(len(prompt_ids) - 1, ids.shape[1] - 1)
    return sum(log_probs[p, ids[0, p + 1]].item() for p in positions)


@pytest.mark.parametrize("prompt", ["ab", "", "abcde abcde ab"])
def test_width_one_is_greedy(gen, prompt):
    length = 30  # the Transformer's window (8) slides several times
    beam = gen.beam_search(prompt, SamplingParams(beam_width=1, length=length, seed=3))
    greedy = gen.generate(prompt, SamplingParams(strategy="greedy", length=length, seed=3))
    assert [b.text for b in beam] == greedy
    as_strategy = SamplingParams(strategy="beam", beam_width=1, length=length, seed=3)
    assert gen.generate(prompt, as_strategy) == greedy


def test_width_one_is_greedy_with_stop_strings(lstm):
    greedy = lstm.generate("ab", SamplingParams(strategy="greedy", length=60))[0]
    stop = greedy[10:12]
    params = {"length": 60, "stop": (stop,)}
    cut = greedy[: greedy.find(stop) + len(stop)]
    assert lstm.generate("ab", SamplingParams(strategy="greedy", **params))[0] == cut
    assert lstm.beam_search("ab", SamplingParams(beam_width=1, **params))[0].text == cut


def test_beams_are_sorted_and_their_logprobs_are_right(lstm, vocab):
    prompt = "abc"
    beams = lstm.beam_search(prompt, SamplingParams(beam_width=6, length=25), num_return=6)
    assert len(beams) == 6
    assert len({b.text for b in beams}) == 6
    assert [b.score for b in beams] == sorted((b.score for b in beams), reverse=True)
    for beam in beams:
        assert len(beam.text) == 25
        expected = full_logprob(
            lstm.model, vocab.encode(prompt).tolist(), vocab.encode(beam.text).tolist()
        )
        assert beam.logprob == pytest.approx(expected, abs=1e-3)
        assert beam.score == pytest.approx(beam.logprob / 25**1.0)


def test_empty_prompt_beam_counts_the_unigram_start(vocab):
    weights = np.zeros(len(vocab))
    weights[vocab.index["d"]], weights[vocab.index["e"]] = 1.0, 3.0
    g = make_generator("lstm", vocab, unigram=weights)
    for seed in range(4):
        beam = g.beam_search("", SamplingParams(beam_width=3, length=10, seed=seed))[0]
        start = beam.text[0]
        assert start in "de"
        rest = full_logprob(g.model, [vocab.index[start]], vocab.encode(beam.text[1:]).tolist())
        assert beam.logprob == pytest.approx(
            math.log(weights[vocab.index[start]] / 4) + rest, abs=1e-3
        )


def test_wide_beam_equals_exhaustive_search(gen, vocab):
    """With beam_width >= V**(L-1) nothing is ever pruned: the best beams are the best
    sequences, found here by scoring all V**L of them."""
    prompt, length = "ab", 3
    size = len(vocab)
    beams = gen.beam_search(
        prompt, SamplingParams(beam_width=size ** (length - 1), length=length), num_return=4
    )
    prompt_ids = vocab.encode(prompt).tolist()
    scored = sorted(
        (
            (full_logprob(gen.model, prompt_ids, list(seq)), vocab.decode(seq))
            for seq in itertools.product(range(size), repeat=length)
        ),
        reverse=True,
    )
    assert [b.text for b in beams] == [text for _, text in scored[:4]]
    assert [b.logprob for b in beams] == pytest.approx([lp for lp, _ in scored[:4]], abs=1e-4)


def test_one_forward_call_per_step_for_all_beams(lstm):
    """One call into the model per step (`forward`, or a recurrent model's `step_one`)."""
    shapes = []
    original, original_step = lstm.model.forward, lstm.model.step_one

    def counting(tokens, state=None):
        shapes.append(tuple(tokens.shape))
        return original(tokens, state)

    def counting_step(tokens, state):
        shapes.append((tokens.shape[0], 1))
        return original_step(tokens, state)

    lstm.model.forward, lstm.model.step_one = counting, counting_step
    try:
        lstm.beam_search("abc", SamplingParams(beam_width=7, length=12))
    finally:
        del lstm.model.forward, lstm.model.step_one
    assert shapes == [(1, 3)] + [(7, 1)] * 11


def test_stop_strings_finish_beams_and_length_penalty_ranks_them(lstm):
    free = lstm.beam_search("ab", SamplingParams(beam_width=4, length=40), num_return=4)
    stop = free[0].text[5:7]
    for alpha in (0.0, 1.0, 2.0):
        params = SamplingParams(beam_width=4, length=40, stop=(stop,), length_penalty=alpha)
        beams = lstm.beam_search("ab", params, num_return=4)
        assert beams, "some beam must come back"
        for beam in beams:
            assert beam.score == pytest.approx(beam.logprob / len(beam.text) ** alpha)
            if len(beam.text) < 40:
                assert beam.text.endswith(stop)
                assert stop not in beam.text[: -len(stop)]
        assert [b.score for b in beams] == sorted((b.score for b in beams), reverse=True)
    # With no length normalisation, shorter finished beams (higher log-probability) win.
    plain = lstm.beam_search(
        "ab", SamplingParams(beam_width=4, length=40, stop=(stop,), length_penalty=0.0)
    )
    assert plain[0].text.endswith(stop)


def test_beam_parameters_are_checked(lstm):
    with pytest.raises(ConfigError):
        lstm.beam_search("ab", SamplingParams(beam_width=3), num_return=4)
    with pytest.raises(ConfigError):
        lstm.beam_search("ab", SamplingParams(beam_width=0))
    with pytest.raises(ConfigError):
        lstm.generate("ab", SamplingParams(strategy="beam", beam_width=2), num_samples=3)


def test_beam_width_larger_than_the_vocabulary(lstm, vocab):
    beams = lstm.beam_search("a", SamplingParams(beam_width=20, length=1), num_return=20)
    assert sorted(b.text for b in beams) == sorted(vocab.chars)  # only V distinct ones exist


def test_zero_length_and_generate_returns_best_beams(lstm):
    assert lstm.beam_search("ab", SamplingParams(length=0)) == [BeamResult("", 0.0, 0.0)]
    params = SamplingParams(strategy="beam", beam_width=3, length=8)
    out = lstm.generate(["ab", "c"], params, num_samples=2)
    assert out[:2] == [b.text for b in lstm.beam_search("ab", params, 2)]
    assert out[2:] == [b.text for b in lstm.beam_search("c", params, 2)]
