"""Held-out scoring: every character exactly once, on both the recurrent and windowed paths."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn
from torch.nn import functional as F

from engine.models import CharLM, ModelConfig
from engine.training import evaluate
from engine.training.eval_windows import WindowSampler, evaluate_windows
from engine.training.evaluate import EvalResult, evaluate_split
from tests.helpers import tiny_model

VOCAB = 11


class BigramLM(CharLM):
    """Logits depend only on the current character, so the exact loss is known in closed form.

    With `context` it behaves like a Transformer (windowed path, bounded state); without,
    like an RNN (streams, carried state).
    """

    def __init__(self, vocab: int, context: int | None = None, zero: bool = False) -> None:
        super().__init__()
        self.config = ModelConfig(vocab_size=vocab)
        generator = torch.Generator().manual_seed(0)
        table = (
            torch.zeros(vocab, vocab) if zero else torch.randn(vocab, vocab, generator=generator)
        )
        self.table = nn.Parameter(table * 3)
        self.context = context
        self.calls = 0

    @property
    def max_context(self) -> int | None:
        return self.context

    def forward(self, tokens, state=None):
        self.calls += 1
        if self.context is not None:
            seen = (state or 0) + tokens.shape[1]
            assert seen <= self.context, "the evaluator overflowed the context"
            return self.table[tokens], seen
        return self.table[tokens], torch.zeros(1, tokens.shape[0], 1)

    def select_state(self, state, index):
        return state if self.context is not None else state.index_select(1, index)

    def state_positions(self, state) -> int:
        return 0 if state is None or self.context is None else state


def random_ids(length: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, VOCAB, size=length).astype(np.uint8)


def exact_bigram_loss(model: BigramLM, ids: np.ndarray) -> float:
    x = torch.from_numpy(ids.astype(np.int64))
    with torch.no_grad():
        return float(F.cross_entropy(model.table[x[:-1]], x[1:]))


def plain_forward_loss(model: CharLM, ids: np.ndarray) -> float:
    x = torch.from_numpy(ids.astype(np.int64))[None]
    with torch.no_grad():
        logits, _ = model(x[:, :-1])
        return float(F.cross_entropy(logits[0], x[0, 1:]))


@pytest.fixture
def small_streams(monkeypatch: pytest.MonkeyPatch) -> None:
    """Several streams and chunks on small inputs (the real sizes need 16k+ chars)."""
    monkeypatch.setattr(evaluate, "STREAM_CHARS", 50)
    monkeypatch.setattr(evaluate, "CHUNK_STEPS", 7)
    monkeypatch.setattr(evaluate, "WARMUP_CHARS", 5)


# ----- every character exactly once ------------------------------------------------------


@pytest.mark.parametrize("length", [2, 3, 49, 50, 51, 101, 157, 499, 1003])
@pytest.mark.parametrize("context", [None, 4, 5, 24])
def test_every_character_is_scored_exactly_once(
    small_streams: None, length: int, context: int | None
) -> None:
    """A miss or a double count would change the mean of these random per-pair losses."""
    model = BigramLM(VOCAB, context)
    ids = random_ids(length, seed=length)
    result = evaluate_split(model, ids)
    assert result.chars == length - 1
    assert result.loss == pytest.approx(exact_bigram_loss(model, ids), rel=1e-6)


def test_real_sizes_with_a_remainder_stream() -> None:
    """3 streams of STREAM_CHARS + 1 and a 2-char remainder at the module's real sizes."""
    length = 3 * evaluate.STREAM_CHARS + 6
    model = BigramLM(VOCAB)
    ids = random_ids(length)
    result = evaluate_split(model, ids)
    assert result.chars == length - 1
    assert result.loss == pytest.approx(exact_bigram_loss(model, ids), rel=1e-6)


