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

A recurrent model reads `context` unscored characters before each window's scored
ones (its state carries them, as it carries the whole split in the final score).
Scored from a cold state, a window's first characters have almost nothing before
them: on tinyshakespeare a 512-wide LSTM's estimate read 1.482 against 1.439 on the
whole split; a context of one window more read 1.441, for about twice the (small)
cost of an estimate. A Transformer reads no more than its block holds.
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
    the targets each window scores. Random windows score every target after their
    first `context` (`unscored`), and `scored` is None.
    """

    def __init__(
        self,
        ids: np.ndarray,
        chars: int,
        window: int,
        seed: int,
        device: torch.device,
        segments: np.ndarray | None = None,
        context: int = 0,
    ):
        chars = min(chars, max(len(ids) - 1, 1))
        count = max(1, chars // window)
        rng = np.random.default_rng(seed)
        self.conditions: torch.Tensor | None = None
        self.scored: torch.Tensor | None = None
        self.unscored = 0
        if segments is None and 0 < len(ids) - 1 <= TILE_UP_TO * chars:
            self._tile(np.asarray(ids), window, context, device)
            return
        if segments is not None:
            shortest = int((segments[:, 1] - segments[:, 0]).min()) - 1
            window = max(1, min(window, shortest))
            context = max(0, min(context, shortest - window))
            spans = np.maximum(segments[:, 1] - segments[:, 0] - window - context, 1)
            which = rng.choice(len(segments), size=count, p=spans / spans.sum())
            starts = segments[which, 0] + rng.integers(0, spans[which])
            self.conditions = torch.from_numpy(segments[which, 2] + 1).to(device)
        else:
            window = min(window, max(len(ids) - 1, 1))
            context = max(0, min(context, len(ids) - 1 - window))
            span = len(ids) - window - context - 1
            starts = rng.integers(0, max(span, 1), size=count) if span > 0 else np.zeros(1, int)
        idx = starts[:, None] + np.arange(context + window + 1)
        self.windows = torch.from_numpy(np.asarray(ids)[idx].astype(np.int64)).to(device)
        self.unscored = context
        self.chars = int(self.windows.shape[0] * window)

    def _tile(self, ids: np.ndarray, window: int, context: int, device: torch.device) -> None:
        """Windows as long as the random ones (`context + window`: the model's context
        holds them), each scoring its last targets after at least `context` (at least a
        quarter window) unscored ones before them; together they score every target of
        the split once (all but the first)."""
        length = min(context + window + 1, len(ids))
        step = max(1, context + window - max(context, window // 4))
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
    skip = sampler.unscored
    if lengths is not None:
        target_lengths = lengths[sampler.windows[:, 1 + skip :]]
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
            nll += nll_sum(logits[:, skip:], chunk[:, 1 + skip :], scored)
    model.train(was_training)
    return EvalResult(nll / sampler.chars, sampler.chars)
