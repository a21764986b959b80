"""Logits processors against distributions computed by hand, edge cases included."""

from __future__ import annotations

import math

import pytest
import torch

from engine.decoding.processors import (
    LogitsPipeline,
    apply_min_p,
    apply_repetition_penalty,
    apply_temperature,
    apply_top_k,
    apply_top_p,
    greedy,
    sample,
)

INF = float("inf")


def logits_of(*probs: float) -> torch.Tensor:
    """(1, V) logits whose softmax is `probs` (which must sum to 1)."""
    return torch.log(torch.tensor([probs], dtype=torch.float64)).float()


def dist(logits: torch.Tensor) -> list[float]:
    return logits.float().softmax(dim=-1)[0].tolist()


def assert_dist(actual: list[float], expected: list[float], tol: float = 1e-6) -> None:
    assert len(actual) == len(expected)
    for a, e in zip(actual, expected, strict=True):
        assert a == pytest.approx(e, abs=tol), (actual, expected)


# ----- temperature ---------------------------------------------------------------------


def test_temperature_divides_logits():
    out = apply_temperature(torch.tensor([[1.0, 2.0, 3.0]]), 2.0)
    weights = [math.exp(0.5), math.exp(1.0), math.exp(1.5)]
    assert_dist(dist(out), [w / sum(weights) for w in weights])


def test_temperature_one_is_identity():
    logits = torch.tensor([[0.3, -1.0, 2.0]])
    assert torch.equal(apply_temperature(logits, 1.0), logits)


@pytest.mark.parametrize("t", [0.0, -1.0])
def test_temperature_zero_or_negative_is_greedy_first_on_ties(t):
    out = apply_temperature(torch.tensor([[1.0, 3.0, 3.0, 2.0]]), t)
    assert_dist(dist(out), [0, 1, 0, 0])


def test_tiny_and_huge_temperature_stay_finite():
    logits = torch.tensor([[1e30, -1e30, 0.0, 5.0]])
    tiny = apply_temperature(logits, 1e-30)
    assert not torch.isnan(tiny).any()
    assert_dist(dist(tiny), [1, 0, 0, 0])
    flat = apply_temperature(torch.tensor([[1.0, 2.0, 3.0]]), 1e30)
    assert_dist(dist(flat), [1 / 3] * 3)


# ----- top-k -----------------------------------------------------------------------------


def test_top_k_keeps_k_and_renormalises():
    out = apply_top_k(logits_of(0.1, 0.4, 0.2, 0.3), 2)
    assert_dist(dist(out), [0, 4 / 7, 0, 3 / 7])


def test_top_k_one_is_greedy():
    assert_dist(dist(apply_top_k(logits_of(0.1, 0.4, 0.2, 0.3), 1)), [0, 1, 0, 0])


@pytest.mark.parametrize("k", [None, 0, 4, 100])
def test_top_k_off_or_larger_than_vocab_keeps_everything(k):
    logits = logits_of(0.1, 0.4, 0.2, 0.3)
    assert_dist(dist(apply_top_k(logits, k)), [0.1, 0.4, 0.2, 0.3])


def test_top_k_keeps_characters_tied_with_the_kth():
    out = apply_top_k(torch.tensor([[1.0, 2.0, 2.0, 0.0]]), 1)
    assert_dist(dist(out), [0, 0.5, 0.5, 0])


# ----- top-p -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("p", "expected"),
    [
        (0.5, [1, 0, 0, 0]),  # 0.5 alone reaches 0.5 exactly
        (0.6, [5 / 8, 3 / 8, 0, 0]),
        (0.8, [5 / 8, 3 / 8, 0, 0]),  # 0.5 + 0.3 reaches 0.8 exactly
        (0.81, [0.5 / 0.95, 0.3 / 0.95, 0.15 / 0.95, 0]),
        (1.0, [0.5, 0.3, 0.15, 0.05]),
        (1e-12, [1, 0, 0, 0]),
    ],
)
def test_top_p_smallest_set_reaching_p(p, expected):
    assert_dist(dist(apply_top_p(logits_of(0.15, 0.5, 0.05, 0.3), p)), _perm(expected))


def _perm(expected: list[float]) -> list[float]:
    """`expected` is given sorted by probability; the logits above are in order 2, 0, 3, 1."""
    return [expected[2], expected[0], expected[3], expected[1]]


def test_top_p_ties_broken_by_index():
    out = apply_top_p(logits_of(0.3, 0.4, 0.3), 0.5)
    assert_dist(dist(out), [3 / 7, 4 / 7, 0])


