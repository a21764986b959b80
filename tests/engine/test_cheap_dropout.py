"""The CPU dropout keeps F.dropout's contract: the share dropped, the scale of the rest,
fresh masks each call, seeded runs repeat, and gradients flow through the same mask."""

import pytest
import torch

from engine.models import build_model, make_config
from engine.models.cheap_dropout import CheapDropout, cheap_dropout


@pytest.mark.parametrize("p", [0.1, 0.2, 0.5])
def test_the_share_dropped_is_p_in_every_16_bit_lane(p: float) -> None:
    # Each 64-bit draw gives four uniforms: a lane that is biased (random_() leaves the
    # top bit of an int64 at zero) would drop a different share than the others.
    torch.manual_seed(0)
    out = cheap_dropout(torch.ones(400_000), p, training=True)
    dropped = (out == 0).float().view(-1, 4).mean(dim=0)
    assert torch.allclose(dropped, torch.full((4,), p), atol=0.005), dropped


def test_kept_elements_are_scaled_so_the_mean_is_kept() -> None:
    torch.manual_seed(1)
    x = torch.rand(1_000_003) + 1.0  # an odd size: the last word is cut short
    out = cheap_dropout(x, 0.2, training=True)
    kept = out != 0
    assert torch.allclose(out[kept], x[kept] / 0.8, rtol=1e-4)
    assert out.shape == x.shape
    assert abs(out.mean().item() / x.mean().item() - 1.0) < 0.01


def test_each_call_draws_a_new_mask_and_a_seed_repeats_it() -> None:
    x = torch.ones(64, 128)
    torch.manual_seed(7)
    first, second = cheap_dropout(x, 0.2, True), cheap_dropout(x, 0.2, True)
    torch.manual_seed(7)
    again = cheap_dropout(x, 0.2, True)
    assert not torch.equal(first, second)
    assert torch.equal(first, again)


def test_eval_mode_and_zero_p_are_the_identity_and_p_one_drops_all() -> None:
    x = torch.randn(10, 12)
    layer = CheapDropout(0.3).eval()
    assert torch.equal(layer(x), x)
    assert torch.equal(cheap_dropout(x, 0.0, True), x)
    assert torch.count_nonzero(cheap_dropout(x, 1.0, True)) == 0


def test_the_gradient_is_the_mask_scaled() -> None:
    torch.manual_seed(3)
    x = torch.randn(32, 50, requires_grad=True)
    out = cheap_dropout(x, 0.25, True)
    out.sum().backward()
    expected = (out != 0).float() / 0.75
    assert torch.allclose(x.grad, expected)


def test_bf16_activations_keep_their_dtype() -> None:
    torch.manual_seed(4)
    x = torch.ones(4096, dtype=torch.bfloat16)
    out = cheap_dropout(x, 0.2, True)
    assert out.dtype == torch.bfloat16
    assert 0.17 < (out == 0).float().mean().item() < 0.23


@pytest.mark.parametrize(
    "model_type, shape",
    [
        ("lstm", {"embed_dim": 8, "hidden_size": 16, "num_layers": 1}),
        ("transformer", {"n_layer": 1, "n_head": 2, "n_embd": 16, "block_size": 16}),
    ],
)
def test_models_with_dropout_use_it_and_save_the_same_state(model_type: str, shape: dict) -> None:
    model = build_model(make_config(model_type, vocab_size=20, dropout=0.2, **shape))
    drops = [m for m in model.modules() if isinstance(m, torch.nn.Dropout)]
    assert drops and all(isinstance(m, CheapDropout) for m in drops)
    assert not any("drop" in key for key in model.state_dict())
