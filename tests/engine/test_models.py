"""The model interface: state-carrying forward, state selection, sizes and limits."""

from __future__ import annotations

import pytest
import torch

from engine.errors import ConfigError
from engine.models import MODELS, build_model, config_from_dict, make_config
from tests.helpers import MODEL_TYPES, TINY_MODELS, tiny_model

VOCAB = 11
ATOL = 1e-5


def tokens(batch: int, steps: int, seed: int = 1) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(0, VOCAB, (batch, steps), generator=generator)


def feed_in_pieces(model, x: torch.Tensor, sizes: list[int]) -> torch.Tensor:
    outputs, state, start = [], None, 0
    for size in sizes:
        logits, state = model(x[:, start : start + size], state)
        outputs.append(logits)
        start += size
    assert start == x.shape[1]
    return torch.cat(outputs, dim=1)


def test_every_model_type_is_registered() -> None:
    assert set(MODELS) == set(MODEL_TYPES) == {"lstm", "gru", "rnn", "transformer"}


@pytest.mark.parametrize("model_type", MODEL_TYPES)
def test_forward_shapes(model_type: str) -> None:
    model = tiny_model(model_type, VOCAB)
    logits, state = model(tokens(3, 7))
    assert logits.shape == (3, 7, VOCAB)
    assert state is not None


@pytest.mark.parametrize("model_type", MODEL_TYPES)
def test_one_token_at_a_time_equals_the_whole_sequence(model_type: str) -> None:
    """Dropout is on in these configs: eval mode must make feeding order irrelevant."""
    model = tiny_model(model_type, VOCAB)
    assert model.config.dropout > 0 and not model.training
    x = tokens(2, 20)
    with torch.no_grad():
        whole, _ = model(x)
        stepped = feed_in_pieces(model, x, [1] * 20)
        chunked = feed_in_pieces(model, x, [3, 1, 5, 2, 9])
    assert torch.allclose(stepped, whole, atol=ATOL), (stepped - whole).abs().max()
    assert torch.allclose(chunked, whole, atol=ATOL), (chunked - whole).abs().max()


@pytest.mark.parametrize("model_type", MODEL_TYPES)
def test_training_mode_dropout_changes_the_output(model_type: str) -> None:
    """The check above is not vacuous: in training mode dropout perturbs the logits."""
    model = tiny_model(model_type, VOCAB, dropout=0.5).train()
    x = tokens(2, 12)
    torch.manual_seed(0)
    first, _ = model(x)
    second, _ = model(x)
    assert not torch.allclose(first, second)


@pytest.mark.parametrize("model_type", MODEL_TYPES)
def test_select_state_picks_batch_rows(model_type: str) -> None:
    model = tiny_model(model_type, VOCAB)
    prefix, suffix = tokens(3, 6, seed=2), tokens(3, 4, seed=3)
    order = torch.tensor([2, 0, 2])
    with torch.no_grad():
        _, state = model(prefix)
        picked = model.select_state(state, order)
        got, _ = model(suffix[order], picked)
        # Reference: run the chosen rows from scratch, one by one.
        for out_row, source in enumerate(order.tolist()):
            _, row_state = model(prefix[source : source + 1])
            want, _ = model(suffix[source : source + 1], row_state)
            assert torch.allclose(got[out_row], want[0], atol=ATOL)


@pytest.mark.parametrize("model_type", MODEL_TYPES)
def test_state_positions(model_type: str) -> None:
    model = tiny_model(model_type, VOCAB)
    assert model.state_positions(None) == 0
    with torch.no_grad():
        _, state = model(tokens(1, 5))
        _, state = model(tokens(1, 3), state)
    expected = 8 if model_type == "transformer" else 0
    assert model.state_positions(state) == expected


