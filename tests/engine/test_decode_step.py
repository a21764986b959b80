"""The recurrent models' one-position step plan (engine/models/recurrent_step.py): the same
numbers as the fused nn.LSTM / nn.GRU / nn.RNN forward, and never stale."""

from __future__ import annotations

import threading

import pytest
import torch

from engine.models import blas_threads, build_model, make_config
from engine.models import recurrent as recurrent_module
from engine.models.numpy_step import NumpyStepPlan
from engine.models.recurrent_step import StepPlan

VOCAB = 9
KINDS = ["lstm", "gru", "rnn"]


def recurrent(kind: str, layers: int, labels: int = 0, **extra: object):
    torch.manual_seed(layers * 7 + labels)
    settings = {"embed_dim": 6, "hidden_size": 10, "num_layers": layers, "dropout": 0.2}
    model = build_model(make_config(kind, vocab_size=VOCAB, num_labels=labels, **settings, **extra))
    with torch.no_grad():
        for param in model.parameters():  # large weights: every output depends on the state
            param.normal_(0.0, 0.6)
    return model.eval()


def stepped(model, tokens: torch.Tensor, condition=None, state=None) -> torch.Tensor:
    steps = []
    for t in range(tokens.shape[1]):
        logits, state = model(tokens[:, t : t + 1], state, condition)
        steps.append(logits)
    return torch.cat(steps, dim=1), state


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("layers", [1, 3])
@pytest.mark.parametrize("batch", [1, 4])
@pytest.mark.parametrize("labelled", [False, True])
def test_steps_equal_the_fused_forward(kind: str, layers: int, batch: int, labelled: bool) -> None:
    model = recurrent(kind, layers, labels=3 if labelled else 0)
    tokens = torch.randint(0, VOCAB, (batch, 12), generator=torch.Generator().manual_seed(3))
    condition = torch.randint(0, 4, (batch,)) if labelled else None
    with torch.inference_mode():
        whole, whole_state = model(tokens, None, condition)
        steps, state = stepped(model, tokens, condition)
        with model.steady_weights():  # the pinned plan gives the same numbers
            pinned, _ = stepped(model, tokens, condition)
    torch.testing.assert_close(steps, whole, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(pinned, whole, rtol=1e-5, atol=1e-5)
    if kind == "lstm":
        for mine, fused in zip(state, whole_state, strict=True):
            torch.testing.assert_close(mine, fused, rtol=1e-5, atol=1e-5)
    else:
        torch.testing.assert_close(state, whole_state, rtol=1e-5, atol=1e-5)


def test_relu_rnn_steps_equal_the_fused_forward() -> None:
    """The plan follows the cell's nonlinearity (the model's own RNN is tanh)."""
    model = recurrent("rnn", 2)
    torch.manual_seed(4)
    model.rnn = torch.nn.RNN(6, 10, num_layers=2, batch_first=True, nonlinearity="relu").eval()
    tokens = torch.randint(0, VOCAB, (3, 10), generator=torch.Generator().manual_seed(5))
    with torch.inference_mode():
        whole, _ = model(tokens)
        steps, _ = stepped(model, tokens)
        tanh = torch.nn.RNN(6, 10, num_layers=2, batch_first=True)
        tanh.load_state_dict(model.rnn.state_dict())
        model.rnn = tanh.eval()
        assert not torch.allclose(model(tokens)[0], whole)  # the check above is not vacuous
    torch.testing.assert_close(steps, whole, rtol=1e-5, atol=1e-5)


def test_a_step_continues_a_state_the_fused_forward_left() -> None:
    model = recurrent("lstm", 2)
    tokens = torch.randint(0, VOCAB, (2, 9), generator=torch.Generator().manual_seed(8))
    with torch.inference_mode():
        whole, _ = model(tokens)
        _, state = model(tokens[:, :5])
        rest, _ = stepped(model, tokens[:, 5:], state=state)
    torch.testing.assert_close(rest, whole[:, 5:], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("kind", KINDS)
def test_the_plan_follows_weights_written_in_place_or_replaced(kind: str) -> None:
    model = recurrent(kind, 2)
    tokens = torch.randint(0, VOCAB, (2, 6), generator=torch.Generator().manual_seed(1))

    def check() -> None:
        with torch.inference_mode():
            whole, _ = model(tokens)
            steps, _ = stepped(model, tokens)
        torch.testing.assert_close(steps, whole, rtol=1e-5, atol=1e-5)

    check()
    with torch.no_grad():
        model.head.weight.mul_(-1.5)  # in place: the version counter moves
    check()
    with torch.no_grad():
        model.embedding.weight.data = torch.randn_like(model.embedding.weight)  # replaced
    check()
    model.double()  # a new dtype: new storages
    tokens = tokens.clone()
    with torch.inference_mode():
        whole, _ = model(tokens)
        steps, _ = stepped(model, tokens)
    assert steps.dtype == torch.float64
    torch.testing.assert_close(steps, whole, rtol=1e-9, atol=1e-9)


def test_steady_weights_checks_the_weights_once(monkeypatch) -> None:
    """Inside the block the plan is checked once, not on every step; outside, every step."""
    model = recurrent("lstm", 2)
    calls = []
    original = recurrent_module.weights_key

    def counting(tensors):
        calls.append(1)
        return original(tensors)

    monkeypatch.setattr(recurrent_module, "weights_key", counting)
    tokens = torch.randint(0, VOCAB, (1, 10))
    with torch.inference_mode():
        stepped(model, tokens)
        assert len(calls) == 10
        calls.clear()
        with model.steady_weights():
            stepped(model, tokens)
        assert len(calls) == 1


def test_a_pin_holds_only_in_its_own_thread() -> None:
    """Another thread's steps still check the weights for themselves."""
    model = recurrent("gru", 1)
    tokens = torch.randint(0, VOCAB, (1, 5))
    pinned, release = threading.Event(), threading.Event()

    def hold() -> None:
        with torch.inference_mode(), model.steady_weights():
            pinned.set()
            release.wait(10)

    holder = threading.Thread(target=hold)
    holder.start()
    try:
        assert pinned.wait(10)
        with torch.no_grad():
            model.embedding.weight.mul_(-2.0)  # layer 0 reads a table built from it
        with torch.inference_mode():
            whole, _ = model(tokens)
            steps, _ = stepped(model, tokens)
        torch.testing.assert_close(steps, whole, rtol=1e-5, atol=1e-5)
    finally:
        release.set()
        holder.join()


def test_steady_weights_pins_nothing_while_training() -> None:
    """In training mode (dropout) or with autograd on, steps go through the fused kernel."""
    model = recurrent("lstm", 1).train()
    tokens = torch.randint(0, VOCAB, (1, 4))
    with model.steady_weights():
        logits, _ = model(tokens[:, :1])
    assert logits.requires_grad
    assert not getattr(recurrent_module._PINNED, "plans", {})


# ----- the NumPy step (engine/models/numpy_step.py) ----------------------------------------


@pytest.mark.parametrize("kind", [*KINDS, "rnn-relu"])
@pytest.mark.parametrize("layers", [1, 3])
@pytest.mark.parametrize("batch", [1, 4])
@pytest.mark.parametrize("labelled", [False, True])
def test_the_numpy_plan_equals_the_torch_plan(
    kind: str, layers: int, batch: int, labelled: bool
) -> None:
    """Every cell, depth, batch and condition: the same logits and states as torch's plan."""
    extra = {}
    if kind == "rnn-relu":
        kind, extra = "rnn", {"relu": True}
    model = recurrent(kind, layers, labels=3 if labelled else 0)
    if extra:
        torch.manual_seed(4)
        model.rnn = torch.nn.RNN(6, 10, num_layers=layers, batch_first=True, nonlinearity="relu")
        model.eval()
    generator = torch.Generator().manual_seed(6)
    tokens = torch.randint(0, VOCAB, (batch, 12), generator=generator)
    label = torch.randn(batch, 6, generator=generator) if labelled else None
    with torch.inference_mode():
        mine, theirs = model._step_plan("numpy"), model._step_plan("torch")
        assert isinstance(mine, NumpyStepPlan) and isinstance(theirs, StepPlan)
        state_np = state_torch = None
        for t in range(tokens.shape[1]):
            logits_np, state_np = mine.step(tokens[:, t], state_np, label)
            logits_torch, state_torch = theirs.step(tokens[:, t], state_torch, label)
            torch.testing.assert_close(logits_np, logits_torch, rtol=1e-5, atol=1e-5)
    pairs = zip(state_np, state_torch, strict=True) if kind == "lstm" else [(state_np, state_torch)]
    for a, b in pairs:
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)


def test_a_single_row_steps_in_numpy_and_a_batch_in_torch(monkeypatch) -> None:
    """Which plan decodes: NumPy for one row of float32 CPU weights, unless
    CHARLM_DECODE_BACKEND=torch; torch for a batch and for any other dtype."""
    model = recurrent("lstm", 2)
    one, four = torch.tensor([[1]]), torch.tensor([[1], [2], [3], [4]])
    with torch.inference_mode(), model.steady_weights():
        model(one)
        model(four)
        pinned = recurrent_module._PINNED.plans[id(model)]
        assert isinstance(pinned[1], NumpyStepPlan)
        assert isinstance(pinned[4], StepPlan)
    monkeypatch.setenv("CHARLM_DECODE_BACKEND", "torch")
    with torch.inference_mode(), model.steady_weights():
        model(one)
        assert isinstance(recurrent_module._PINNED.plans[id(model)][1], StepPlan)
    monkeypatch.delenv("CHARLM_DECODE_BACKEND")
    model.double()
    with torch.inference_mode(), model.steady_weights():
        model(one)
        assert isinstance(recurrent_module._PINNED.plans[id(model)][1], StepPlan)


def test_the_numpy_step_keeps_numpy_blas_on_one_thread() -> None:
    """The BLAS pool beside torch's threads fought for the cores (engine/models/
    blas_threads.py): after a NumPy step it holds one thread."""
    if not blas_threads._blas_controllers():
        pytest.skip("threadpoolctl finds no BLAS under this NumPy")
    for controller in blas_threads._blas_controllers():
        controller.set_num_threads(2)
    blas_threads._done = False  # as in a fresh process
    model = recurrent("gru", 1)
    with torch.inference_mode():
        model(torch.tensor([[1]]))
    assert blas_threads.current() == 1
