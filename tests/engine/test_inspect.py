"""engine.inspect: activations equal a forward pass, the correlation arithmetic, attention,
saliency and the character map, and a trained LSTM that really has an "inside quotes" unit."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.nn import functional as F

from engine.data.corpus import Vocab
from engine.errors import UserError
from engine.inspect import (
    MAX_TEXT_CHARS,
    attention_at,
    character_map,
    encode_text,
    find_units,
    match_indicator,
    pearson_with,
    saliency_at,
    unit_activations,
)
from engine.inspect.activations import Activations, UnitGroup, transformer_windows
from engine.inspect.attention import attention_matrices
from tests.helpers import MODEL_TYPES, quoted_text, tiny_model

VOCAB = 11
ATOL = 1e-5


def random_ids(steps: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, VOCAB, steps)


# ----- activations --------------------------------------------------------------------


@pytest.mark.parametrize("model_type", ["lstm", "gru", "rnn"])
def test_recurrent_activations_equal_the_plain_forward_pass(model_type: str) -> None:
    """Last layer = nn.LSTM's outputs, head(last) = the logits, every layer's final h (and c)
    = the fused kernel's final state: every group is the model's own computation."""
    model = tiny_model(model_type, VOCAB, num_layers=3)
    ids = random_ids(90)
    acts = unit_activations(model, ids)
    tokens = torch.as_tensor(ids)[None]
    with torch.no_grad():
        out, final = model.rnn(model.embedding(tokens))
        logits, _ = model(tokens)
    hidden = [g.values for g in acts.groups if g.kind == "hidden"]
    assert len(hidden) == 3
    assert np.allclose(hidden[-1], out[0].numpy(), atol=ATOL)
    head = model.head(torch.as_tensor(hidden[-1]))
    assert torch.allclose(head, logits[0], atol=ATOL)
    final_h = final[0] if model_type == "lstm" else final
    for layer in range(3):
        assert np.allclose(hidden[layer][-1], final_h[layer, 0].numpy(), atol=ATOL)
    if model_type == "lstm":
        cells = [g.values for g in acts.groups if g.kind == "cell"]
        assert len(cells) == 3
        for layer in range(3):
            assert np.allclose(cells[layer][-1], final[1][layer, 0].numpy(), atol=ATOL)
        # and at every position h = o * tanh(c): the cells are the ones that made the h's
        with torch.no_grad():
            x = model.embedding(torch.as_tensor(ids))
            previous = torch.cat([torch.zeros(1, 16), torch.as_tensor(hidden[0][:-1])])
            gates = model.rnn.weight_ih_l0 @ x.T + model.rnn.weight_hh_l0 @ previous.T
            gates = gates.T + model.rnn.bias_ih_l0 + model.rnn.bias_hh_l0
            out_gate = torch.sigmoid(gates[:, 48:64]).numpy()
        assert np.allclose(hidden[0], out_gate * np.tanh(cells[0]), atol=ATOL)


def test_lstm_cells_match_a_prefix_forward_at_every_length() -> None:
    model = tiny_model("lstm", VOCAB)
    ids = random_ids(30, seed=4)
    acts = unit_activations(model, ids)
    for length in (1, 7, 30):
        with torch.no_grad():
            _, (h, c) = model.rnn(model.embedding(torch.as_tensor(ids[:length])[None]))
        assert np.allclose(acts.unit("L0.cell.3")[length - 1], c[0, 0, 3].item(), atol=ATOL)
        assert np.allclose(acts.groups[2].values[length - 1], c[1, 0].numpy(), atol=ATOL)
        assert np.allclose(acts.groups[1].values[length - 1], h[0, 0].numpy(), atol=ATOL)


def test_transformer_activations_equal_the_mlp_of_a_plain_forward() -> None:
    """The neurons are GELU(fc(ln2(x))) of each block, recomputed here by hand."""
    model = tiny_model("transformer", VOCAB)
    ids = random_ids(20)
    acts = unit_activations(model, ids)
    assert [g.name for g in acts.groups] == ["L0.mlp", "L1.mlp"]
    tokens = torch.as_tensor(ids)[None]
    with torch.no_grad():
        x = model.wte(tokens) + model.wpe(torch.arange(20))
        for layer, block in enumerate(model.blocks):
            x = x + block.attn(block.ln1(x), None)[0]
            neurons = F.gelu(block.mlp.fc(block.ln2(x)))
            assert np.allclose(acts.groups[layer].values, neurons[0].numpy(), atol=ATOL)
            x = x + block.mlp(block.ln2(x))


def test_transformer_windows_cover_a_long_text_once_with_half_a_context() -> None:
    windows = list(transformer_windows(100, 24))
    kept = [p for start, end, keep in windows for p in range(start + keep, end)]
    assert kept == list(range(100))
    for start, end, keep in windows[1:]:
        assert end - start == 24 and keep >= 12
    model = tiny_model("transformer", VOCAB)
    acts = unit_activations(model, random_ids(100))
    assert acts.matrix().shape == (100, 2 * 64)
    # the first window is the plain forward over its own positions
    first = unit_activations(model, random_ids(100)[:24])
    assert np.allclose(acts.matrix()[:24], first.matrix(), atol=ATOL)


def test_unit_labels_and_lookup() -> None:
    acts = unit_activations(tiny_model("lstm", VOCAB), random_ids(10))
    labels = acts.labels()
    assert labels[0] == "L0.cell.0" and labels[16] == "L0.hidden.0" and len(labels) == 64
    assert acts.index_of("L1.hidden.5") == 53
    assert np.array_equal(acts.unit("L1.hidden.5"), acts.matrix()[:, 53])
    with pytest.raises(UserError, match="no unit"):
        acts.unit("L0.cell.16")
    with pytest.raises(UserError, match="no unit"):
        acts.unit("L2.mlp.0")


def test_activations_leave_a_training_model_in_training_mode() -> None:
    model = tiny_model("lstm", VOCAB).train()
    acts = unit_activations(model, random_ids(12))
    assert model.training
    again = unit_activations(model.eval(), random_ids(12))
    assert np.array_equal(acts.matrix(), again.matrix())  # dropout was off both times


# ----- find a unit ----------------------------------------------------------------------


def test_pearson_matches_numpy_corrcoef_on_fixed_activations() -> None:
    rng = np.random.default_rng(7)
    values = rng.normal(size=(200, 6)).astype(np.float32)
    target = rng.random(200) < 0.3
    values[:, 2] += 3 * target  # one unit that follows the indicator
    values[:, 4] = 1.5  # a constant unit: r is 0, not NaN
    r = pearson_with(values, target)
    for u in (0, 1, 2, 3, 5):
        expected = np.corrcoef(values[:, u].astype(np.float64), target.astype(np.float64))[0, 1]
        assert r[u] == pytest.approx(expected, abs=1e-9)
    assert r[4] == 0.0
    assert r[2] > 0.7
    assert pearson_with(-values, target)[2] == pytest.approx(-r[2])


def test_find_units_ranks_by_absolute_r() -> None:
    text = 'ab "cd" ef "gh" ij'
    inside = match_indicator(text, r'"[^"]*"')
    assert "".join(c for c, i in zip(text, inside, strict=True) if i) == '"cd""gh"'
    values = np.zeros((len(text), 3), dtype=np.float32)
    values[:, 0] = np.arange(len(text))  # ramp: weak
    values[:, 1] = -2.0 * inside + 0.01 * np.arange(len(text))  # strong, negative
    values[:, 2] = 1.0 * inside + 0.3 * np.sin(np.arange(len(text)))  # strong, positive
    acts = Activations(text, [UnitGroup(0, "hidden", values)])
    result = find_units(acts, r'"[^"]*"', top=3)
    assert {m.label for m in result.top[:2]} == {"L0.hidden.1", "L0.hidden.2"}
    assert result.top[2].label == "L0.hidden.0"
    assert result.top[0].r == pytest.approx(max(pearson_with(values, inside), key=abs), abs=1e-12)
    assert abs(result.top[0].r) >= abs(result.top[1].r) >= abs(result.top[2].r)
    assert result.covered == 8 and result.chars == len(text)


@pytest.mark.parametrize(
    ("pattern", "message"),
    [("(unclosed", "invalid regular expression"), ("zzz", "matches no"), (".", "every")],
)
def test_bad_patterns_are_user_errors(pattern: str, message: str) -> None:
    with pytest.raises(UserError, match=message):
        match_indicator("abc abc", pattern)


def test_an_lstm_trained_on_quoted_spans_has_an_inside_quotes_unit() -> None:
    """The done-when test: train briefly, then a unit tracks "inside quotes" with |r| >= 0.6."""
    text = quoted_text(12_000, seed=1)
    vocab = Vocab(sorted(set(text)))
    ids = torch.as_tensor(vocab.encode(text))
    torch.manual_seed(0)
    model = tiny_model("lstm", len(vocab), embed_dim=8, hidden_size=16, num_layers=1, dropout=0.0)
    model.train()
    optimizer = torch.optim.Adam(model.parameters(), lr=2e-2)
    generator = torch.Generator().manual_seed(0)
    for _ in range(80):
        starts = torch.randint(0, len(ids) - 65, (16,), generator=generator)
        batch = torch.stack([ids[s : s + 65] for s in starts])
        logits, _ = model(batch[:, :-1])
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), batch[:, 1:].reshape(-1))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.eval()
    held_out = quoted_text(3000, seed=99)
    text, held_ids = encode_text(vocab, held_out)
    result = find_units(unit_activations(model, held_ids, text), r'"[^"\n]*"', top=5)
    assert abs(result.top[0].r) >= 0.6, result.as_dict()
    # an untrained model of the same shape has no such unit: the training made it
    # an untrained model has no such unit (the letters are the same inside and out)
    fresh = tiny_model("lstm", len(vocab), embed_dim=8, hidden_size=16, num_layers=1)
    baseline = find_units(unit_activations(fresh, held_ids, text), r'"[^"\n]*"', top=1)
    assert abs(baseline.top[0].r) < 0.5


# ----- attention ------------------------------------------------------------------------


def test_attention_rows_sum_to_one_over_the_causal_window() -> None:
    model = tiny_model("transformer", VOCAB)
    ids = random_ids(60)
    for position in (0, 5, 23, 59):
        amap = attention_at(model, ids, position)
        start = max(0, position - 23)
        assert amap.start == start
        assert amap.weights.shape == (2, 2, position - start + 1)
        assert np.allclose(amap.weights.sum(axis=-1), 1.0, atol=1e-6)
        assert (amap.weights >= 0).all()


def test_attention_weights_times_values_give_the_layer_output() -> None:
    """The recomputed weights are the model's: weights @ values = the fused attention output."""
    model = tiny_model("transformer", VOCAB)
    tokens = torch.as_tensor(random_ids(17))
    weights, values, outputs = attention_matrices(model, tokens)
    assert weights.shape == (2, 2, 17, 17)
    assert torch.all(weights.triu(diagonal=1) == 0)  # causal: nothing from the future
    for layer in range(2):
        mixed = (weights[layer] @ values[layer]).transpose(0, 1).reshape(17, -1)
        assert torch.allclose(mixed, outputs[layer], atol=ATOL)


