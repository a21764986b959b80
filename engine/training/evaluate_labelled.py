"""Scoring a labelled held-out split: each label's span on its own, with its label or none.

Apart from engine/training/evaluate.py because it is a loop over spans on top of
`evaluate_split` (the conditional run's final evaluation and `eval --labels`), not
another way of scoring text.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np
import torch

from engine.models import CharLM
from engine.training.evaluate import EvalResult, evaluate_split


def evaluate_labelled(
    model: CharLM,
    ids: np.ndarray,
    segments: np.ndarray,
    labels: tuple[str, ...],
    device: torch.device | str = "cpu",
    amp: torch.dtype | None = None,
    *,
    with_label: bool,
    limit: int | None = None,
    condition_of: Callable[[int], int | None] | None = None,
    deadline: float | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> tuple[EvalResult, dict[str, EvalResult]]:
    """Loss over every label's span on its own, each with its true label (`with_label`) or
    with none; the overall figure weights labels by their size. `limit` scores at most
    that many chars in all, shared across labels by size. `condition_of` maps a label
    index to the model's condition id (default: index + 1; None: the label is unknown to
    the model, which then gets no label). A `deadline` cuts the scoring short (labels not
    reached are left out, the one under way is partial); `progress(done, total)` counts
    positions over all the labels' spans."""
    condition_of = condition_of or (lambda label: label + 1)
    total = int(sum(end - start for start, end, _ in segments.tolist()))
    spans = []
    for start, end, label in segments.tolist():
        stop = end
        if limit is not None and limit < total:
            stop = start + max(2, int((end - start) * limit / total))
        if stop - start >= 2:
            spans.append((start, stop, label))
    to_score = sum(stop - start - 1 for start, stop, _ in spans)
    results: dict[str, EvalResult] = {}
    nll = chars = 0.0
    done = 0
    for start, stop, label in spans:
        if deadline is not None and time.monotonic() >= deadline:
            break
        condition = condition_of(label) if with_label else None
        if condition is None and model.num_labels:
            condition = 0
        report = None
        if progress is not None:
            report = lambda d, _t, base=done: progress(base + d, to_score)  # noqa: E731
        result = evaluate_split(
            model, ids[start:stop], device, amp, deadline, report, condition=condition
        )
        done += stop - start - 1
        results[labels[label]] = result
        nll += result.loss * result.chars
        chars += result.chars
    overall = EvalResult(nll / chars if chars else float("nan"), int(chars))
    return overall, results
