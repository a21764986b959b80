"""Incremental, streaming and batched decoding: equal to full recomputation, reproducible,
exact in length, stop strings, unknown characters, the Transformer's sliding window."""

from __future__ import annotations

import threading

import numpy as np
import pytest
import torch

from engine.data.corpus import Vocab
from engine.decoding.generator import Generator
from engine.decoding.params import SamplingParams
from engine.decoding.scoring import continuation_log_likelihood
from engine.decoding.window import ContextWindow
from engine.errors import ConfigError, CorpusError
from engine.models import build_model, make_config
from tests.helpers import context_generator

CHARS = " .\nabcdefgh"
BLOCK = 8  # a tiny Transformer window, so short generations slide many times

MODEL_SETTINGS = {
    "lstm": {"embed_dim": 8, "hidden_size": 24, "num_layers": 1, "dropout": 0.0},
    "gru": {"embed_dim": 8, "hidden_size": 16, "num_layers": 2, "dropout": 0.0},
    "transformer": {"n_layer": 2, "n_head": 2, "n_embd": 16, "block_size": BLOCK, "dropout": 0.0},
}


@pytest.fixture(scope="module")
def vocab() -> Vocab:
    return Vocab(sorted(CHARS))


def make_generator(kind: str, vocab: Vocab, seed: int = 0, unigram=None) -> Generator:
    return context_generator(kind, vocab, MODEL_SETTINGS, seed=seed, unigram=unigram)


@pytest.fixture(scope="module", params=list(MODEL_SETTINGS))
def gen(request, vocab) -> Generator:
    return make_generator(request.param, vocab)


@pytest.fixture(scope="module")
def lstm(vocab) -> Generator:
    return make_generator("lstm", vocab)


@pytest.fixture(scope="module")
def transformer(vocab) -> Generator:
    return make_generator("transformer", vocab)


def full_log_probs(model, ids: list[int]) -> torch.Tensor:
    """Next-character log-probabilities at every position, from one full forward."""
    with torch.no_grad():
        logits, _ = model(torch.tensor([ids]))
    return torch.log_softmax(logits[0].float(), dim=-1)


# ----- incremental == full recompute ------------------------------------------------------


def test_stepping_equals_one_full_forward(gen, vocab):
    ids = vocab.encode("ab.cdh gfe\nba")
    assert ids.size <= BLOCK * 2
    n = min(ids.size, BLOCK)  # within one window, the Transformer needs no slide
    history = torch.as_tensor(ids[:n])[None]
    with torch.inference_mode():
        window = ContextWindow(gen.model, history.clone(), filled=n)
        steps = [window.prime(1)]
        for _ in range(n - 1):
            steps.append(window.step())
    full = full_log_probs(gen.model, ids[:n].tolist())
    incremental = torch.log_softmax(torch.cat(steps).float(), dim=-1)
    assert torch.allclose(incremental, full, atol=1e-5)


def test_stream_reports_the_model_probabilities_of_a_full_forward(gen, vocab):
    prompt = "abc"
    params = SamplingParams(length=BLOCK - len(prompt), seed=3)
    tokens = list(gen.stream(prompt, params))
    text = "".join(t.char for t in tokens)
    ids = vocab.encode(prompt + text).tolist()
    full = full_log_probs(gen.model, ids).exp()
    for i, token in enumerate(tokens):
        position = len(prompt) - 1 + i
        expected = full[position, vocab.index[token.char]].item()
        assert token.model_prob == pytest.approx(expected, abs=1e-5)
        best_char, best_prob = token.top[0]
        assert best_prob == pytest.approx(full[position].max().item(), abs=1e-5)
        assert vocab.index[best_char] == int(full[position].argmax())
        assert [p for _, p in token.top] == sorted((p for _, p in token.top), reverse=True)
        assert len(token.top) == 5
        assert token.prob == pytest.approx(token.model_prob, abs=1e-5)  # T=1, no truncation


def test_greedy_equals_argmax_of_full_recompute_for_recurrent_models(vocab):
    for kind in ("lstm", "gru"):
        g = make_generator(kind, vocab)
        text = g.generate("ab", SamplingParams(strategy="greedy", length=60))[0]
        ids = vocab.encode("ab" + text).tolist()
        predicted = full_log_probs(g.model, ids).argmax(dim=-1).tolist()
        assert ids[2:] == predicted[1:-1]


# ----- the Transformer's sliding window ---------------------------------------------------


