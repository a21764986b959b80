"""The periodic evaluation during training: a fixed, seeded set of held-out windows.

Apart from engine/training/evaluate.py, which scores a whole split exactly once: these
windows are a cheap, comparable estimate taken every `eval_interval` steps.
"""

from __future__ import annotations

import numpy as np
import torch

from engine.device import autocast
from engine.models import CharLM
from engine.training.evaluate import EvalResult, eval_result, nll_sum, text_lengths


class WindowSampler:
    """A fixed, seeded set of evaluation windows over a split.

    With `segments` (a labelled split) windows lie inside one label each and carry
    its condition id in `conditions`, so a conditional model is scored with its labels.
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
        count = max(1, chars // window)
        rng = np.random.default_rng(seed)
        self.conditions: torch.Tensor | None = None
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
        text = int(lengths[sampler.windows[:, 1:]].sum())
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
            nll += nll_sum(logits, chunk[:, 1:])
    model.train(was_training)
    return EvalResult(nll / sampler.chars, sampler.chars)