def test_attention_is_unaffected_by_forward_passes_in_other_threads() -> None:
    """Hooks belong to the module: a generation or a second inspect request running on the
    same model in another engine thread once fed its activations into this one's capture
    (`zip() argument 2 is longer than argument 1`). Each call sees only its own pass."""
    import threading

    model = tiny_model("transformer", VOCAB)
    ids = random_ids(60)
    expected = {p: attention_at(model, ids, p).weights for p in (10, 30, 59)}
    stop = threading.Event()
    errors: list[BaseException] = []

    def keep_forwarding() -> None:
        tokens = torch.as_tensor(random_ids(24, seed=3))[None]
        while not stop.is_set():
            with torch.no_grad():
                model(tokens)

    def inspect_repeatedly(position: int) -> None:
        try:
            for _ in range(30):
                assert np.allclose(attention_at(model, ids, position).weights, expected[position])
        except BaseException as exc:
            errors.append(exc)

    forwarder = threading.Thread(target=keep_forwarding)
    inspectors = [threading.Thread(target=inspect_repeatedly, args=(p,)) for p in expected]
    forwarder.start()
    for thread in inspectors:
        thread.start()
    for thread in inspectors:
        thread.join()
    stop.set()
    forwarder.join()
    assert not errors, errors[0]


@pytest.mark.parametrize("model_type", ["lstm", "gru", "rnn"])
def test_attention_on_a_recurrent_model_is_a_user_error(model_type: str) -> None:
    with pytest.raises(UserError, match="needs a Transformer"):
        attention_at(tiny_model(model_type, VOCAB), random_ids(5), 2)


