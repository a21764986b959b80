"""Embedding -> stacked recurrent cell -> linear head, shared by LSTM, GRU and RNN.

The cells are PyTorch's fused nn.LSTM / nn.GRU / nn.RNN, which are much faster
than a Python loop over time steps on both CPU and GPU.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn

from engine.models import numpy_step
from engine.models.base import CharLM, ModelConfig, State
from engine.models.cheap_dropout import CheapDropout
from engine.models.conditioning import (
    condition_logit_bias,
    condition_vector,
    make_label_embedding,
)
from engine.models.recurrent_step import StepPlan, weights_key
from engine.models.weight_drop import run_with_weight_drop

# Step plans pinned by `steady_weights`, per thread: {id(model): plan}.
_PINNED = threading.local()


@dataclass
class RecurrentConfig(ModelConfig):
    embed_dim: int = 64
    hidden_size: int = 256
    num_layers: int = 2
    dropout: float = 0.2
    # DropConnect on the hidden-to-hidden weights while training (engine/models/weight_drop.py).
    weight_drop: float = 0.0

    model_type: ClassVar[str] = ""


def decode_backend() -> str:
    """How a recurrent model steps a single row while decoding: "numpy" (the default,
    faster on the CPUs measured) or "torch" (CHARLM_DECODE_BACKEND=torch). Batches,
    other devices and other dtypes always step in torch."""
    value = os.environ.get("CHARLM_DECODE_BACKEND", "numpy").strip().lower()
    return "torch" if value == "torch" else "numpy"


class RecurrentLM(CharLM):
    cell_class: ClassVar[type[nn.RNNBase]]

    def __init__(self, config: RecurrentConfig) -> None:
        super().__init__()
        self.config = config
        self.embedding = nn.Embedding(config.vocab_size, config.embed_dim)
        self.label = make_label_embedding(
            config.num_labels, config.embed_dim, config.vocab_size if config.label_bias else 0
        )
        self.rnn = self.cell_class(
            config.embed_dim,
            config.hidden_size,
            num_layers=config.num_layers,
            batch_first=True,
            dropout=config.dropout if config.num_layers > 1 else 0.0,
        )
        self.drop = CheapDropout(config.dropout)
        self.head = nn.Linear(config.hidden_size, config.vocab_size)

    def forward(
        self, tokens: torch.Tensor, state: State = None, condition: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, State]:
        label = condition_vector(self.label, condition, tokens.shape[0])
        bias = condition_logit_bias(self.label, condition, tokens.shape[0])
        if tokens.shape[1] == 1 and not self.training and not torch.is_grad_enabled():
            logits, new_state = self._decode_step(tokens.select(1, 0), state, label)
        else:
            x = self.drop(self.embedding(tokens))  # the label is never dropped out
            if label is not None:
                x = x + label
            if self.training and self.config.weight_drop > 0:
                out, new_state = run_with_weight_drop(self.rnn, x, state, self.config.weight_drop)
            else:
                out, new_state = self.rnn(x, state)
            logits = self.head(self.drop(out))
        return (logits if bias is None else logits + bias), new_state

    def step_one(self, tokens: torch.Tensor, state: State) -> tuple[torch.Tensor, State]:
        """Straight to the step plan, unless something must see the call."""
        if self._plain_decoding():
            logits, new_state = self._decode_step(tokens, state)
            return logits.select(1, 0), new_state
        return super().step_one(tokens, state)

    def _plain_decoding(self) -> bool:
        """Whether a step may skip nn.Module's call: nothing must see it (forward hooks fire
        only through the call), no label embedding, not training, no autograd."""
        hooked = self._forward_hooks or self._forward_pre_hooks
        return not (hooked or self.label is not None or self.training or torch.is_grad_enabled())

    def single_row_numpy_plan(self) -> numpy_step.NumpyStepPlan | None:
        """The plan a one-row decoding step would run, when it is the NumPy one (float32 on a
        CPU, CHARLM_DECODE_BACKEND not torch, and nothing that must see each call: hooks,
        labels, training, autograd): engine/decoding/single_stream.py loops over it."""
        if not self._plain_decoding() or decode_backend() != "numpy":
            return None
        plan = self._step_plan("numpy")
        return plan if isinstance(plan, numpy_step.NumpyStepPlan) else None

    def _decode_step(
        self, token: torch.Tensor, state: State, label: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, State]:
        """One position, from weights laid out for it (engine/models/recurrent_step.py).

        Generation feeds one character at a time, and for that a fused nn.LSTM call
        is mostly fixed overhead around a few matrix-vector products; the same
        maths as a handful of plain ops costs a fraction. Only used in eval mode
        (no dropout); it agrees with the fused kernel to float rounding. A single
        row steps in NumPy (engine/models/numpy_step.py), a batch in torch, whose
        products use every intra-op thread.
        """
        plans = getattr(_PINNED, "plans", None)
        pinned = plans.get(id(self)) if plans else None
        if pinned is None:
            plan = self._step_plan(self._backend_for(token.shape[0]))
        else:  # {batch size: plan}, each built (and its weights checked) on first use
            plan = pinned.get(token.shape[0])
            if plan is None:
                plan = pinned[token.shape[0]] = self._step_plan(self._backend_for(token.shape[0]))
        logits, new_state = plan.step(token, state, None if label is None else label.select(1, 0))
        return logits.unsqueeze(1), new_state

    def _plan_sources(self) -> list[torch.Tensor]:
        """Every tensor the step plan is built from, looked up afresh (a module or parameter
        may have been replaced). Read from the module dicts directly: a stream checks
        them once per character, and nn.Module.__getattr__ costs a microsecond a name."""
        modules = self._modules
        head = modules["head"]._parameters
        embedding = modules["embedding"]._parameters["weight"]
        return [embedding, *modules["rnn"]._flat_weights, head["weight"], head["bias"]]

    @staticmethod
    def _backend_for(batch: int) -> str:
        return "numpy" if batch == 1 and decode_backend() == "numpy" else "torch"

    def _step_plan(self, backend: str = "torch") -> StepPlan | numpy_step.NumpyStepPlan:
        """The step plan of the current weights for `backend` ("torch" or "numpy"): rebuilt
        whenever any of them changed (their version counters move on every optimizer
        step), so it is never stale. Weights NumPy cannot run (not float32 on a CPU)
        get the torch plan whichever is asked for."""
        sources = self._plan_sources()
        key = weights_key(sources)
        cache = self.__dict__.setdefault("_plan_cache", {})
        cached = cache.get(backend)
        if cached is not None and cached[0] == key and not torch.is_autocast_enabled():
            return cached[1]
        use_numpy = backend == "numpy" and numpy_step.supports(sources)
        plan = (numpy_step.NumpyStepPlan if use_numpy else StepPlan)(
            type(self.rnn).__name__.lower(),
            self.embedding.weight,
            self.rnn._flat_weights,
            self.head.weight,
            self.head.bias,
            self.config.num_layers,
            getattr(self.rnn, "nonlinearity", "tanh"),
        )
        if not torch.is_autocast_enabled():  # never cache a reduced-precision copy
            cache[backend] = (key, plan)
        return plan

    @contextlib.contextmanager
    def steady_weights(self) -> Iterator[None]:
        """Check the step plan once for the whole block instead of on every step.

        The caller promises that the weights do not change inside the block (a
        generation call: the model is not trained while it decodes). The pin is
        per thread, so another thread's steps still check for themselves.
        """
        plans = getattr(_PINNED, "plans", None)
        if plans is None:
            plans = _PINNED.plans = {}
        if id(self) in plans or torch.is_grad_enabled() or self.training:
            yield  # nested, or not a decoding context: nothing to pin
            return
        plans[id(self)] = {}  # filled per batch size on first use, each checked once
        try:
            yield
        finally:
            del plans[id(self)]

    def select_state(self, state: State, index: torch.Tensor) -> State:
        # Hidden states are (layers, batch, hidden): the batch is dimension 1.
        if isinstance(state, tuple):
            return tuple(s.index_select(1, index) for s in state)
        return state.index_select(1, index)

    def state_positions(self, state: State) -> int:
        return 0  # a recurrent state has no length limit to track
