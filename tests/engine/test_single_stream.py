"""One plain stream decoded as a NumPy loop (engine/decoding/single_stream.py): the same
text as the general loop and as `stream` for every seed, and only where it applies."""

from __future__ import annotations

import pytest
import torch

from engine.data.corpus import Vocab
from engine.decoding import generator as generator_module
from engine.decoding import single_stream
from engine.decoding.params import SamplingParams
from tests.helpers import context_generator

CHARS = " .\nabcdefgh"
SETTINGS = {
    "lstm": {"embed_dim": 8, "hidden_size": 16, "num_layers": 2, "dropout": 0.0},
    "gru": {"embed_dim": 8, "hidden_size": 16, "num_layers": 2, "dropout": 0.0},
    "rnn": {"embed_dim": 8, "hidden_size": 16, "num_layers": 1, "dropout": 0.0},
}


@pytest.fixture(scope="module")
def vocab() -> Vocab:
    return Vocab(sorted(CHARS))


class Counting:
    """Wraps sample_stream in the generator module: how often the NumPy loop ran."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.calls = 0
        original = single_stream.sample_stream

        def counted(*args, **kwargs):
            self.calls += 1
            return original(*args, **kwargs)

        monkeypatch.setattr(generator_module, "sample_stream", counted)


@pytest.mark.parametrize("kind", list(SETTINGS))
@pytest.mark.parametrize("temperature", [0.0, 0.7, 1.0, 1.6])
def test_the_numpy_loop_writes_what_the_general_loop_and_stream_write(
    vocab: Vocab, kind: str, temperature: float, monkeypatch: pytest.MonkeyPatch
) -> None:
    gen = context_generator(kind, vocab, SETTINGS, seed=4)
    counting = Counting(monkeypatch)
    for seed, prompt in ((1, "ab"), (2, ""), (3, "h.e")):
        params = SamplingParams(length=120, seed=seed, temperature=temperature)
        fast = gen.generate(prompt, params)[0]
        streamed = "".join(info.char for info in gen.stream(prompt, params))
        with monkeypatch.context() as general:
            general.setattr(generator_module, "single_stream_plan", lambda *a: None)
            slow = gen.generate(prompt, params)[0]
        assert fast == slow == streamed
        assert len(fast) == 120
    assert counting.calls == 3


def test_the_loop_runs_only_for_one_plain_stream(
    vocab: Vocab, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Truncation, penalties, stop strings, several samples, a Transformer or the torch
    backend take the general loop; one row with a temperature takes the NumPy one."""
    gen = context_generator("lstm", vocab, SETTINGS, seed=4)
    counting = Counting(monkeypatch)
    gen.generate("ab", SamplingParams(length=20, seed=1, temperature=0.8))
    assert counting.calls == 1
    for params in (
        SamplingParams(length=20, seed=1, top_k=3),
        SamplingParams(length=20, seed=1, top_p=0.9),
        SamplingParams(length=20, seed=1, min_p=0.1),
        SamplingParams(length=20, seed=1, repetition_penalty=1.3),
        SamplingParams(length=20, seed=1, stop=("a",)),
    ):
        gen.generate("ab", params)
    gen.generate("ab", SamplingParams(length=20, seed=1), num_samples=2)
    monkeypatch.setenv("CHARLM_DECODE_BACKEND", "torch")
    gen.generate("ab", SamplingParams(length=20, seed=1))
    monkeypatch.delenv("CHARLM_DECODE_BACKEND")
    transformer = context_generator(
        "transformer",
        vocab,
        {"transformer": {"n_layer": 1, "n_head": 2, "n_embd": 16, "block_size": 16}},
        seed=4,
    )
    transformer.generate("ab", SamplingParams(length=20, seed=1))
    assert counting.calls == 1


def test_the_loop_never_draws_a_character_of_probability_zero(
    vocab: Vocab, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A head that gives most characters -inf (and one NaN): only the others appear."""
    gen = context_generator("gru", vocab, SETTINGS, seed=4)
    allowed = [vocab.index[c] for c in "abc"]
    with torch.no_grad():
        bias = torch.full((len(vocab),), float("-inf"))
        bias[allowed] = 0.0
        bias[vocab.index["h"]] = float("nan")
        gen.model.head.bias.copy_(bias)
    counting = Counting(monkeypatch)
    text = gen.generate("ab", SamplingParams(length=300, seed=7))[0]
    assert counting.calls == 1
    assert set(text) <= set("abc") and set(text) == set("abc")


def test_filters_set_to_off_still_take_the_loop_and_write_the_same(
    vocab: Vocab, monkeypatch: pytest.MonkeyPatch
) -> None:
    """top-k 0, top-p 1 and min-p 0 filter nothing (the app's knobs at their off end):
    the stream is the plain one's, through the NumPy loop."""
    gen = context_generator("lstm", vocab, SETTINGS, seed=4)
    counting = Counting(monkeypatch)
    plain = gen.generate("ab", SamplingParams(length=60, seed=5, temperature=0.9))[0]
    off = SamplingParams(length=60, seed=5, temperature=0.9, top_k=0, top_p=1.0, min_p=0.0)
    assert gen.generate("ab", off)[0] == plain
    assert counting.calls == 2
