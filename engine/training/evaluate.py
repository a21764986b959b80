"""Scoring a model on held-out text: loss in nats/char, bits per char, perplexity.

`evaluate_split` scores every character of a split exactly once (all but the
first, which has no context), so figures compare across models and tools:
recurrent models carry their state through the text, and a Transformer slides
its window by half a context so each character sees at least half a context.
For speed the recurrent path cuts the text into up to MAX_STREAMS parallel
streams of at least STREAM_CHARS characters (a step over 100 rows costs little
more than over 10, and the number of sequential steps is what costs): each
stream but the first reads the WARMUP_CHARS characters before its start,
unscored, before scoring its own, so no scored character starts from a cold
state except the split's first ones. (nanoGPT's figure, by contrast, averages
random windows, each of whose characters sees only what is inside its window.)
`evaluate_windows` scores a fixed, seeded set of windows and is what periodic
evaluations during training use.

With a `deadline` (time.monotonic()), scoring stops before a chunk that would
end after it; the result's `chars` then says how many characters were scored.
"""

from __future__ import annotations

import itertools
import math
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch.nn import functional as F

from engine.device import autocast
from engine.models import CharLM

STREAM_CHARS = 1024
MAX_STREAMS = 256
WARMUP_CHARS = 128
CHUNK_STEPS = 512


@dataclass
class EvalResult:
    loss: float
    chars: int

    @property
    def bpc(self) -> float:
        return self.loss / math.log(2)

    @property
    def perplexity(self) -> float:
        return math.exp(min(self.loss, 700.0))

    def as_dict(self, prefix: str = "") -> dict:
        return {
            f"{prefix}loss": self.loss,
            f"{prefix}bpc": self.bpc,
            f"{prefix}perplexity": self.perplexity,
            f"{prefix}chars": self.chars,
        }


def _as_tensor(ids: np.ndarray | torch.Tensor, device: torch.device) -> torch.Tensor:
    """The ids on `device` in a narrow dtype (int32 at most); chunks are widened as used.

    A 100 MB split as int64 would be 800 MB; as uint8 it stays 100 MB.
    """
    if isinstance(ids, torch.Tensor):
        return ids.to(device=device) if ids.dtype != torch.int64 else ids.to(device, torch.int32)
    array = np.asarray(ids)
    if array.dtype not in (np.uint8, np.int16, np.int32):
        array = array.astype(np.int32)
    with warnings.catch_warnings():  # a read-only memory map: we only ever read it
        warnings.simplefilter("ignore", UserWarning)
        return torch.from_numpy(np.ascontiguousarray(array)).to(device)


def _nll_sum(logits: torch.Tensor, targets: torch.Tensor) -> float:
    return float(
        F.cross_entropy(
            logits.float().reshape(-1, logits.shape[-1]),
            targets.reshape(-1).long(),
            reduction="sum",
        )
    )


class _Clock:
    """Says whether the next piece of work, as long as the last one, still ends in time."""

    def __init__(self, deadline: float | None) -> None:
        self.deadline = deadline
        self.last = 0.0
        self.started = time.monotonic()

    def out_of_time(self) -> bool:
        if self.deadline is None:
            return False
        now = time.monotonic()
        self.last, self.started = now - self.started, now
        return now + self.last > self.deadline


def _zero_first_row(state: object) -> object:
    """Row 0 of a batched recurrent state set to a fresh (all-zero) state."""
    if isinstance(state, tuple):
        return tuple(_zero_first_row(s) for s in state)
    state = state.clone()  # type: ignore[attr-defined]
    state[:, 0] = 0
    return state