@pytest.mark.parametrize("model_type", ["lstm", "gru", "rnn", "transformer"])
@pytest.mark.parametrize("length", [2, 23, 24, 25, 26, 97, 300])
def test_real_models_score_len_minus_one(small_streams: None, model_type: str, length: int) -> None:
    model = tiny_model(model_type, VOCAB)
    result = evaluate_split(model, random_ids(length, seed=length))
    assert result.chars == length - 1
    assert 0 < result.loss < 10


def test_one_stream_equals_a_plain_full_forward() -> None:
    """Under STREAM_CHARS x 2 chars there is one stream: state carried over 512-step chunks."""
    model = tiny_model("lstm", VOCAB)
    length = 2 * evaluate.STREAM_CHARS
    assert length - 1 > evaluate.CHUNK_STEPS
    ids = random_ids(length, seed=5)
    result = evaluate_split(model, ids)
    assert result.chars == length - 1
    assert result.loss == pytest.approx(plain_forward_loss(model, ids), abs=1e-5)


@pytest.mark.parametrize("model_type", ["lstm", "gru", "rnn"])
def test_streams_and_remainder_equal_their_plain_forwards(
    small_streams: None, model_type: str
) -> None:
    """The first stream starts cold, each later one reads the WARMUP_CHARS (5 here) before it,
    unscored; the remainder continues the last stream's state."""
    model = tiny_model(model_type, VOCAB)
    for length in (163, 165):  # 162 inputs: 3 streams of 54; 164: the same and 2 more
        ids = random_ids(length, seed=length)
        x = torch.from_numpy(ids.astype(np.int64))
        inputs, targets = x[:-1], x[1:]
        total = len(inputs)
        streams = total // 50
        per = total // streams
        nll = 0.0
        with torch.no_grad():
            for s in range(streams):
                warm = None
                if s:
                    _, warm = model(inputs[None, s * per - 5 : s * per])
                logits, state = model(inputs[None, s * per : (s + 1) * per], warm)
                nll += float(
                    F.cross_entropy(logits[0], targets[s * per : (s + 1) * per], reduction="sum")
                )
            if streams * per < total:
                logits, _ = model(inputs[None, streams * per :], state)
                nll += float(F.cross_entropy(logits[0], targets[streams * per :], reduction="sum"))
        result = evaluate_split(model, ids)
        assert result.chars == total
        assert result.loss == pytest.approx(nll / total, abs=1e-5)


def test_warm_streams_beat_cold_ones_on_text_with_memory() -> None:
    """On text whose next character is the one 3 back, a carried state is worth a lot: the
    warm-up is what keeps many streams from costing accuracy."""
    from engine.models import build_model, make_config

    torch.manual_seed(0)
    period = np.random.default_rng(0).integers(0, VOCAB, size=3)
    ids = np.tile(period, 3000).astype(np.uint8)
    model = build_model(make_config("gru", vocab_size=VOCAB, embed_dim=8, hidden_size=32))
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    x = torch.from_numpy(ids[:121].astype(np.int64))[None]
    for _ in range(150):
        logits, _ = model(x[:, :-1])
        loss = F.cross_entropy(logits[0], x[0, 1:])
        opt.zero_grad()
        loss.backward()
        opt.step()
    warm = evaluate_split(model, ids)
    assert warm.chars == len(ids) - 1
    # The same streams with no warm-up: every one of its streams starts cold.
    cold_model = model
    saved = evaluate.WARMUP_CHARS
    try:
        evaluate.WARMUP_CHARS = 0
        cold = evaluate_split(cold_model, ids)
    finally:
        evaluate.WARMUP_CHARS = saved
    assert warm.loss < cold.loss


class _FakeClock:
    """Time that moves only when the model runs: one second per forward call."""

    def __init__(self) -> None:
        self.now = 0.0

    def monotonic(self) -> float:
        return self.now


