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
`evaluate_windows` (engine/training/eval_windows.py) scores a fixed, seeded set of
windows and is what periodic evaluations during training use; `evaluate_labelled`
(engine/training/evaluate_labelled.py) scores a labelled split label by label.

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
# Positions per forward call of the streams. Short enough that a chunk's activations stay
# in cache (1x256 and 1x512 LSTMs over 108 streams scored 10-20% faster at 128 than at 512,
# EPYC AVX2) and that a deadline cuts a split at a fine grain, long enough that per-call
# overhead is negligible.
CHUNK_STEPS = 128


@dataclass
class EvalResult:
    """`loss` is nats per character of text whatever a token is, so models compare.

    For a word model (`token_chars` given) `chars` counts the characters of the scored
    tokens, and `loss_per_token` / `tokens_scored` give the figure per token.
    """

    loss: float
    chars: int
    loss_per_token: float | None = None
    tokens_scored: int | None = None

    @property
    def positions(self) -> int:
        """How many ids were scored (tokens for a word model, else characters)."""
        return self.tokens_scored if self.tokens_scored is not None else self.chars

    @property
    def bpc(self) -> float:
        return self.loss / math.log(2)

    @property
    def perplexity(self) -> float:
        return math.exp(min(self.loss, 700.0))

    def as_dict(self, prefix: str = "") -> dict:
        out = {
            f"{prefix}loss": self.loss,
            f"{prefix}bpc": self.bpc,
            f"{prefix}perplexity": self.perplexity,
            f"{prefix}chars": self.chars,
        }
        if self.tokens_scored is not None:
            out[f"{prefix}bits_per_char"] = self.bpc
            out[f"{prefix}loss_per_token"] = self.loss_per_token
            out[f"{prefix}tokens_scored"] = self.tokens_scored
        return out


def eval_result(nll: float, scored: int, text_chars: int | None) -> EvalResult:
    """Per character; with `text_chars` (a word model) per token as well."""
    if text_chars is None:
        return EvalResult(nll / scored if scored else math.nan, scored)
    return EvalResult(
        nll / text_chars if text_chars else math.nan,
        text_chars,
        nll / scored if scored else math.nan,
        scored,
    )


def text_lengths(token_chars: np.ndarray | torch.Tensor | None, device: torch.device):
    if token_chars is None:
        return None
    return torch.as_tensor(np.asarray(token_chars), dtype=torch.int64, device=device)


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


def nll_sum(
    logits: torch.Tensor, targets: torch.Tensor, scored: torch.Tensor | None = None
) -> float:
    """Summed negative log-likelihood of `targets`; with `scored`, of the marked ones only."""
    flat = logits.float().reshape(-1, logits.shape[-1])
    if scored is None:
        return float(F.cross_entropy(flat, targets.reshape(-1).long(), reduction="sum"))
    losses = F.cross_entropy(flat, targets.reshape(-1).long(), reduction="none")
    return float(losses[scored.reshape(-1)].sum())


class _Clock:
    """Says whether the next piece of work, as long as the last one, still ends in time."""

    def __init__(self, deadline: float | None) -> None:
        self.deadline = deadline
        self.last = 0.0
        self.started = time.monotonic()

    def restart(self) -> None:
        """Time the next piece from now: a one-off piece (a warm-up) is no estimate of the rest."""
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


# sink(logits (R, T, V), positions (R, T)): what to do with the predictions for
# targets[positions]; every position of the split is handed over at most once.
Sink = Callable[[torch.Tensor, torch.Tensor], None]


def _call(model: CharLM, tokens: torch.Tensor, state: object, condition: int | None):
    """The model on `tokens`, with every row conditioned on `condition` (an id) if given."""
    if condition is None:
        return model(tokens, state)
    rows = torch.full((tokens.shape[0],), condition, dtype=torch.long, device=tokens.device)
    return model(tokens, state, rows)