def reference_window_greedy(model, prompt_ids: list[int], length: int) -> tuple[list[int], list]:
    """Greedy decoding that recomputes every prediction from scratch on the cropped window
    the documented rule gives: start from the last block_size prompt tokens; when the cache
    is full, keep the last block_size // 2 tokens (the new one included)."""
    block, keep = BLOCK, BLOCK // 2
    tokens = list(prompt_ids)
    start = max(0, len(tokens) - block)
    out, contexts = [], []
    for _ in range(length):
        context = tokens[start:]
        contexts.append(len(context))
        nxt = int(full_log_probs(model, context)[-1].argmax())
        out.append(nxt)
        tokens.append(nxt)
        if len(tokens) - start > block:
            start = len(tokens) - keep
    return out, contexts


@pytest.mark.parametrize("prompt", ["a", "abcde", "hgfedcba.abcdefgh\n"])  # up to > block
def test_window_slide_equals_recomputing_the_cropped_window(transformer, vocab, prompt):
    length = 5 * BLOCK
    text = transformer.generate(prompt, SamplingParams(strategy="greedy", length=length))[0]
    expected, contexts = reference_window_greedy(
        transformer.model, vocab.encode(prompt).tolist(), length
    )
    assert text == vocab.decode(expected)
    after_full = contexts[contexts.index(BLOCK) :]  # it filled the window, then slid
    assert min(after_full) == BLOCK // 2 and max(after_full) == BLOCK


def test_window_slide_probabilities_match_the_cropped_window(transformer, vocab):
    prompt = "abcdef"
    tokens = list(transformer.stream(prompt, SamplingParams(length=3 * BLOCK, seed=4)))
    all_ids = vocab.encode(prompt + "".join(t.char for t in tokens)).tolist()
    start = 0
    for i, token in enumerate(tokens):
        end = len(prompt) + i  # tokens known before this prediction
        context = all_ids[start:end]
        expected = full_log_probs(transformer.model, context)[-1].exp()
        assert token.model_prob == pytest.approx(expected[all_ids[end]].item(), abs=1e-5)
        if end + 1 - start > BLOCK:
            start = end + 1 - BLOCK // 2


def test_scoring_follows_the_same_window(transformer, vocab):
    prompt, params = "abc", SamplingParams(length=4 * BLOCK, seed=9)
    tokens = list(transformer.stream(prompt, params))
    text_ids = vocab.encode("".join(t.char for t in tokens))
    scored = continuation_log_likelihood(
        transformer.model, vocab.encode(prompt), text_ids, transformer.unigram
    )
    assert np.allclose(np.exp(scored), [t.model_prob for t in tokens], atol=1e-5)


# ----- batching -----------------------------------------------------------------------------


def test_batched_prompts_of_different_lengths_equal_one_at_a_time(vocab):
    prompts = ["a", "abcdefgh.", "", "hh", "abcdefgh."]
    params = SamplingParams(strategy="greedy", length=40, seed=1)
    for kind in ("lstm", "gru"):
        only_a = np.eye(len(vocab))[vocab.index["a"]]  # the empty prompt starts with 'a'
        g = make_generator(kind, vocab, unigram=only_a)
        together = g.generate(prompts, params)
        alone = [g.generate(p, params)[0] for p in prompts]
        assert together == alone
        # Stop strings end rows at different columns; the batch stops when all have.
        stop = alone[1][3:5]
        stopping = SamplingParams(strategy="greedy", length=40, stop=(stop,))
        alone = [g.generate(p, stopping)[0] for p in prompts]
        assert g.generate(prompts, stopping) == alone
        assert alone == [cut_at_stop(text, stop) for text in together]


def test_batched_transformer_equals_single_within_a_window(transformer):
    prompts, params = ["a", "abc", "hgfe"], SamplingParams(strategy="greedy", length=4)
    together = transformer.generate(prompts, params)
    assert together == [transformer.generate(p, params)[0] for p in prompts]


def test_samples_are_prompt_major_and_batched_sampling_is_reproducible(gen):
    params = SamplingParams(length=30, seed=11, top_k=5)
    out = gen.generate(["ab", "c"], params, num_samples=3)
    assert len(out) == 6 and all(len(s) == 30 for s in out)
    assert out == gen.generate(["ab", "c"], params, num_samples=3)
    assert len(set(out)) > 1


def test_one_sample_generate_equals_stream_for_the_same_seed(gen):
    for prompt in ("abc", ""):
        params = SamplingParams(
            length=50, seed=7, temperature=0.8, top_p=0.95, repetition_penalty=1.3
        )
        streamed = "".join(t.char for t in gen.stream(prompt, params))
        assert streamed == gen.generate(prompt, params)[0]