@torch.inference_mode()
def _recurrent_split(
    model: CharLM,
    ids: torch.Tensor,
    amp: torch.dtype | None,
    deadline: float | None,
    progress: Callable[[int, int], None] | None = None,
) -> EvalResult:
    inputs, targets = ids[:-1], ids[1:]
    total = inputs.numel()
    streams = max(1, min(MAX_STREAMS, total // STREAM_CHARS))
    length = total // streams
    body = streams * length
    x = inputs[:body].view(streams, length)
    y = targets[:body].view(streams, length)
    nll = 0.0
    state = None
    scored = 0
    clock = _Clock(deadline)
    with autocast(ids.device, amp):
        warm = min(WARMUP_CHARS, length) if streams > 1 else 0
        if warm:
            # Stream s reads the end of stream s-1 first; stream 0 has nothing before it,
            # so its warm-up (its own start, a stand-in) is wiped back to a fresh state.
            starts = torch.arange(streams, device=ids.device) * length
            offsets = (starts - warm).clamp_min(0)[:, None] + torch.arange(warm, device=ids.device)
            _, state = model(inputs[offsets].long(), None)
            state = _zero_first_row(state)
        for start in range(0, length, CHUNK_STEPS):
            if clock.out_of_time():
                return EvalResult(nll / scored if scored else math.nan, scored)
            logits, state = model(x[:, start : start + CHUNK_STEPS].long(), state)
            nll += _nll_sum(logits, y[:, start : start + CHUNK_STEPS])
            scored += logits.shape[0] * logits.shape[1]
            if progress is not None:
                progress(scored, total)
        if body < total and not clock.out_of_time():  # the remainder continues the last stream
            last = model.select_state(state, torch.tensor([streams - 1], device=ids.device))
            logits, _ = model(inputs[body:].unsqueeze(0).long(), last)
            nll += _nll_sum(logits, targets[body:].unsqueeze(0))
            scored = total
    if progress is not None and scored == total:
        progress(total, total)
    return EvalResult(nll / scored if scored else math.nan, scored)


@torch.inference_mode()
def _windowed_split(
    model: CharLM,
    ids: torch.Tensor,
    amp: torch.dtype | None,
    deadline: float | None,
    batch: int = 32,
    progress: Callable[[int, int], None] | None = None,
) -> EvalResult:
    window = int(model.max_context or 256)
    inputs, targets = ids[:-1], ids[1:]
    total = inputs.numel()
    if total <= window:
        starts, first_scored = [0], [0]
        window = total
    else:
        stride = window // 2
        starts = list(range(0, total - window + 1, stride))
        if starts[-1] != total - window:
            starts.append(total - window)
        # A window scores the positions after the end of the previous one.
        first_scored = [0] + [(prev + window) - start for prev, start in itertools.pairwise(starts)]
    nll = 0.0
    scored = 0
    clock = _Clock(deadline)
    with autocast(ids.device, amp):
        for i in range(0, len(starts), batch):
            if clock.out_of_time():
                return EvalResult(nll / scored if scored else math.nan, scored)
            group = torch.tensor(starts[i : i + batch], device=ids.device)
            offsets = group[:, None] + torch.arange(window, device=ids.device)
            logits, _ = model(inputs[offsets].long())
            for row, skip in enumerate(first_scored[i : i + batch]):
                nll += _nll_sum(logits[row, skip:], targets[offsets[row, skip:]])
                scored += window - skip
            if progress is not None:
                progress(scored, total)
    assert scored == total, (scored, total)
    return EvalResult(nll / total, total)


def evaluate_split(
    model: CharLM,
    ids: np.ndarray | torch.Tensor,
    device: torch.device | str = "cpu",
    amp: torch.dtype | None = None,
    deadline: float | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> EvalResult:
    """Every character of `ids` (after the first) scored once; the model is left in eval mode.

    With a `deadline` it may stop early: then `chars` is below len(ids) - 1.
    `progress(done, total)` is called as characters are scored (a split can take a minute).
    """
    device = torch.device(device)
    model.eval()
    tensor = _as_tensor(ids, device)
    if tensor.numel() < 2:
        raise ValueError("need at least two characters to evaluate")
    if model.max_context is None:
        return _recurrent_split(model, tensor, amp, deadline, progress)
    return _windowed_split(model, tensor, amp, deadline, progress=progress)


class WindowSampler:
    """A fixed, seeded set of evaluation windows over a split."""

    def __init__(self, ids: np.ndarray, chars: int, window: int, seed: int, device: torch.device):
        count = max(1, chars // window)
        span = len(ids) - window - 1
        rng = np.random.default_rng(seed)
        starts = rng.integers(0, max(span, 1), size=count) if span > 0 else np.zeros(1, int)
        idx = starts[:, None] + np.arange(window + 1)
        self.windows = torch.from_numpy(np.asarray(ids)[idx].astype(np.int64)).to(device)
        self.chars = int(self.windows.shape[0] * window)


@torch.inference_mode()
def evaluate_windows(
    model: CharLM, sampler: WindowSampler, amp: torch.dtype | None, batch: int = 64
) -> EvalResult:
    was_training = model.training
    model.eval()
    nll = 0.0
    with autocast(sampler.windows.device, amp):
        for i in range(0, sampler.windows.shape[0], batch):
            chunk = sampler.windows[i : i + batch]
            logits, _ = model(chunk[:, :-1])
            nll += _nll_sum(logits, chunk[:, 1:])
    model.train(was_training)
    return EvalResult(nll / sampler.chars, sampler.chars)
