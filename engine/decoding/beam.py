"""Beam search with every beam in one batch: one forward call per step for all of them.

Each step scores all beam_width x vocab one-character extensions at once
(beam log-probability + the model's log-softmax), keeps the best beam_width with
one `topk`, and reorders the model state and histories with `select_state` /
`index_select`: no Python loop over beams (the seed notebook re-ran every beam's
last 64 characters through the model, one beam at a time).

Beams are ranked by the model's own distribution (temperature, top-k/p, min-p
and the repetition penalty are sampling settings and do not apply). Every live
beam has the same length, so length normalisation, score = logprob / len**alpha
(alpha = `length_penalty`, the form Hugging Face's beam search uses), matters
when stop strings end some beams early: a beam that ends with a stop string
among the best beam_width candidates is set aside as finished, the next best
candidates keep the beam full, and the search ends when beam_width beams have
finished (or the length is reached; then the live beams join the finished
ones). Results are the `num_return` best by score (fewer when fewer distinct
continuations exist). With beam_width 1 this is greedy decoding exactly.

An empty prompt starts from a unigram-drawn character (as in engine/decoding/generator.py),
whose unigram log-probability counts in the beam's log-probability.
"""

from __future__ import annotations

import numpy as np
import torch

from engine.decoding.params import BeamResult, DecodingSource, SamplingParams
from engine.decoding.processors import sanitize
from engine.decoding.window import ContextWindow


def _score(logprob: float, length: int, alpha: float) -> float:
    return logprob / (max(length, 1) ** alpha)


def beam_search(
    gen: DecodingSource, ids: np.ndarray, start: int, params: SamplingParams, num_return: int
) -> list[BeamResult]:
    """Beams for one prompt (`ids`, continuation from column `start`); call in inference mode."""
    width, vocab_size = params.beam_width, len(gen.vocab)
    device = gen.device
    total = start + params.length
    first_logprob = 0.0
    if start == 0:  # empty prompt: the first character was drawn from the unigram
        first_logprob = float(torch.log(gen.unigram[int(ids[0])]))
    finished: list[tuple[float, list[int]]] = []  # (logprob, continuation ids)
    if ids.size >= total:
        finished.append((first_logprob, ids[start:].tolist()))
        return _results(gen, finished, params, num_return)

    window = ContextWindow(gen.model, gen.history([ids] * width, total))
    logits = window.prime(ids.size, shared=True)
    live = torch.full((width,), float("-inf"), device=device)
    live[0] = first_logprob  # every beam starts equal: expand only the first at step one
    stops = gen.encode_stops(params.stop)
    span = min(2 * width, width * vocab_size) if stops else width

    for column in range(ids.size, total):
        candidates = live[:, None] + torch.log_softmax(sanitize(logits), dim=-1)
        best = candidates.view(-1).topk(span)
        parents = best.indices // vocab_size
        tokens = best.indices % vocab_size
        values = best.values
        if stops:
            keep, alive = _set_aside_finished(
                window, stops, parents, tokens, values, column, start, width, finished
            )
            if len(finished) >= width or alive == 0:
                break
            parents, tokens, values = parents[keep], tokens[keep], values[keep]
            values[alive:] = float("-inf")  # padding rows, when too few candidates go on
        window.reorder(parents)
        window.push(tokens)
        live = values
        if column + 1 < total:
            logits = window.step()
    else:
        history = window.history[:, start:total].cpu().tolist()
        for logprob, row in zip(live.tolist(), history, strict=True):
            finished.append((logprob, row))
    return _results(gen, finished, params, num_return)


def _set_aside_finished(
    window: ContextWindow,
    stops: list[torch.Tensor],
    parents: torch.Tensor,
    tokens: torch.Tensor,
    values: torch.Tensor,
    column: int,
    start: int,
    width: int,
    finished: list[tuple[float, list[int]]],
) -> tuple[torch.Tensor, int]:
    """Move candidates that end with a stop string (among the best `width`) to `finished`.

    Returns the indices of the `width` best candidates that go on, padded with
    copies of a candidate when fewer remain, and how many of them are real.
    """
    generated = column + 1 - start
    ended = torch.zeros_like(tokens, dtype=torch.bool)
    for stop in stops:
        size = stop.numel()
        if generated < size:
            continue
        before = window.history.index_select(0, parents)[:, column + 1 - size : column]
        tail = torch.cat([before, tokens[:, None]], dim=1)
        ended |= (tail == stop).all(dim=1)
    ended_list = ended.tolist()
    value_list = values.tolist()
    keep: list[int] = []
    for rank, is_end in enumerate(ended_list):
        if is_end:
            if rank < width and value_list[rank] > float("-inf"):
                prefix = window.history[int(parents[rank]), start:column].tolist()
                finished.append((value_list[rank], [*prefix, int(tokens[rank])]))
        elif len(keep) < width:
            keep.append(rank)
    alive = len(keep)
    keep += [keep[0] if keep else 0] * (width - alive)
    return torch.tensor(keep, device=tokens.device), alive


def _results(
    gen: DecodingSource,
    finished: list[tuple[float, list[int]]],
    params: SamplingParams,
    num_return: int,
) -> list[BeamResult]:
    alpha = params.length_penalty
    ranked = sorted(
        (
            BeamResult(gen.decode(row), logprob, _score(logprob, len(row), alpha))
            for logprob, row in finished
            if logprob > float("-inf")
        ),
        key=lambda beam: beam.score,
        reverse=True,
    )
    return ranked[:num_return]