def test_each_step_is_one_forward_call_for_all_rows(lstm):
    """A step is one call into the model (a recurrent model's `step_one` does not go
    through `forward`), whatever the number of rows."""
    calls = []
    original, original_step = lstm.model.forward, lstm.model.step_one

    def counting(tokens, state=None):
        calls.append(tuple(tokens.shape))
        return original(tokens, state)

    def counting_step(tokens, state):
        calls.append((tokens.shape[0], 1))
        return original_step(tokens, state)

    lstm.model.forward, lstm.model.step_one = counting, counting_step
    try:
        lstm.generate("abc", SamplingParams(length=20, seed=0), num_samples=16)
    finally:
        del lstm.model.forward, lstm.model.step_one
    assert calls[0] == (1, 3)  # the shared prompt, fed once
    assert calls[1:] == [(16, 1)] * 19


# ----- reproducibility -----------------------------------------------------------------------


def test_same_seed_same_text_different_seed_different_text(gen):
    a = gen.generate("ab", SamplingParams(length=80, seed=1))
    assert a == gen.generate("ab", SamplingParams(length=80, seed=1))
    assert a != gen.generate("ab", SamplingParams(length=80, seed=2))


def test_the_global_rng_is_never_used(lstm):
    torch.manual_seed(123)
    before = torch.get_rng_state()
    lstm.generate(["", "ab"], SamplingParams(length=30, seed=None), num_samples=2)
    list(lstm.stream("", SamplingParams(length=10)))
    assert torch.equal(torch.get_rng_state(), before)


# ----- length, stop strings -------------------------------------------------------------------


@pytest.mark.parametrize("length", [0, 1, 2, 17])
@pytest.mark.parametrize("prompt", ["", "ab"])
def test_exact_length(gen, length, prompt):
    params = SamplingParams(length=length, seed=0)
    out = gen.generate(prompt, params, num_samples=2)
    assert [len(s) for s in out] == [length, length]
    assert len(list(gen.stream(prompt, params))) == length


def cut_at_stop(text: str, stop: str) -> str:
    at = text.find(stop)
    return text if at < 0 else text[: at + len(stop)]


def test_stop_strings_cut_just_after_the_first_one(lstm):
    base = SamplingParams(length=300, seed=5)
    free = lstm.generate("ab", base, num_samples=4)
    stop = free[0][40:42]  # surely occurs in sample 0, maybe in others
    stopped = lstm.generate("ab", SamplingParams(length=300, seed=5, stop=(stop,)), 4)
    assert stopped == [cut_at_stop(s, stop) for s in free]
    assert len(stopped[0]) <= 42
    one = SamplingParams(length=300, seed=5, stop=(stop,))
    streamed = "".join(t.char for t in lstm.stream("ab", one))
    assert (
        streamed == lstm.generate("ab", one)[0] == cut_at_stop(lstm.generate("ab", base)[0], stop)
    )


def test_several_stop_strings_first_one_wins(lstm):
    free = lstm.generate("", SamplingParams(length=200, seed=8))[0]
    stops = (free[60:63], free[30:32])
    out = lstm.generate("", SamplingParams(length=200, seed=8, stop=stops))[0]
    end = min(cut_at_stop(free, s).__len__() for s in stops)
    assert out == free[:end]


def test_a_stop_string_must_lie_inside_the_continuation(lstm):
    free = lstm.generate("ab", SamplingParams(length=100, seed=2))[0]
    stop = "b" + free[0]  # made of the prompt's last char and the first generated one
    out = lstm.generate("ab", SamplingParams(length=100, seed=2, stop=(stop,)))[0]
    assert out == cut_at_stop(free, stop)  # find() looks inside the continuation only


def test_stop_string_with_unknown_characters_never_matches(lstm):
    free = lstm.generate("ab", SamplingParams(length=50, seed=2))
    assert free == lstm.generate("ab", SamplingParams(length=50, seed=2, stop=("Z",)))


# ----- prompts --------------------------------------------------------------------------------


def test_unknown_prompt_characters_are_named(lstm):
    with pytest.raises(CorpusError, match="XZ"):
        lstm.generate("abXcZ", SamplingParams(length=5))
    for length in (5, 0):
        with pytest.raises(CorpusError, match="X"):
            next(lstm.stream("aX", SamplingParams(length=length)))
        with pytest.raises(CorpusError, match="X"):
            lstm.generate("aX", SamplingParams(length=length))
    with pytest.raises(CorpusError, match="X"):
        lstm.beam_search("aX", SamplingParams(length=5))


