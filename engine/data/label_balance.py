"""How often each label of a labelled corpus is trained on: tempered sampling.

A conditional run draws each training window in two steps: a label, with
probability proportional to size ** alpha, then a window uniformly inside that
label's training text. alpha = 1 is the natural distribution (every window of
the corpus equally likely: a 240 KB label is drawn 10x as often as a 24 KB
one), alpha = 0 is uniform over labels (each as often as any other, however
small), and the default, DEFAULT_LABEL_BALANCE = 0.5, is in between (square-root
tempering, as multilingual language models sample their languages): 240 KB
beside 24 KB is drawn about 3.2x as often, not 10x, so a small label is learned
without being repeated so often that it is memorised.

Only training is tempered. The validation loss is still the held-out text of
every label scored as it comes (each label's weight is its size: the natural
distribution), so it stays comparable with an unconditional run on the same text.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

DEFAULT_LABEL_BALANCE = 0.5


def label_shares(sizes: Sequence[float], alpha: float = DEFAULT_LABEL_BALANCE) -> np.ndarray:
    """Each label's share of the training windows: size ** alpha, normalised.

    A label of size 0 (nothing to draw from) gets share 0 whatever alpha is.
    """
    sizes_array = np.asarray(sizes, dtype=np.float64)
    if sizes_array.ndim != 1 or len(sizes_array) == 0 or (sizes_array < 0).any():
        raise ValueError("label sizes must be a non-empty list of sizes >= 0")
    if not (math.isfinite(alpha) and 0.0 <= alpha <= 1.0):
        raise ValueError(f"the label balance must be in [0, 1], got {alpha}")
    weights = np.where(sizes_array > 0, np.power(np.maximum(sizes_array, 1e-300), alpha), 0.0)
    total = weights.sum()
    if total <= 0:
        raise ValueError("no label has anything to train on")
    return weights / total


def describe_balance(alpha: float) -> str:
    """`p ~ size^0.5` with a word on what it means."""
    if alpha == 1.0:
        what = "natural: as often as their text occurs"
    elif alpha == 0.0:
        what = "uniform: every label as often"
    else:
        what = "tempered between natural (1) and uniform (0)"
    return f"labels drawn with p ~ size^{alpha:g} ({what})"


def balance_note(names: Sequence[str], sizes: Sequence[int], alpha: float) -> str:
    """One line for the start of a conditional run and `corpus info --labels`."""
    shares = label_shares(sizes, alpha)
    natural = label_shares(sizes, 1.0)
    parts = ", ".join(
        f"{name} {share:.0%} (natural {nat:.0%})"
        for name, share, nat in zip(names, shares, natural, strict=True)
    )
    return (
        f"training windows: {describe_balance(alpha)}: {parts}; "
        "val loss still weights each label by its size"
    )


def label_balance_info(rows: Sequence[dict], alpha: float) -> dict:
    """For `corpus info --labels`, beside its [{name, chars}] rows: the rule, each label's
    share of training windows and its natural share, and the one-line note."""
    names, sizes = [r["name"] for r in rows], [r["chars"] for r in rows]
    shares, natural = label_shares(sizes, alpha), label_shares(sizes, 1.0)
    return {
        "label_balance": alpha,
        "label_train_shares": {n: float(v) for n, v in zip(names, shares, strict=True)},
        "label_natural_shares": {n: float(v) for n, v in zip(names, natural, strict=True)},
        "label_balance_note": balance_note(names, sizes, alpha),
    }