def test_top_p_with_all_mass_on_one_character():
    out = apply_top_p(torch.tensor([[-INF, 0.0, -INF]]), 0.9)
    assert_dist(dist(out), [0, 1, 0])


def test_top_p_low_precision_logits():
    logits = logits_of(0.15, 0.5, 0.05, 0.3)
    for dtype in (torch.bfloat16, torch.float16):
        out = LogitsPipeline(top_p=0.6)(logits.to(dtype))
        assert out.dtype == torch.float32
        assert_dist(dist(out), _perm([5 / 8, 3 / 8, 0, 0]), tol=1e-2)


# ----- min-p -----------------------------------------------------------------------------


def test_min_p_keeps_relative_to_the_maximum():
    out = apply_min_p(logits_of(0.5, 0.3, 0.15, 0.05), 0.25)  # threshold 0.125
    assert_dist(dist(out), [0.5 / 0.95, 0.3 / 0.95, 0.15 / 0.95, 0])
    out = apply_min_p(logits_of(0.5, 0.3, 0.15, 0.05), 0.5)  # threshold 0.25
    assert_dist(dist(out), [0.5 / 0.8, 0.3 / 0.8, 0, 0])


def test_min_p_one_keeps_the_tied_maxima():
    assert_dist(dist(apply_min_p(torch.tensor([[2.0, 2.0, 1.0]]), 1.0)), [0.5, 0.5, 0])


@pytest.mark.parametrize("m", [None, 0.0])
def test_min_p_off(m):
    assert_dist(dist(apply_min_p(logits_of(0.5, 0.5), m)), [0.5, 0.5])


# ----- repetition penalty ----------------------------------------------------------------


def test_repetition_penalty_ctrl_rule():
    logits = torch.tensor([[2.0, -1.0, 0.5, 1.0, 0.0]])
    recent = torch.tensor([[0, 1, 0, 4]])  # duplicates are fine
    out = apply_repetition_penalty(logits, recent, 2.0)
    assert out.tolist() == [[1.0, -2.0, 0.5, 1.0, 0.0]]


def test_repetition_penalty_padding_id_marks_nothing():
    logits = torch.tensor([[2.0, 2.0], [2.0, 2.0]])
    recent = torch.tensor([[0, 2], [2, 2]])  # id 2 == vocab size: padding
    out = apply_repetition_penalty(logits, recent, 4.0)
    assert out.tolist() == [[0.5, 2.0], [2.0, 2.0]]


def test_repetition_penalty_one_or_no_history_is_identity():
    logits = torch.tensor([[2.0, -1.0]])
    assert torch.equal(apply_repetition_penalty(logits, torch.tensor([[0, 1]]), 1.0), logits)
    assert torch.equal(apply_repetition_penalty(logits, None, 3.0), logits)


# ----- the fixed order -------------------------------------------------------------------


def test_penalty_runs_before_truncation():
    pipeline = LogitsPipeline(top_k=1, repetition_penalty=2.0)
    out = pipeline(torch.tensor([[3.0, 2.9, 0.0, -5.0]]), torch.tensor([[0]]))
    assert_dist(dist(out), [0, 1, 0, 0])  # 3.0 became 1.5, so 2.9 is the top one


def test_temperature_runs_before_top_p():
    # After T=100 the two are ~0.501/0.499, below 0.55: both stay. Top-p first would keep one.
    out = LogitsPipeline(temperature=100.0, top_p=0.55)(logits_of(0.6, 0.4))
    assert all(p > 0.4 for p in dist(out))


def test_top_p_measures_mass_inside_top_k():
    # Top-k 2 leaves 4/7 and 3/7; 4/7 alone reaches 0.5. Top-p first would keep both.
    out = LogitsPipeline(top_k=2, top_p=0.5)(logits_of(0.4, 0.3, 0.2, 0.1))
    assert_dist(dist(out), [1, 0, 0, 0])


def test_min_p_after_top_p():
    out = LogitsPipeline(top_p=0.9, min_p=0.5)(logits_of(0.5, 0.3, 0.15, 0.05))
    assert_dist(dist(out), [0.5 / 0.8, 0.3 / 0.8, 0, 0])


# ----- numerical safety and batching -------------------------------------------------------


