"""The periodic evaluation during training: a fixed, seeded set of held-out windows.

Apart from engine/training/evaluate.py, which scores a whole split exactly once: these
windows are a cheap, comparable estimate taken every `eval_interval` steps.

A split of up to TILE_UP_TO times the evaluation's characters (a names list, a small
corpus: where the run's best model matters most, since it overfits) is tiled instead:
every character is scored once, each after at least a quarter window of the text
before it. Random windows there overlapped (16k chars drawn from a 21k
split cover about half of it) and each evaluation's sampling noise was ~0.012 nats,
as large as the differences that choose the best model; the tiles choose it on the
split itself, and the final whole-split score of that model agrees with its estimate.
"""

from __future__ import annotations

import numpy as np
import torch

from engine.device import autocast
from engine.models import CharLM
from engine.training.evaluate import EvalResult, eval_result, nll_sum, text_lengths

TILE_UP_TO = 2  # a split up to this many times the evaluation's characters is tiled


class WindowSampler:
    """A fixed, seeded set of evaluation windows over a split.

    With `segments` (a labelled split) windows lie inside one label each and carry
    its condition id in `conditions`, so a conditional model is scored with its labels.
    A small unlabelled split is tiled (see the module docstring); `scored` then marks
    the targets each window scores, and is None where every target is scored.
    """

    def __init__(
        self,
        ids: np.ndarray,
        chars: int,
        window: int,
        seed: int,
        device: torch.device,
        segments: np.ndarray | None = None,
    ):
        chars = min(chars, max(len(ids) - 1, 1))
        count = max(1, chars // window)
        rng = np.random.default_rng(seed)
        self.conditions: torch.Tensor | None = None
        self.scored: torch.Tensor | None = None
        if segments is None and 0 < len(ids) - 1 <= TILE_UP_TO * chars:
            self._tile(np.asarray(ids), window, device)
            return
        if segments is not None:
            window = max(1, min(window, int((segments[:, 1] - segments[:, 0]).min()) - 1))
            spans = np.maximum(segments[:, 1] - segments[:, 0] - window, 1)
            which = rng.choice(len(segments), size=count, p=spans / spans.sum())
            starts = segments[which, 0] + rng.integers(0, spans[which])
            self.conditions = torch.from_numpy(segments[which, 2] + 1).to(device)
        else:
            span = len(ids) - window - 1
            starts = rng.integers(0, max(span, 1), size=count) if span > 0 else np.zeros(1, int)
        idx = starts[:, None] + np.arange(window + 1)
        self.windows = torch.from_numpy(np.asarray(ids)[idx].astype(np.int64)).to(device)
        self.chars = int(self.windows.shape[0] * window)

    def _tile(self, ids: np.ndarray, window: int, device: torch.device) -> None:
        """Windows as long as the random ones (a Transformer's context holds them), each
        scoring its last `window - window // 4` targets after the unscored ones before
        them; together they score every target of the split once (all but the first)."""
        length = min(window + 1, len(ids))
        step = max(1, window - window // 4)
        first = np.arange(1, len(ids), step)  # the first target each tile scores
        last = np.minimum(first + step - 1, len(ids) - 1)
        starts = np.clip(last - (length - 1), 0, None)  # each tile ends at its last target
        idx = starts[:, None] + np.arange(length)
        targets = idx[:, 1:]  # the absolute position of each window's targets
        scored = (targets >= first[:, None]) & (targets <= last[:, None])
        self.windows = torch.from_numpy(ids[idx].astype(np.int64)).to(device)
        self.scored = torch.from_numpy(scored).to(device)
        self.chars = int(scored.sum())


@torch.inference_mode()
def evaluate_windows(
    model: CharLM,
    sampler: WindowSampler,
    amp: torch.dtype | None,
    batch: int = 64,
    token_chars: np.ndarray | torch.Tensor | None = None,
) -> EvalResult:
    was_training = model.training
    model.eval()
    nll = 0.0
    lengths = text_lengths(token_chars, sampler.windows.device)
    if lengths is not None:
        target_lengths = lengths[sampler.windows[:, 1:]]
        if sampler.scored is not None:
            target_lengths = target_lengths * sampler.scored
        text = int(target_lengths.sum())
        nll_words = evaluate_windows(model, sampler, amp, batch)
        model.train(was_training)
        return eval_result(nll_words.loss * sampler.chars, sampler.chars, text)
    with autocast(sampler.windows.device, amp):
        for i in range(0, sampler.windows.shape[0], batch):
            chunk = sampler.windows[i : i + batch]
            if sampler.conditions is None:
                logits, _ = model(chunk[:, :-1])
            else:
                logits, _ = model(chunk[:, :-1], None, sampler.conditions[i : i + batch])
            scored = None if sampler.scored is None else sampler.scored[i : i + batch]
            nll += nll_sum(logits, chunk[:, 1:], scored)
    model.train(was_training)
    return EvalResult(nll / sampler.chars, sampler.chars)
