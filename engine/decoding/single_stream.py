"""One stream of plain sampling from a recurrent model, as a NumPy loop.

The general decoding loop (engine/decoding/steps.py) serves every batch and
every processor: per character it pushes the token into a torch history, steps
the model through its torch interface and runs the logits pipeline as torch
ops. For one stream on a CPU that machinery costs more than the model: about
90 us a character against a 110 us step (2x256 LSTM, EPYC). When nothing needs
it (one row, temperature or greedy only: no top-k, top-p, min-p, repetition
penalty or stop strings) the same sampling runs here as a NumPy loop over the
model's NumPy step (engine/models/numpy_step.py), 1.5x as fast end to end.

Only the model step leaves torch: each character is still chosen by
`LogitsPipeline.choose` on the (1, V) logits, with one uniform per character
drawn from the caller's torch Generator, exactly as the general loop chooses
(greedy included), so for a seed this loop writes the general loop's text bit
for bit (tests/engine/test_single_stream.py checks it).
"""

from __future__ import annotations

import numpy as np
import torch

from engine.decoding.params import SamplingParams
from engine.decoding.processors import LogitsPipeline
from engine.models import CharLM, State
from engine.models.numpy_step import NumpyStepPlan


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