@pytest.mark.parametrize(
    "row",
    [
        [-INF, -INF, 1.0, -INF],
        [float("nan"), 0.0, 1.0, 2.0],
        [INF, 0.0, 1.0, -INF],
        [-INF, -INF, -INF, -INF],
        [1e38, -1e38, 0.0, 1.0],
    ],
)
@pytest.mark.parametrize(
    "pipeline",
    [
        LogitsPipeline(),
        LogitsPipeline(temperature=0.0),
        LogitsPipeline(temperature=1e-6, top_k=2, top_p=1e-9, min_p=0.99),
        LogitsPipeline(temperature=7.0, top_p=0.999, repetition_penalty=3.0),
    ],
)
def test_no_nan_and_something_always_left(row, pipeline):
    for dtype in (torch.float32, torch.bfloat16, torch.float16):
        logits = torch.tensor([row]).to(dtype)
        probs = pipeline.probs(logits, torch.tensor([[0, 1]]))
        assert not torch.isnan(probs).any()
        assert probs.sum().item() == pytest.approx(1.0, abs=1e-5)
        token = pipeline.choose(logits, torch.tensor([[0, 1]]), torch.Generator().manual_seed(0))
        assert probs[0, token].item() > 0


def test_all_minus_inf_row_becomes_uniform():
    probs = LogitsPipeline().probs(torch.full((1, 4), -INF))
    assert_dist(probs[0].tolist(), [0.25] * 4)


def test_rows_are_processed_independently():
    pipeline = LogitsPipeline(temperature=0.7, top_k=3, top_p=0.8, min_p=0.05)
    torch.manual_seed(0)
    batch = torch.randn(5, 11)
    together = pipeline(batch)
    for i in range(5):
        assert torch.equal(together[i], pipeline(batch[i : i + 1])[0])


def test_greedy_pipeline_and_helper_pick_the_first_maximum():
    logits = torch.tensor([[0.0, 5.0, 5.0], [9.0, 1.0, 9.0]])
    assert LogitsPipeline(temperature=0).choose(logits).tolist() == [1, 0]
    assert greedy(logits).tolist() == [1, 0]


def test_sampling_follows_the_processed_distribution():
    pipeline = LogitsPipeline(top_k=2)
    logits = logits_of(0.1, 0.4, 0.2, 0.3).expand(20_000, -1)
    draws = pipeline.choose(logits, None, torch.Generator().manual_seed(1))
    counts = torch.bincount(draws, minlength=4).float() / draws.numel()
    assert counts[0] == 0 and counts[2] == 0
    assert counts[1].item() == pytest.approx(4 / 7, abs=0.02)


def test_sampling_is_reproducible_and_leaves_the_global_rng_alone():
    probs = torch.full((3, 50), 1 / 50)
    before = torch.get_rng_state()
    a = sample(probs, torch.Generator().manual_seed(5))
    b = sample(probs, torch.Generator().manual_seed(5))
    assert torch.equal(a, b)
    assert torch.equal(torch.get_rng_state(), before)


def test_a_draw_never_lands_on_a_character_of_probability_zero(monkeypatch):
    """Inverse CDF at the extremes of the uniform draw: u = 0 gives the first character
    with mass, the largest u torch.rand can return gives the last one with mass, even
    when the row's sum rounds below 1."""
    probs = torch.tensor(
        [
            [0.0, 0.3, 0.0, 0.7, 0.0],
            [0.0, 0.0, 1 / 3, 1 / 3, 1 / 3],
            [0.5, 0.0, 0.0, 0.4999999, 0.0],
        ]
    )
    for u, expected in ((0.0, [1, 2, 0]), (1 - 2**-24, [3, 4, 3])):

        def fixed(*shape, u=u, **kwargs):
            return torch.full(shape, u, dtype=kwargs.get("dtype") or torch.float32)

        monkeypatch.setattr(torch, "rand", fixed)
        assert sample(probs, torch.Generator().manual_seed(0)).tolist() == expected


def test_every_sampling_path_uses_one_uniform_draw_per_row():
    """`sample` reads exactly one number per row from the generator: a sampled batch and
    a fresh generator's uniform numbers locate the same characters in the running sums."""
    probs = torch.softmax(torch.randn(6, 30, generator=torch.Generator().manual_seed(2)), -1)
    drawn = sample(probs, torch.Generator().manual_seed(9))
    u = torch.rand(6, 1, generator=torch.Generator().manual_seed(9))
    cdf = probs.cumsum(-1)
    below = (cdf <= u * cdf[:, -1:]).sum(-1)
    assert torch.equal(drawn, below)