# ----- saliency -------------------------------------------------------------------------


@pytest.mark.parametrize("model_type", MODEL_TYPES)
def test_saliency_shape_and_sum(model_type: str) -> None:
    model = tiny_model(model_type, VOCAB)
    ids = random_ids(40)
    sal = saliency_at(model, ids, 30, window=16)
    assert sal.start == 14 and sal.scores.shape == (16,) and sal.raw.shape == (16,)
    assert sal.scores.sum() == pytest.approx(1.0, abs=1e-5)
    assert (sal.scores >= 0).all()
    assert np.allclose(sal.scores, sal.raw / sal.raw.sum())
    with torch.no_grad():
        context = ids[14:30] if model_type == "transformer" else ids[:30]
        logits, _ = model(torch.as_tensor(context)[None])
    assert sal.logprob == pytest.approx(F.log_softmax(logits[0, -1], -1)[ids[30]].item(), abs=1e-4)


def test_saliency_of_a_memoryless_rnn_is_all_on_the_last_character() -> None:
    """With no recurrent weights the prediction depends on the last character alone."""
    model = tiny_model("rnn", VOCAB, num_layers=1)
    with torch.no_grad():
        model.rnn.weight_hh_l0.zero_()
    sal = saliency_at(model, random_ids(20), 12)
    assert sal.scores[-1] == pytest.approx(1.0)
    assert np.allclose(sal.raw[:-1], 0.0)
    memory = saliency_at(tiny_model("rnn", VOCAB, num_layers=1), random_ids(20), 12)
    assert memory.scores[:-1].sum() > 0.01  # with its memory, earlier characters count