@pytest.mark.parametrize("context", [None, 6])
def test_a_deadline_stops_before_a_chunk_that_would_end_after_it(
    small_streams: None, monkeypatch: pytest.MonkeyPatch, context: int | None
) -> None:
    clock = _FakeClock()
    monkeypatch.setattr(evaluate, "time", clock)
    model = BigramLM(VOCAB, context)
    forward = model.forward

    def timed_forward(tokens, state=None):
        clock.now += 1.0
        return forward(tokens, state)

    model.forward = timed_forward  # type: ignore[method-assign]
    ids = random_ids(1003, seed=2)  # 1,002 inputs: 20 streams of 50 + 2, chunks of 7 steps
    result = evaluate_split(model, ids, deadline=4.5)
    x = torch.from_numpy(ids.astype(np.int64))
    if context is None:
        # warm-up at t=1; chunks end at t=2, 3, 4; the next would end at 5 > 4.5.
        streams = x[:-1][:1000].view(20, 50)[:, :21]
        targets = x[1:][:1000].view(20, 50)[:, :21]
        assert result.chars == 3 * 7 * 20
    else:
        # Windows of 6 with stride 3, 32 per batch: batches end at t=1, 2, 3, 4.
        assert result.chars < len(ids) - 1
        assert result.chars > 0
        return
    with torch.no_grad():
        want = float(F.cross_entropy(model.table[streams.reshape(-1)], targets.reshape(-1)))
    assert result.loss == pytest.approx(want, rel=1e-6)
    assert evaluate_split(model, ids, deadline=-1.0).chars == 0
    assert math.isnan(evaluate_split(model, ids, deadline=-1.0).loss)
    assert evaluate_split(model, ids, deadline=1e9).chars == len(ids) - 1


