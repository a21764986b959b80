"""Blends of models: mixture and product math, merged vocabularies, every decoding path,
per-member states, blended evaluation and EM-fitted weights."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch

from engine.data.corpus import Vocab
from engine.decoding.blend import (
    PRODUCT_FLOOR,
    BlendedModel,
    check_weights,
    fit_mixture_weights,
)
from engine.decoding.generator import Generator
from engine.decoding.params import SamplingParams
from engine.errors import ConfigError
from engine.models import CharLM
from engine.training.evaluate import evaluate_split
from tests.helpers import assert_one_line, tiny_model


class FixedLM(CharLM):
    """The same next-character distribution everywhere; records what it was fed."""

    def __init__(self, probs: list[float]) -> None:
        super().__init__()
        self.logits = torch.nn.Parameter(torch.log(torch.tensor(probs)))
        self.fed: list[list[int]] = []

    def forward(self, tokens, state=None, condition=None):
        self.fed.append(tokens[0].tolist())
        return self.logits.expand(*tokens.shape, -1), state

    def select_state(self, state, index):
        return state

    def state_positions(self, state):
        return 0


def _two_members(blend: str, weights: list[float]) -> tuple[BlendedModel, FixedLM, FixedLM]:
    a, b = FixedLM([0.5, 0.3, 0.2]), FixedLM([0.6, 0.2, 0.2])
    unigrams = [np.array([0.1, 0.7, 0.2]), np.array([0.2, 0.2, 0.6])]
    model = BlendedModel([a, b], [Vocab("abc"), Vocab("bcd")], weights, blend, unigrams)
    return model, a, b


def test_mixture_is_the_weighted_average_of_probabilities_over_merged_vocab() -> None:
    model, _, _ = _two_members("mixture", [1.0, 3.0])  # normalised to 0.25, 0.75
    assert model.vocab.chars == ("a", "b", "c", "d")
    logits, _ = model(torch.tensor([[0, 1]]))
    expected = [0.25 * 0.5, 0.25 * 0.3 + 0.75 * 0.6, 0.25 * 0.2 + 0.75 * 0.2, 0.75 * 0.2]
    torch.testing.assert_close(logits[0, 0].exp(), torch.tensor(expected))


def test_product_is_the_renormalised_weighted_geometric_mean_with_a_floor() -> None:
    model, _, _ = _two_members("product", [1.0, 1.0])
    logits, _ = model(torch.tensor([[0]]))
    raw = torch.tensor(
        [
            math.sqrt(0.5 * PRODUCT_FLOOR),  # 'a': b never saw it, floored
            math.sqrt(0.3 * 0.6),
            math.sqrt(0.2 * 0.2),
            math.sqrt(PRODUCT_FLOOR * 0.2),  # 'd': a never saw it, floored
        ]
    )
    torch.testing.assert_close(logits[0, 0].exp(), raw / raw.sum())


def test_a_member_is_fed_its_own_ids_and_its_most_common_char_for_unknown_ones() -> None:
    model, a, b = _two_members("mixture", [0.5, 0.5])
    model(torch.tensor([[0, 1, 3]]))  # "abd" in the merged vocabulary
    assert a.fed[-1] == [0, 1, 1]  # 'd' is unknown to a: its most common char 'b' (id 1)
    assert b.fed[-1] == [2, 0, 2]  # 'a' is unknown to b: its most common char 'd' (id 2)


@pytest.mark.parametrize(
    ("weights", "fragment"),
    [([1.0], "1 values for 2"), ([-1.0, 2.0], ">= 0"), ([0.0, 0.0], "all zero"),
     ([float("nan"), 1.0], ">= 0")],
)  # fmt: skip
def test_bad_weights_are_one_line_errors(weights: list[float], fragment: str) -> None:
    with pytest.raises(ConfigError) as info:
        check_weights(weights, 2)
    assert_one_line(info.value, fragment)


VOCAB = Vocab(sorted(set("abcdefgh .\n")))


def _random_model(kind: str, seed: int):
    model = tiny_model(kind, vocab_size=len(VOCAB), seed=seed, dropout=0.0)
    with torch.no_grad():
        for param in model.parameters():
            param.normal_(0.0, 0.5)
    return model.eval()


def test_a_blend_of_a_model_with_itself_decodes_as_that_model() -> None:
    model = _random_model("lstm", 1)
    greedy = SamplingParams(strategy="greedy", length=25)
    alone = Generator(model, VOCAB).generate("ab", greedy)[0]
    for blend in ("mixture", "product"):
        both = BlendedModel([model, model], [VOCAB, VOCAB], [0.3, 0.7], blend)
        assert Generator(both, VOCAB).generate("ab", greedy)[0] == alone


def test_members_of_different_architectures_keep_their_own_states() -> None:
    lstm, transformer = _random_model("lstm", 2), _random_model("transformer", 3)
    blend = BlendedModel([lstm, transformer], [VOCAB, VOCAB], [0.5, 0.5])
    assert blend.max_context == transformer.max_context
    tokens = torch.randint(0, len(VOCAB), (2, 10))
    with torch.inference_mode():
        whole, _ = blend(tokens)
        state, steps = None, []
        for i in range(tokens.shape[1]):
            logits, state = blend(tokens[:, i : i + 1], state)
            steps.append(logits)
        torch.testing.assert_close(torch.cat(steps, 1), whole, atol=1e-5, rtol=1e-5)
        expected = torch.logsumexp(
            torch.stack(
                [
                    torch.log_softmax(lstm(tokens)[0], -1),
                    torch.log_softmax(transformer(tokens)[0], -1),
                ]
            )
            + math.log(0.5),
            dim=0,
        )
    torch.testing.assert_close(whole, expected, atol=1e-5, rtol=1e-5)
    generator = Generator(blend, VOCAB)
    greedy = SamplingParams(strategy="greedy", length=40)  # past the 24-position window
    streamed = "".join(t.char for t in generator.stream("abc", greedy))
    assert generator.generate(["abc", "abc"], greedy) == [streamed, streamed]
    beam = generator.beam_search("abc", SamplingParams(strategy="beam", beam_width=1, length=40))
    assert beam[0].text == streamed


def test_em_never_raises_the_loss_and_finds_the_best_weights() -> None:
    rng = np.random.default_rng(0)
    good = rng.uniform(0.3, 0.9, 400)
    bad = np.where(rng.random(400) < 0.7, 0.05, 0.95)
    log_probs = torch.log(torch.tensor(np.stack([good, bad])))
    weights, losses = fit_mixture_weights(log_probs, None, steps=60)
    assert all(b <= a + 1e-12 for a, b in itertools.pairwise(losses))
    grid = np.linspace(0.0, 1.0, 1001)
    brute = [-np.log(w * good + (1 - w) * bad).mean() for w in grid]
    assert losses[-1] == pytest.approx(min(brute), abs=1e-4)
    assert weights[0] == pytest.approx(grid[int(np.argmin(brute))], abs=0.01)


def test_blended_eval_of_identical_members_equals_the_single_model(tmp_path) -> None:
    from engine.decoding.blend_eval import evaluate_blend
    from engine.runs.checkpoint import load_checkpoint, save_checkpoint

    model = _random_model("gru", 4)
    save_checkpoint(tmp_path, model=model, vocab=VOCAB, meta={})
    checkpoint = load_checkpoint(tmp_path)
    ids = np.random.default_rng(1).integers(0, len(VOCAB), 3000)
    single = evaluate_split(checkpoint.model, ids).loss
    for blend in ("mixture", "product"):
        result = evaluate_blend(
            [checkpoint, checkpoint], ids, VOCAB, [0.2, 0.8], blend, torch.device("cpu")
        )
        assert result.loss == pytest.approx(single, rel=1e-5)
        assert result.member_losses == pytest.approx([single, single], rel=1e-5)