def test_saliency_needs_an_earlier_character() -> None:
    with pytest.raises(UserError, match="characters before it"):
        saliency_at(tiny_model("lstm", VOCAB), random_ids(5), 0)


# ----- the character map, the text --------------------------------------------------------


def test_character_map_pca_and_cosine_neighbours() -> None:
    vocab = Vocab("ABCab")
    model = tiny_model("lstm", 5, embed_dim=4)
    table = torch.tensor(
        [[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0], [2, 0, 0.1, 0], [0, 3, 0, 0.1]],
        dtype=torch.float32,
    )
    with torch.no_grad():
        model.embedding.weight.copy_(table)
    cmap = character_map(model, vocab, k=2)
    assert cmap.neighbours_of("a")[0][0] == "A"
    assert cmap.neighbours_of("B")[0][0] == "b"
    assert cmap.neighbours_of("A")[0][1] == pytest.approx(2 / np.sqrt(4.01))
    centred = table.numpy() - table.numpy().mean(axis=0)
    variance = np.linalg.svd(centred, compute_uv=False) ** 2
    assert cmap.explained == pytest.approx(list(variance[:2] / variance.sum()))
    # the projection keeps the distances the first two components span (here most of them)
    assert cmap.points.shape == (5, 2)
    assert np.linalg.norm(cmap.points, axis=1).max() <= np.linalg.norm(centred, axis=1).max() + 1e-9


def test_text_limit_is_stated_never_silent() -> None:
    vocab = Vocab("ab")
    with pytest.raises(UserError, match="at most 20,000"):
        encode_text(vocab, "a" * (MAX_TEXT_CHARS + 1))
    _, ids = encode_text(vocab, "a" * MAX_TEXT_CHARS)
    assert len(ids) == MAX_TEXT_CHARS
    with pytest.raises(UserError, match="does not know"):
        encode_text(vocab, "abc")
    assert encode_text(vocab, "abc", drop_unknown=True)[0] == "ab"
