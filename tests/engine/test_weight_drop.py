"""Weight drop: the recurrence runs with masked hidden-to-hidden weights while training,
exactly as the cell would with those weights, without touching the module's own."""

import pytest
import torch
from torch import nn

from engine.errors import ConfigError
from engine.models import build_model, config_from_dict, make_config
from engine.models.weight_drop import dropped_weights, run_with_weight_drop

CELLS = [
    ("lstm", nn.LSTM, {}),
    ("gru", nn.GRU, {}),
    ("rnn-tanh", nn.RNN, {"nonlinearity": "tanh"}),
    ("rnn-relu", nn.RNN, {"nonlinearity": "relu"}),
]


def _cell(cell: type[nn.RNNBase], extra: dict) -> nn.RNNBase:
    torch.manual_seed(0)
    return cell(6, 10, num_layers=2, batch_first=True, **extra)


def _state(rnn: nn.RNNBase, rows: int) -> object:
    torch.manual_seed(9)
    h = torch.randn(rnn.num_layers, rows, rnn.hidden_size)
    return (h, torch.randn_like(h)) if rnn.mode == "LSTM" else h


@pytest.mark.parametrize(("name", "cell", "extra"), CELLS, ids=[c[0] for c in CELLS])
@pytest.mark.parametrize("given_state", [False, True], ids=["fresh", "carried"])
def test_nothing_dropped_is_the_cell_itself(name, cell, extra, given_state) -> None:
    rnn = _cell(cell, extra)
    x = torch.randn(3, 7, 6)
    state = _state(rnn, 3) if given_state else None
    expected, expected_state = rnn(x, state)
    out, out_state = run_with_weight_drop(rnn, x, state, 0.0)
    torch.testing.assert_close(out, expected)
    for got, want in zip(
        out_state if isinstance(out_state, tuple) else (out_state,),
        expected_state if isinstance(expected_state, tuple) else (expected_state,),
        strict=True,
    ):
        torch.testing.assert_close(got, want)


@pytest.mark.parametrize(("name", "cell", "extra"), CELLS, ids=[c[0] for c in CELLS])
def test_dropped_is_the_cell_with_those_weights_and_the_module_keeps_its_own(
    name, cell, extra
) -> None:
    rnn = _cell(cell, extra)
    before = {k: v.detach().clone() for k, v in rnn.named_parameters()}
    identities = [id(p) for p in rnn.parameters()]
    x = torch.randn(4, 9, 6)
    torch.manual_seed(5)
    masked = dropped_weights(rnn, 0.5)
    torch.manual_seed(5)
    out, _ = run_with_weight_drop(rnn, x, None, 0.5)

    twin = _cell(cell, extra)
    with torch.no_grad():
        for weight_name, weight in zip(rnn._flat_weights_names, masked, strict=True):
            getattr(twin, weight_name).copy_(weight)
    torch.testing.assert_close(out, twin(x)[0])
    assert [id(p) for p in rnn.parameters()] == identities
    for key, value in rnn.named_parameters():
        assert torch.equal(value, before[key]), key


def test_only_the_hidden_to_hidden_matrices_are_dropped_at_the_rate_asked() -> None:
    torch.manual_seed(1)
    rnn = nn.LSTM(64, 256, num_layers=2, batch_first=True)
    torch.manual_seed(2)
    weights = dict(zip(rnn._flat_weights_names, dropped_weights(rnn, 0.3), strict=True))
    for name, weight in weights.items():
        original = getattr(rnn, name)
        if name.startswith("weight_hh"):
            share = (weight == 0).float().mean().item()
            assert abs(share - 0.3) < 0.01, (name, share)
            kept = weight != 0
            torch.testing.assert_close(weight[kept], original[kept] / 0.7, rtol=1e-4, atol=0)
        else:
            assert weight is original, name


def test_a_dropped_entry_gets_no_gradient_and_a_kept_one_does() -> None:
    rnn = _cell(nn.LSTM, {})
    x = torch.randn(2, 5, 6)
    torch.manual_seed(3)
    mask = dropped_weights(rnn, 0.5)[rnn._flat_weights_names.index("weight_hh_l0")] != 0
    torch.manual_seed(3)
    out, _ = run_with_weight_drop(rnn, x, None, 0.5)
    out.pow(2).sum().backward()
    grad = rnn.weight_hh_l0.grad
    assert torch.count_nonzero(grad[~mask]) == 0
    assert torch.count_nonzero(grad[mask]) > 0.9 * mask.sum()


@pytest.mark.parametrize("model_type", ["lstm", "gru", "rnn"])
def test_a_model_drops_weights_only_while_training(model_type: str) -> None:
    shape = {"vocab_size": 12, "embed_dim": 8, "hidden_size": 16, "num_layers": 1}
    plain = build_model(make_config(model_type, dropout=0.0, **shape))
    dropping = build_model(make_config(model_type, dropout=0.0, weight_drop=0.5, **shape))
    dropping.load_state_dict(plain.state_dict())
    assert dropping.state_dict().keys() == plain.state_dict().keys()
    tokens = torch.randint(0, 12, (3, 10))
    with torch.no_grad():
        torch.testing.assert_close(dropping.eval()(tokens)[0], plain.eval()(tokens)[0])
        torch.manual_seed(0)
        first = dropping.train()(tokens)[0]
        torch.manual_seed(1)
        second = dropping(tokens)[0]
    assert not torch.allclose(first, plain.train()(tokens)[0])
    assert not torch.allclose(first, second)  # a fresh mask each step


def test_weight_drop_is_a_probability_and_old_configs_load_without_it() -> None:
    for bad in (-0.1, 1.0, float("nan"), "0.2"):
        with pytest.raises(ConfigError, match="weight_drop"):
            make_config("lstm", vocab_size=5, weight_drop=bad)
    saved = make_config("lstm", vocab_size=5, weight_drop=0.25).as_dict()
    assert config_from_dict(saved).weight_drop == 0.25
    saved.pop("weight_drop")
    assert config_from_dict(saved).weight_drop == 0.0
    with pytest.raises(ConfigError, match="weight_drop"):
        make_config("transformer", vocab_size=5, weight_drop=0.2)