def test_drop_unknown_equals_the_cleaned_prompt(lstm):
    params = SamplingParams(length=30, seed=3)
    assert lstm.generate("abXcZ", params, drop_unknown=True) == lstm.generate("abc", params)
    streamed = "".join(t.char for t in lstm.stream("aXb", params, drop_unknown=True))
    assert streamed == lstm.generate("ab", params)[0]


def test_empty_prompt_starts_from_the_unigram(vocab):
    only_c = np.zeros(len(vocab))
    only_c[vocab.index["c"]] = 5.0
    g = make_generator("lstm", vocab, unigram=only_c)
    out = g.generate(["", ""], SamplingParams(length=10, seed=0), num_samples=3)
    assert all(s[0] == "c" for s in out)
    first = next(g.stream("", SamplingParams(length=10, seed=0)))
    assert first.char == "c" and first.prob == pytest.approx(1.0)
    assert g.beam_search("", SamplingParams(length=5))[0].text[0] == "c"


def test_empty_prompt_first_characters_follow_the_unigram(vocab):
    weights = np.arange(len(vocab), dtype=float)
    g = make_generator("lstm", vocab, unigram=weights)
    firsts = [s[0] for s in g.generate("", SamplingParams(length=1, seed=0), num_samples=4000)]
    counts = np.array([firsts.count(c) for c in vocab.chars]) / len(firsts)
    assert counts[0] == 0
    assert np.allclose(counts, weights / weights.sum(), atol=0.02)


# ----- streaming details ------------------------------------------------------------------------


def test_stream_stops_when_cancelled(lstm):
    cancel = threading.Event()
    seen = []
    for token in lstm.stream("ab", SamplingParams(length=100, seed=0), cancel=cancel):
        seen.append(token)
        if len(seen) == 5:
            cancel.set()
    assert len(seen) == 5


def test_greedy_and_top_k_one_report_probability_one(lstm):
    for params in (
        SamplingParams(strategy="greedy", length=10),
        SamplingParams(top_k=1, length=10, seed=0),
    ):
        tokens = list(lstm.stream("ab", params))
        assert all(t.prob == pytest.approx(1.0) for t in tokens)
        assert all(0 < t.model_prob <= t.top[0][1] + 1e-6 for t in tokens)
        assert all(t.char == t.top[0][0] for t in tokens)


def test_beam_strategy_streams_its_best_beam(lstm):
    params = SamplingParams(strategy="beam", beam_width=3, length=12)
    streamed = "".join(t.char for t in lstm.stream("ab", params))
    assert streamed == lstm.beam_search("ab", params)[0].text


# ----- parameters and side effects -------------------------------------------------------------


@pytest.mark.parametrize(
    "bad",
    [
        {"strategy": "nucleus"},
        {"temperature": float("nan")},
        {"temperature": float("inf")},
        {"top_k": -1},
        {"top_k": 2.5},
        {"top_p": 0.0},
        {"top_p": 1.5},
        {"top_p": float("nan")},
        {"min_p": -0.1},
        {"min_p": 2.0},
        {"repetition_penalty": 0.0},
        {"repetition_window": -1},
        {"beam_width": 0},
        {"length_penalty": float("nan")},
        {"length": -1},
        {"length": 10**9},
        {"seed": -3},
        {"stop": ("",)},
        {"stop": "ab"},
    ],
)
def test_bad_parameters_raise_config_error(bad):
    # SamplingParams checks itself once, when it is built (and is frozen after): a bad
    # setting is refused there, so it can never reach the generator.
    with pytest.raises(ConfigError):
        SamplingParams(**bad)


def test_num_samples_must_be_positive(lstm):
    with pytest.raises(ConfigError):
        lstm.generate("ab", SamplingParams(length=3), num_samples=0)


def test_generation_uses_eval_mode_and_restores_everything(vocab):
    torch.manual_seed(0)
    settings = {**MODEL_SETTINGS["lstm"], "num_layers": 2, "dropout": 0.5}
    model = build_model(make_config("lstm", vocab_size=len(vocab), **settings)).train()
    g = Generator(model, vocab)
    threads, mkldnn = torch.get_num_threads(), torch.backends.mkldnn.enabled
    params = SamplingParams(strategy="greedy", length=40)
    first = g.generate("ab", params)
    assert first == g.generate("ab", params)  # no dropout noise
    assert model.training
    assert (torch.get_num_threads(), torch.backends.mkldnn.enabled) == (threads, mkldnn)
