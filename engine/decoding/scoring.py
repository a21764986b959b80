"""How likely a model finds a given continuation of a prompt, under the generator's own rules.

The continuation is teacher-forced through the same ContextWindow the generator
uses (prompt primed once, then fed in chunks with the same Transformer window
slides), so a score here is the probability the generator itself assigned, and a
beam's log-probability can be checked against it. A continuation of an empty
prompt has its first character scored by the unigram distribution, as the
generator drew it from there.

`continuation_chars` gives the same scores in the shape streamed sampling has
(each character's probability and the model's top alternatives), so a beam
search's text, which arrives whole, can be coloured as a sampled one is.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
import torch

from engine.data.corpus import Vocab
from engine.decoding.processors import sanitize
from engine.decoding.window import ContextWindow
from engine.models import CharLM

TOP_ALTERNATIVES = 5


def continuation_log_probs(
    model: CharLM,
    prompt_ids: np.ndarray,
    continuation_ids: np.ndarray,
    unigram: torch.Tensor,
) -> torch.Tensor:
    """(n, V) float32 log-probabilities of the next character at each of the n positions."""
    prompt_ids = np.asarray(prompt_ids, dtype=np.int64)
    continuation = np.asarray(continuation_ids, dtype=np.int64)
    device = unigram.device
    pieces = []
    if prompt_ids.size == 0 and continuation.size:
        pieces.append(torch.log(unigram.float())[None])
        prompt_ids, continuation = continuation[:1], continuation[1:]
    if continuation.size:
        # The last character is predicted, never fed.
        tokens = np.concatenate([prompt_ids, continuation[:-1]])
        history = torch.as_tensor(tokens, device=device)[None]
        was_training = model.training
        model.eval()
        try:
            with torch.inference_mode():
                window = ContextWindow(model, history, filled=tokens.size)
                logits = [window.prime(prompt_ids.size)]
                if continuation.size > 1:
                    logits.append(window.feed(continuation.size - 1)[0])
                pieces.append(torch.log_softmax(sanitize(torch.cat(logits)), dim=-1))
        finally:
            model.train(was_training)
    if not pieces:
        return torch.empty(0, unigram.numel(), device=device)
    return torch.cat(pieces)


def continuation_log_likelihood(
    model: CharLM,
    prompt_ids: np.ndarray,
    continuation_ids: np.ndarray,
    unigram: torch.Tensor,
) -> np.ndarray:
    """Natural-log probability of each continuation character, shape (n,) float64."""
    log_probs = continuation_log_probs(model, prompt_ids, continuation_ids, unigram)
    index = torch.as_tensor(np.asarray(continuation_ids, dtype=np.int64), device=log_probs.device)
    if index.numel() == 0:
        return np.zeros(0)
    return log_probs.gather(1, index[:, None]).squeeze(1).double().cpu().numpy()


def continuation_chars(
    model: CharLM, vocab: Vocab, unigram: torch.Tensor, prompt: str, text: str
) -> Iterator[tuple[str, float, float, list[tuple[str, float]]]]:
    """(char, prob, model_prob, top alternatives) for each character of `text` after `prompt`.

    Characters outside the vocabulary are dropped from both, as generation drops them.
    prob and model_prob are the same (the model's, unprocessed): there are no
    sampling processors to tell apart after the fact.
    """
    prompt_ids = vocab.encode(prompt, drop_unknown=True)
    ids = vocab.encode(text, drop_unknown=True)
    if ids.size == 0:
        return
    probs = continuation_log_probs(model, prompt_ids, ids, unigram).exp().cpu()
    for target, row in zip(ids.tolist(), probs, strict=True):
        q = float(row[target])
        yield vocab.chars[target], q, q, top_alternatives(row, vocab.chars)


def top_alternatives(probs: torch.Tensor, chars: Sequence[str]) -> list[tuple[str, float]]:
    """The TOP_ALTERNATIVES most likely characters of one (V,) distribution, (char, prob)."""
    values, indices = torch.topk(probs, min(TOP_ALTERNATIVES, probs.numel()))
    return [(chars[i], float(v)) for v, i in zip(values.tolist(), indices.tolist(), strict=True)]
