"""The one decoding loop: B rows in lockstep, one model step per column.

`Generator.generate` (many rows, no per-character information) and
`Generator.stream` (one row, each character with what the app shows about it)
both run `columns`, so they cannot disagree for a seed: the choice of every
character goes through `choose`, which applies the logits pipeline and then
`LogitsPipeline.draw` (the arg-max when greedy, else one inverse-CDF draw).
Two decoders sit beside this loop, not inside it: beam search
(engine/decoding/beam.py) ranks beams instead of drawing, and one plain row on a
CPU is handed to the model's NumPy step (engine/decoding/single_stream.py),
which draws through the same `LogitsPipeline.choose`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence

import torch

from engine.decoding.params import TokenInfo
from engine.decoding.processors import LogitsPipeline, sanitize
from engine.decoding.scoring import TOP_ALTERNATIVES
from engine.decoding.window import ContextWindow


def choose(
    logits: torch.Tensor,
    recent: torch.Tensor | None,
    pipeline: LogitsPipeline,
    rng: torch.Generator,
    chars: Sequence[str] | None = None,
) -> tuple[torch.Tensor, TokenInfo | None]:
    """The next character id of every row (B,), and with `chars`, row 0's TokenInfo.

    The information costs one softmax of the raw logits and one host read; the
    draw is the same with or without it (the processed distribution is the
    model's own when nothing changed the logits, so its softmax is reused).
    """
    clean = sanitize(logits)
    processed = pipeline.process(clean, recent)
    if chars is None:
        return pipeline.draw(processed, rng), None
    model_probs = clean.softmax(dim=-1)
    probs = model_probs if processed is clean else processed.softmax(dim=-1)
    token = pipeline.draw(processed, rng, probs)
    row = model_probs[0]
    top = row.topk(min(TOP_ALTERNATIVES, row.numel()))
    picked = [token.to(row.dtype), row.gather(0, token), probs[0].gather(0, token)]
    packed = torch.cat([*picked, top.values, top.indices.to(row.dtype)]).tolist()
    count = top.values.numel()
    char_id, model_prob, prob = int(packed[0]), packed[1], packed[2]
    rest = packed[len(picked) :]
    alternatives = [(chars[int(i)], p) for p, i in zip(rest[:count], rest[count:], strict=True)]
    return token, TokenInfo(chars[char_id], prob, model_prob, alternatives)


def columns(
    window: ContextWindow,
    logits: torch.Tensor,
    pipeline: LogitsPipeline,
    rng: torch.Generator,
    first: int,
    end: int,
    *,
    prompt_ends: torch.Tensor | None = None,
    chars: Sequence[str] | None = None,
    stepped: Callable[[], None] | None = None,
) -> Iterator[TokenInfo | None]:
    """Choose and push the token of columns `first`..`end - 1` of every row.

    `logits` are the next-token logits after column `first - 1`. A row whose
    prompt ends later (`prompt_ends`, per row) is fed its prompt instead of the
    choice until then. Yields after each push (row 0's TokenInfo with `chars`);
    the model steps on the pushed tokens only when the caller asks for the next
    column, so a caller that stops early never pays for a step it does not use.
    `stepped` runs after each step (a stream keeps snapshots of the state there).
    """
    longest = first if prompt_ends is None else int(prompt_ends.max())
    size = pipeline.repetition_window
    for column in range(first, end):
        recent = None
        if pipeline.needs_history:
            recent = window.history[:, max(0, window.filled - size) : window.filled]
        token, info = choose(logits, recent, pipeline, rng, chars)
        if column < longest and prompt_ends is not None:  # rows still inside their prompt
            token = torch.where(column < prompt_ends, window.history[:, column], token)
        window.push(token)
        yield info
        if column + 1 < end:
            logits = window.step()
            if stepped is not None:
                stepped()


def mark_stops(
    window: ContextWindow,
    stops: list[torch.Tensor],
    starts: torch.Tensor,
    stop_at: torch.Tensor,
    never: int,
) -> torch.Tensor:
    """Record, per row, the column just after the first stop string that has ended."""
    end = window.filled
    generated = end - starts
    for stop in stops:
        size = stop.numel()
        if end < size:
            continue
        hit = (window.history[:, end - size : end] == stop).all(dim=1) & (generated >= size)
        stop_at = torch.where(hit & (stop_at == never), end, stop_at)
    return stop_at
