"""One stream of plain sampling from a recurrent model, as a NumPy loop.

The general decoding loop (engine/decoding/generator.py) serves every batch and
every processor: per character it pushes the token into a torch history, steps
the model through its torch interface and runs the logits pipeline as torch
ops. For one stream on a CPU that machinery costs more than the model: about
90 us a character against a 110 us step (2x256 LSTM, EPYC). When nothing needs
it (one row, temperature or greedy only: no top-k, top-p, min-p, repetition
penalty or stop strings) the same sampling runs here as a NumPy loop over the
model's NumPy step (engine/models/numpy_step.py), 1.5x as fast end to end.

The distribution is the pipeline's: logits made finite as `sanitize` does,
shifted by their maximum and divided by the temperature, exponentiated, and
one inverse-CDF draw per character from the caller's torch Generator (the
uniforms drawn up front, in float64), so a character of probability 0 is never
drawn; greedy is the arg-max, the first on ties. Draws follow the seed, but not
the general loop's bit for bit (its uniforms are drawn one per step in float32).
"""

from __future__ import annotations

import numpy as np
import torch

from engine.decoding.params import SamplingParams
from engine.decoding.processors import LogitsPipeline
from engine.models import CharLM, State
from engine.models.numpy_step import NumpyStepPlan

_LOWEST = float(np.finfo(np.float32).min)
_HIGHEST = float(np.finfo(np.float32).max) / 4


def single_stream_plan(
    model: CharLM, rows: int, params: SamplingParams, pipeline: LogitsPipeline
) -> NumpyStepPlan | None:
    """The NumPy step plan to loop over, when this decoding can take the NumPy loop."""
    plain = (
        pipeline.top_k is None
        and pipeline.top_p is None
        and pipeline.min_p is None
        and not pipeline.needs_history
        and not params.stop
    )
    find = getattr(model, "single_row_numpy_plan", None)
    if rows != 1 or not plain or find is None:
        return None
    return find()


def sample_stream(
    plan: NumpyStepPlan,
    logits: torch.Tensor,
    state: State,
    steps: int,
    pipeline: LogitsPipeline,
    generator: torch.Generator,
) -> np.ndarray:
    """`steps` token ids sampled after a prompt whose next-token `logits` (1, V) and model
    `state` the caller has; the last one is not fed to the model."""
    if isinstance(state, tuple):
        arrays = tuple(s.detach().numpy() for s in state)
    else:
        arrays = (state.detach().numpy(),)
    current = logits.detach().float().reshape(1, -1)
    tokens = np.empty(steps, dtype=np.int64)
    choose = pipeline.choose
    for i in range(steps):
        token = int(choose(current, None, generator))
        tokens[i] = token
        if i + 1 < steps:
            out, arrays = plan.step_arrays(plan.table[token : token + 1], arrays)
            current = torch.from_numpy(out)
    return tokens