@pytest.mark.parametrize(("model_type", "gates"), [("lstm", 4), ("gru", 3), ("rnn", 1)])
def test_recurrent_parameter_count_matches_the_formula(model_type: str, gates: int) -> None:
    vocab, embed, hidden, layers = 13, 7, 9, 3
    model = build_model(
        make_config(
            model_type,
            vocab_size=vocab,
            embed_dim=embed,
            hidden_size=hidden,
            num_layers=layers,
            dropout=0.0,
        )
    )
    cell = gates * hidden * (embed + hidden) + 2 * gates * hidden  # W_ih, W_hh, b_ih, b_hh
    deeper = (layers - 1) * (gates * hidden * (hidden + hidden) + 2 * gates * hidden)
    expected = vocab * embed + cell + deeper + hidden * vocab + vocab
    assert model.num_parameters() == expected
    if model_type == "lstm":  # worked out by hand: embedding, layer 1, layers 2-3, head
        assert model.num_parameters() == 91 + 648 + 2 * 720 + 117 + 13 == 2309


def test_transformer_parameter_count_matches_the_formula() -> None:
    vocab, width, block, layers = 13, 16, 10, 2
    model = build_model(
        make_config(
            "transformer", vocab_size=vocab, n_layer=layers, n_head=4, n_embd=width,
            block_size=block, bias=False,
        )
    )  # fmt: skip
    per_block = 12 * width * width + 2 * width  # qkv 3C², proj C², MLP 8C², two LayerNorms
    expected = vocab * width + block * width + layers * per_block + width  # head is tied
    assert model.num_parameters() == expected
    assert model.head.weight is model.wte.weight


def test_transformer_refuses_more_than_block_size_positions() -> None:
    model = tiny_model("transformer", VOCAB)
    block = TINY_MODELS["transformer"]["block_size"]
    assert model.max_context == block
    with torch.no_grad():
        model(tokens(1, block))  # exactly a full context is fine
        with pytest.raises(ValueError, match="exceed"):
            model(tokens(1, block + 1))
        _, state = model(tokens(1, block - 2))
        _, state = model(tokens(1, 2), state)  # now full
        with pytest.raises(ValueError, match="exceed"):
            model(tokens(1, 1), state)


def test_recurrent_models_have_no_context_limit() -> None:
    for model_type in ("lstm", "gru", "rnn"):
        assert tiny_model(model_type, VOCAB).max_context is None


@pytest.mark.parametrize("model_type", MODEL_TYPES)
def test_config_round_trips_through_a_dict(model_type: str) -> None:
    config = make_config(model_type, vocab_size=VOCAB, **TINY_MODELS[model_type])
    data = config.as_dict()
    assert data["model_type"] == model_type
    assert config_from_dict(data) == config


@pytest.mark.parametrize(
    ("model_type", "values", "fragment"),
    [
        ("lstm", {"hidden_size": 0}, "hidden_size"),
        ("gru", {"num_layers": -1}, "num_layers"),
        ("rnn", {"embed_dim": "abc"}, "embed_dim"),
        ("lstm", {"dropout": 1.5}, "dropout"),
        ("transformer", {"n_head": 3, "n_embd": 32}, "n_head"),
        ("transformer", {"block_size": 0}, "block_size"),
        ("transformer", {"bias": "yes"}, "bias"),
        ("lstm", {"n_head": 2}, "n_head"),
        ("mamba", {}, "mamba"),
    ],
)
def test_bad_model_settings_are_config_errors(model_type: str, values: dict, fragment: str) -> None:
    with pytest.raises(ConfigError, match=fragment):
        make_config(model_type, **values)


@pytest.mark.parametrize("kind", ["lstm", "gru", "rnn"])
def test_decode_step_follows_weight_updates(kind: str) -> None:
    """The one-position decoding path caches layer 0's input projection; after an
    optimizer step it must use the new weights, exactly as the fused kernel does."""
    torch.manual_seed(0)
    model = build_model(make_config(kind, vocab_size=7, embed_dim=5, hidden_size=12, num_layers=2))
    tokens = torch.randint(0, 7, (3, 6))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
    for _ in range(2):
        model.eval()
        with torch.inference_mode():
            full, _ = model(tokens)
            state, steps = None, []
            for t in range(tokens.shape[1]):
                logits, state = model(tokens[:, t : t + 1], state)
                steps.append(logits)
        torch.testing.assert_close(torch.cat(steps, dim=1), full, rtol=1e-5, atol=1e-5)
        model.train()
        loss = model(tokens)[0].logsumexp(-1).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