def test_a_slow_warm_up_is_not_taken_for_the_time_of_a_chunk(
    small_streams: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The streams' warm-up is a one-off: the deadline check times chunks from after it
    (it once stopped a final evaluation after its first chunk, 20 s into a 120 s run)."""
    clock = _FakeClock()
    monkeypatch.setattr(evaluate, "time", clock)
    model = BigramLM(VOCAB, None)
    forward = model.forward
    calls = []

    def timed_forward(tokens, state=None):
        clock.now += 5.0 if not calls else 1.0  # the warm-up call takes 5 s, a chunk 1 s
        calls.append(tokens.shape)
        return forward(tokens, state)

    model.forward = timed_forward  # type: ignore[method-assign]
    ids = random_ids(1003, seed=2)  # 20 streams of 50 + 2, chunks of 7 steps
    result = evaluate_split(model, ids, deadline=9.5)
    # warm-up to t=5; chunks end at t=6, 7, 8, 9; the next would end at 10 > 9.5.
    assert result.chars == 4 * 7 * 20


@pytest.mark.parametrize("length", [2, 10, 25])
def test_short_split_on_a_transformer_equals_a_plain_forward(length: int) -> None:
    model = tiny_model("transformer", VOCAB)  # block size 24: 25 chars is 24 inputs
    ids = random_ids(length, seed=3)
    result = evaluate_split(model, ids)
    assert result.loss == pytest.approx(plain_forward_loss(model, ids), abs=1e-5)


def test_long_split_on_a_transformer_gives_each_char_half_a_context() -> None:
    """After the first window, a character is scored with at least block/2 characters before it."""
    model = tiny_model("transformer", VOCAB)
    ids = random_ids(200, seed=4)
    x = torch.from_numpy(ids.astype(np.int64))
    window = model.max_context
    stride = window // 2
    nll, scored = 0.0, 0
    with torch.no_grad():
        logits, _ = model(x[None, :window])
        nll += float(F.cross_entropy(logits[0], x[1 : window + 1], reduction="sum"))
        scored = window
        total = len(ids) - 1
        while scored < total:
            start = min(scored - stride, total - window)
            logits, _ = model(x[None, start : start + window])
            skip = scored - start
            assert skip >= stride
            nll += float(
                F.cross_entropy(
                    logits[0, skip:], x[scored + 1 : start + window + 1], reduction="sum"
                )
            )
            scored = start + window
    result = evaluate_split(model, ids)
    assert result.chars == total
    assert result.loss == pytest.approx(nll / total, abs=1e-5)


# ----- reference values -----------------------------------------------------------------


@pytest.mark.parametrize("context", [None, 8])
@pytest.mark.parametrize("vocab", [2, 11, 65])
def test_uniform_model_scores_log_vocab(
    small_streams: None, context: int | None, vocab: int
) -> None:
    model = BigramLM(vocab, context, zero=True)
    ids = np.random.default_rng(1).integers(0, vocab, size=333)
    result = evaluate_split(model, ids)
    assert result.loss == pytest.approx(math.log(vocab), rel=1e-6)
    assert result.bpc == pytest.approx(math.log2(vocab), rel=1e-6)
    assert result.perplexity == pytest.approx(vocab, rel=1e-5)


def test_eval_result_units() -> None:
    result = EvalResult(loss=math.log(2) * 1.5, chars=10)
    assert result.bpc == pytest.approx(1.5)
    assert result.perplexity == pytest.approx(2**1.5)
    assert result.as_dict("val_") == {
        "val_loss": result.loss,
        "val_bpc": result.bpc,
        "val_perplexity": result.perplexity,
        "val_chars": 10,
    }
    assert EvalResult(loss=5000.0, chars=1).perplexity < math.inf  # no overflow


def test_too_short_to_evaluate() -> None:
    with pytest.raises(ValueError):
        evaluate_split(BigramLM(VOCAB), random_ids(1))


def test_evaluate_split_leaves_the_model_in_eval_mode_and_accepts_tensors() -> None:
    model = tiny_model("gru", VOCAB).train()
    ids = random_ids(120)
    result = evaluate_split(model, torch.from_numpy(ids.astype(np.int64)))
    assert not model.training
    assert result.loss == pytest.approx(evaluate_split(model, ids).loss)


# ----- the fixed windows used during training -------------------------------------------


def test_window_sampler_is_seeded_and_scores_all_its_windows() -> None:
    ids = random_ids(5000)
    first = WindowSampler(ids, chars=640, window=32, seed=9, device=torch.device("cpu"))
    second = WindowSampler(ids, chars=640, window=32, seed=9, device=torch.device("cpu"))
    assert torch.equal(first.windows, second.windows)
    assert first.windows.shape == (20, 33)
    assert first.chars == 640
    model = BigramLM(VOCAB, 32)
    result = evaluate_windows(model, first, None)
    windows = first.windows
    with torch.no_grad():
        want = float(
            F.cross_entropy(
                model.table[windows[:, :-1]].reshape(-1, VOCAB), windows[:, 1:].reshape(-1)
            )
        )
    assert result.chars == 640
    assert result.loss == pytest.approx(want, rel=1e-6)


def test_evaluate_windows_restores_training_mode() -> None:
    model = tiny_model("lstm", VOCAB).train()
    sampler = WindowSampler(
        random_ids(500), chars=100, window=10, seed=1, device=torch.device("cpu")
    )
    evaluate_windows(model, sampler, None)
    assert model.training


@pytest.mark.parametrize("model_type", ["lstm", "transformer"])
def test_evaluate_split_reports_progress_to_the_whole_split(model_type: str) -> None:
    model = tiny_model(model_type, VOCAB)
    ids = np.random.default_rng(0).integers(0, VOCAB, size=5_000)
    calls: list[tuple[int, int]] = []
    result = evaluate_split(model, ids, progress=lambda done, total: calls.append((done, total)))
    assert len(calls) >= 2
    assert [done for done, _ in calls] == sorted(done for done, _ in calls)
    assert calls[-1] == (result.chars, result.chars)
    assert all(total == result.chars for _, total in calls)