@torch.inference_mode()
def _recurrent_split(
    model: CharLM,
    ids: torch.Tensor,
    amp: torch.dtype | None,
    condition: int | None,
    sink: Sink,
    deadline: float | None,
    progress: Callable[[int, int], None] | None = None,
) -> int:
    """Scores into `sink`; returns how many characters were scored."""
    inputs = ids[:-1]
    total = inputs.numel()
    streams = max(1, min(MAX_STREAMS, total // STREAM_CHARS))
    length = total // streams
    body = streams * length
    x = inputs[:body].view(streams, length)
    where = torch.arange(body, device=ids.device).view(streams, length)
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
            _, state = _call(model, inputs[offsets].long(), None, condition)
            state = _zero_first_row(state)
            clock.restart()
        for start in range(0, length, CHUNK_STEPS):
            if clock.out_of_time():
                return scored
            logits, state = _call(model, x[:, start : start + CHUNK_STEPS].long(), state, condition)
            sink(logits, where[:, start : start + CHUNK_STEPS])
            scored += logits.shape[0] * logits.shape[1]
            if progress is not None:
                progress(scored, total)
        if body < total and not clock.out_of_time():  # the remainder continues the last stream
            last = model.select_state(state, torch.tensor([streams - 1], device=ids.device))
            logits, _ = _call(model, inputs[body:].unsqueeze(0).long(), last, condition)
            sink(logits, torch.arange(body, total, device=ids.device)[None])
            scored = total
    if progress is not None and scored == total:
        progress(total, total)
    return scored


@torch.inference_mode()
def _windowed_split(
    model: CharLM,
    ids: torch.Tensor,
    amp: torch.dtype | None,
    condition: int | None,
    sink: Sink,
    deadline: float | None,
    batch: int = 32,
    progress: Callable[[int, int], None] | None = None,
) -> int:
    window = int(model.max_context or 256)
    inputs = ids[:-1]
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
    scored = 0
    clock = _Clock(deadline)
    with autocast(ids.device, amp):
        for i in range(0, len(starts), batch):
            if clock.out_of_time():
                return scored
            group = torch.tensor(starts[i : i + batch], device=ids.device)
            offsets = group[:, None] + torch.arange(window, device=ids.device)
            logits, _ = _call(model, inputs[offsets].long(), None, condition)
            for row, skip in enumerate(first_scored[i : i + batch]):
                sink(logits[row : row + 1, skip:], offsets[row : row + 1, skip:])
                scored += window - skip
            if progress is not None:
                progress(scored, total)
    assert scored == total, (scored, total)
    return total


def _score(
    model: CharLM,
    ids: np.ndarray | torch.Tensor,
    device: torch.device | str,
    amp: torch.dtype | None,
    condition: int | None,
    sink_for: Callable[[torch.Tensor], Sink],
    deadline: float | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> int:
    device = torch.device(device)
    model.eval()
    tensor = _as_tensor(ids, device)
    if tensor.numel() < 2:
        raise ValueError("need at least two characters to evaluate")
    sink = sink_for(tensor[1:])
    if model.max_context is None:
        return _recurrent_split(model, tensor, amp, condition, sink, deadline, progress)
    return _windowed_split(model, tensor, amp, condition, sink, deadline, progress=progress)


def evaluate_split(
    model: CharLM,
    ids: np.ndarray | torch.Tensor,
    device: torch.device | str = "cpu",
    amp: torch.dtype | None = None,
    deadline: float | None = None,
    progress: Callable[[int, int], None] | None = None,
    condition: int | None = None,
    token_chars: np.ndarray | torch.Tensor | None = None,
) -> EvalResult:
    """Every character of `ids` (after the first) scored once; the model is left in eval mode.

    With a `deadline` it may stop early: then `chars` is below len(ids) - 1.
    `progress(done, total)` is called as characters are scored (a split can take a minute).
    `condition`: a conditional model's condition id for every position (0: no label).
    `token_chars`: characters per token id (a word model): the loss is then divided by
    the characters of the scored tokens, not by their number.
    """
    nll = [0.0]
    text = [0]
    lengths = text_lengths(token_chars, torch.device(device))

    def sink_for(targets: torch.Tensor) -> Sink:
        def sink(logits: torch.Tensor, positions: torch.Tensor) -> None:
            chosen = targets[positions]
            nll[0] += nll_sum(logits, chosen)
            if lengths is not None:
                text[0] += int(lengths[chosen.long()].sum())

        return sink

    scored = _score(model, ids, device, amp, condition, sink_for, deadline, progress)
    return eval_result(nll[0], scored, text[0] if lengths is not None else None)


def split_log_probs(
    model: CharLM,
    ids: np.ndarray | torch.Tensor,
    device: torch.device | str = "cpu",
    condition: int | None = None,
) -> torch.Tensor:
    """(len(ids) - 1, V) float32 log-probabilities of each next character, scored as
    `evaluate_split` scores them (blends and mixture-weight fitting combine these)."""
    out: list[torch.Tensor] = []

    def sink_for(targets: torch.Tensor) -> Sink:
        out.append(torch.empty(targets.numel(), model_vocab(model), device=targets.device))

        def sink(logits: torch.Tensor, positions: torch.Tensor) -> None:
            flat = logits.float().reshape(-1, logits.shape[-1])
            out[0][positions.reshape(-1)] = torch.log_softmax(flat, dim=-1)

        return sink

    _score(model, ids, device, None, condition, sink_for)
    return out[0]


def model_vocab(model: CharLM) -> int:
    return int(model.config.vocab_size)
