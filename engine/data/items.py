"""Line-per-item corpora (makemore's names.txt): each line is one item, "\\n" ends it.

- Detection: a corpus "looks like items" when it has many lines, they are short,
  and few of them contain a space (names, words, titles of a word or two).
- Boundaries: an item starts right after a newline. Training windows of an items
  run start *at* a newline, so the first prediction of every window is an item's
  first character from the "start of item" context, the way makemore's `.` token
  works, and an empty prompt (context "\\n") starts a fresh item.
- Novelty: the share of generated items that are not in the training items, and
  the share that are in neither the training nor the held-out items. The corpus
  is split by characters (the last 10% validates, as for running text); the item
  cut in two by that split belongs to neither set.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from engine.errors import CorpusError

DETECT_CHARS = 1 << 20  # detection reads at most the first MiB of a corpus
MIN_ITEMS = 20
MAX_MEDIAN_LENGTH = 24
MAX_SPACED_SHARE = 0.25


def decode_ids(chars: Sequence[str], ids: np.ndarray) -> str:
    """Text of `ids` (fast: one numpy gather into UTF-32, then one decode)."""
    points = np.fromiter((ord(c) for c in chars), dtype=np.uint32, count=len(chars))
    return points[np.asarray(ids)].tobytes().decode("utf-32-le")


def corpus_is_items(chars: Sequence[str], ids: np.ndarray) -> bool:
    """Detection on the first MiB of an encoded corpus."""
    return "\n" in chars and looks_like_items(decode_ids(chars, ids[:DETECT_CHARS]))


ITEM_STATS_MAX_CHARS = 50_000_000


def corpus_item_info(chars: Sequence[str], ids: np.ndarray) -> dict | None:
    """Item counts of a corpus detected as line-per-item (its first 50M chars), else None."""
    if not corpus_is_items(chars, ids):
        return None
    counted = min(len(ids), ITEM_STATS_MAX_CHARS)
    stats = item_stats(split_items(decode_ids(chars, ids[:counted])))
    return {**stats.as_dict(), "counted_chars": counted}


def split_items(text: str) -> list[str]:
    """The non-empty lines of a text (a trailing "\\r" is dropped: Windows line ends)."""
    return [line.rstrip("\r") for line in text.split("\n") if line.rstrip("\r")]


def looks_like_items(text: str) -> bool:
    """Many short lines with few spaces (see the module doc); reads the first MiB."""
    items = split_items(text[:DETECT_CHARS])
    if len(items) < MIN_ITEMS:
        return False
    lengths = sorted(len(item) for item in items)
    median = lengths[len(lengths) // 2]
    spaced = sum(1 for item in items if " " in item) / len(items)
    return median <= MAX_MEDIAN_LENGTH and spaced <= MAX_SPACED_SHARE


@dataclass
class ItemStats:
    items: int
    unique: int
    duplicates: int  # items that repeat an earlier one (items - unique)
    most_duplicated: list[tuple[str, int]]
    mean_length: float
    max_length: int

    def as_dict(self) -> dict:
        return {
            "items": self.items,
            "unique": self.unique,
            "duplicates": self.duplicates,
            "most_duplicated": [[item, n] for item, n in self.most_duplicated],
            "mean_length": self.mean_length,
            "max_length": self.max_length,
        }


def item_stats(items: Sequence[str], top: int = 5) -> ItemStats:
    counts = Counter(items)
    repeated = [(item, n) for item, n in counts.most_common(top) if n > 1]
    lengths = [len(item) for item in items]
    return ItemStats(
        items=len(items),
        unique=len(counts),
        duplicates=len(items) - len(counts),
        most_duplicated=repeated,
        mean_length=sum(lengths) / len(lengths) if lengths else 0.0,
        max_length=max(lengths, default=0),
    )


def item_window_starts(ids: np.ndarray, newline_id: int, window: int) -> np.ndarray:
    """Positions of the newlines a training window of `window` + 1 ids may start at.

    Every item but the first has one (the first has no newline before it); a
    newline too close to the end for a whole window is left out.
    """
    starts = np.flatnonzero(np.asarray(ids) == newline_id)
    return starts[starts + window + 1 <= len(ids)].astype(np.int64)


def require_newline(vocab_chars: Iterable[str], name: str) -> None:
    if "\n" not in set(vocab_chars):
        raise CorpusError(f"--items: corpus '{name}' has no newline, so no line-per-item items")


def split_item_sets(train_text: str, val_text: str) -> tuple[frozenset[str], frozenset[str]]:
    """(training items, held-out items) of a character split (the item cut in two: neither)."""
    train_lines = train_text.split("\n")
    val_lines = val_text.split("\n")
    train = split_items("\n".join(train_lines[:-1]))  # the last line runs into the split
    held_out = split_items("\n".join(val_lines[1:]))  # the first line started before it
    return frozenset(train), frozenset(held_out)


def item_novelty(generated: Sequence[str], train: frozenset[str], held_out: frozenset[str]) -> dict:
    """Shares of generated items not in the training set, and in neither set."""
    items = [item for item in generated if item]
    if not items:
        return {"items": 0, "novel_vs_train": None, "novel_vs_all": None, "empty": len(generated)}
    not_train = [item for item in items if item not in train]
    return {
        "items": len(items),
        "novel_vs_train": len(not_train) / len(items),
        "novel_vs_all": sum(1 for item in not_train if item not in held_out) / len(items),
        "in_held_out": sum(1 for item in not_train if item in held_out) / len(items),
        "empty": len(generated) - len(items),
    }
