"""Branching a generation: resuming from kept states gives what re-reading the text gives,
and feeds only the characters after the nearest kept state."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from engine.data.corpus import Vocab
from engine.decoding.params import SamplingParams
from engine.decoding.snapshots import StateSnapshots
from tests.helpers import context_generator

CHARS = " .\nabcdefgh"
SETTINGS = {
    "lstm": {"embed_dim": 8, "hidden_size": 24, "num_layers": 2, "dropout": 0.0},
    "gru": {"embed_dim": 8, "hidden_size": 16, "num_layers": 1, "dropout": 0.0},
    "transformer": {"n_layer": 2, "n_head": 2, "n_embd": 16, "block_size": 8, "dropout": 0.0},
}


@pytest.fixture(scope="module")
def vocab() -> Vocab:
    return Vocab(sorted(CHARS))


def _stream(generator, prompt: str, seed: int, length: int, snapshots=None) -> list:
    params = SamplingParams(strategy="sample", temperature=1.0, length=length, seed=seed)
    return list(generator.stream(prompt, params, snapshots=snapshots))


def _fed_positions(model) -> list[int]:
    """Count the positions each forward call feeds (a hook on the model)."""
    calls: list[int] = []
    model.register_forward_hook(lambda _m, args, _out: calls.append(int(args[0].shape[1])))
    return calls


@pytest.mark.parametrize("kind", list(SETTINGS))
def test_a_branch_from_snapshots_equals_one_from_scratch(vocab: Vocab, kind: str) -> None:
    generator = context_generator(kind, vocab, SETTINGS, seed=3)
    store = StateSnapshots(every=16)
    first = _stream(generator, "abc", seed=1, length=120, snapshots=store)
    text = "".join(info.char for info in first)
    fork = 70
    alternative = next(c for c, _ in first[fork].top if c != text[fork])
    prefix = "abc" + text[:fork] + alternative
    branched = _stream(generator, prefix, seed=9, length=60, snapshots=store)
    plain = _stream(generator, prefix, seed=9, length=60)
    assert [i.char for i in branched] == [i.char for i in plain]
    np.testing.assert_allclose(
        [i.model_prob for i in branched], [i.model_prob for i in plain], rtol=1e-4, atol=1e-6
    )
    if kind == "transformer":
        assert len(store) == 0  # a window is cheap to prime: nothing kept
    else:
        assert len(store) > 0


@pytest.mark.parametrize("kind", ["lstm", "gru"])
def test_a_branch_feeds_only_what_follows_the_nearest_state(vocab: Vocab, kind: str) -> None:
    generator = context_generator(kind, vocab, SETTINGS, seed=4)
    store = StateSnapshots(every=16)
    first = _stream(generator, "ab", seed=2, length=200, snapshots=store)
    text = "".join(info.char for info in first)
    calls = _fed_positions(generator.model)
    prefix = "ab" + text[:150] + "h"  # 153 characters: the kept state at 144 is nearest
    _stream(generator, prefix, seed=5, length=10, snapshots=store)
    assert calls[0] == len(prefix) - 144  # the priming call
    assert sum(calls) == len(prefix) - 144 + 9  # then one position per new character


def test_states_are_forgotten_for_another_model(vocab: Vocab) -> None:
    store = StateSnapshots(every=4)
    one = context_generator("lstm", vocab, SETTINGS, seed=1)
    two = context_generator("lstm", vocab, SETTINGS, seed=2)
    _stream(one, "abc", seed=1, length=30, snapshots=store)
    assert len(store) > 0
    assert store.bind(two.model)
    assert len(store) == 0
    ids = np.array(vocab.encode("abcabcabc"))
    assert store.nearest(ids) is None


def test_nearest_needs_a_shared_prefix_and_leaves_a_token(vocab: Vocab) -> None:
    store = StateSnapshots(every=2)
    history = torch.from_numpy(vocab.encode("abcdefgh")).unsqueeze(0)
    track = store.start(history)
    for position in range(1, 9):
        store.record(track, position, f"state{position}")
    assert store.nearest(np.array(vocab.encode("abcdefgh")))[0] == 6  # 8 would leave nothing
    assert store.nearest(np.array(vocab.encode("abcdhfgh")))[0] == 4  # diverges at 4
    assert store.nearest(np.array(vocab.encode("hbcd"))) is None
