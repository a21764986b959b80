"""A corpus: its text as ids, its vocabulary, its splits and its statistics.

A corpus is named by a sample name, a text file or a directory of text files.
The ids may be a memory map of the encoding cache, so nothing here assumes the
corpus fits in memory.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from engine.data.encoding import EncodedText, ProgressFn, encode_files
from engine.data.reading import ids_dtype
from engine.data.samples import DownloadProgress, find_sample, sample_files
from engine.errors import CorpusError
from engine.files import user_path

DEFAULT_VAL_FRACTION = 0.1


def unknown_characters(missing: Iterable[str]) -> CorpusError:
    """The one-line error for text with characters a vocabulary does not have."""
    shown = "".join(missing)[:20]
    return CorpusError(
        f"characters not in the vocabulary: {shown!r} "
        "(drop them, or use a prompt made of the corpus's characters)"
    )


class Vocab:
    """The sorted set of characters of a corpus; id i is the i-th character.

    `kind` says how text becomes ids: "char" here, "word" for engine.data.words.WordVocab
    (which keeps this interface, so a token may be longer than one character there).
    """

    kind = "char"

    def __init__(self, chars: Iterable[str]) -> None:
        self.chars: tuple[str, ...] = tuple(chars)
        if list(self.chars) != sorted(set(self.chars)):
            raise ValueError("vocabulary characters must be unique and sorted")
        self.index = {c: i for i, c in enumerate(self.chars)}
        points = np.fromiter((ord(c) for c in self.chars), dtype=np.int64, count=len(self.chars))
        self._lookup = np.full(int(points.max()) + 1 if points.size else 1, -1, dtype=np.int64)
        self._lookup[points] = np.arange(points.size)

    def __len__(self) -> int:
        return len(self.chars)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Vocab) and other.chars == self.chars

    def __hash__(self) -> int:
        return hash(self.chars)

    @property
    def dtype(self) -> np.dtype:
        return ids_dtype(len(self.chars))

    def difference(self, other: Vocab) -> str:
        """How this vocabulary differs from `other`, naming the characters (not only counts)."""
        only_here = "".join(sorted(set(self.chars) - set(other.chars)))
        only_there = "".join(sorted(set(other.chars) - set(self.chars)))
        parts = [f"{len(self)} chars vs {len(other)}"]
        if only_here:
            parts.append(f"only in the checkpoint: {only_here[:20]!r}")
        if only_there:
            parts.append(f"only in the corpus: {only_there[:20]!r}")
        return "; ".join(parts)

    def token_lengths(self) -> np.ndarray:
        """Characters per token, by id (all 1 here)."""
        return np.ones(len(self.chars), dtype=np.int64)

    def missing(self, text: str) -> list[str]:
        """Characters of `text` that are not in the vocabulary, sorted."""
        return sorted(set(text) - set(self.index))

    def encode(self, text: str, *, drop_unknown: bool = False) -> np.ndarray:
        """Ids of `text` (int64). Unknown characters raise, or are dropped on request."""
        # surrogatepass: lone surrogates (undecodable bytes of a prompt) are unknown chars
        points = np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype=np.uint32).astype(
            np.int64
        )
        inside = points < self._lookup.size
        ids = np.full(points.shape, -1, dtype=np.int64)
        ids[inside] = self._lookup[points[inside]]
        if (ids < 0).any():
            if not drop_unknown:
                raise unknown_characters(self.missing(text))
            ids = ids[ids >= 0]
        return ids

    def decode(self, ids: Iterable[int]) -> str:
        chars = self.chars
        return "".join(chars[i] for i in ids)


@dataclass
class CorpusStats:
    chars: int
    vocab_size: int
    entropy_bits: float
    most_common: list[tuple[str, int]]
    preview: str
    files: int
    skipped_binary: int
    skipped_undecodable: int

    def as_dict(self) -> dict:
        return {
            "chars": self.chars,
            "vocab_size": self.vocab_size,
            "entropy_bits": self.entropy_bits,
            "most_common": [[c, n] for c, n in self.most_common],
            "preview": self.preview,
            "files": self.files,
            "skipped_binary": self.skipped_binary,
            "skipped_undecodable": self.skipped_undecodable,
        }


@dataclass
class LabelledIds:
    """Ids of some labels' text plus (start, end, label index) rows saying whose each span is."""

    ids: np.ndarray
    segments: np.ndarray  # (n, 3) int64


@dataclass
class Corpus:
    name: str
    vocab: Vocab
    ids: np.ndarray
    counts: np.ndarray
    files: list[Path] = field(default_factory=list)
    skipped_binary: int = 0
    skipped_undecodable: int = 0
    content_key: str = ""
    # A labelled corpus (engine/data/labels.py): label names, and (start, end, label) spans.
    labels: tuple[str, ...] = ()
    segments: np.ndarray | None = None

    def __len__(self) -> int:
        return int(self.ids.shape[0])

    def split(self, val_fraction: float = DEFAULT_VAL_FRACTION) -> tuple[np.ndarray, np.ndarray]:
        """Contiguous split: the first part trains, the tail validates (as nanoGPT does).

        A labelled corpus splits each label on its own, so both splits hold every label.
        """
        if not 0.0 < val_fraction < 1.0:
            raise CorpusError(f"validation fraction must be in (0, 1), got {val_fraction}")
        if self.segments is not None:
            train, val = self.label_split(val_fraction)
            return train.ids, val.ids
        cut = int(len(self) * (1.0 - val_fraction))
        return self.ids[:cut], self.ids[cut:]

    def label_split(self, val_fraction: float) -> tuple[LabelledIds, LabelledIds]:
        """Each label's head trains and its tail validates; spans say whose each part is."""
        if self.segments is None:
            raise CorpusError(f"corpus '{self.name}' has no labels")
        parts: tuple[list, list] = ([], [])
        spans: tuple[list, list] = ([], [])
        at = [0, 0]
        for start, end, label in self.segments.tolist():
            cut = start + int((end - start) * (1.0 - val_fraction))
            for side, (lo, hi) in enumerate(((start, cut), (cut, end))):
                parts[side].append(np.asarray(self.ids[lo:hi]))
                spans[side].append((at[side], at[side] + hi - lo, label))
                at[side] += hi - lo
        train, val = (
            LabelledIds(np.concatenate(parts[i]), np.asarray(spans[i], dtype=np.int64))
            for i in (0, 1)
        )
        return train, val

    def unigram(self) -> np.ndarray:
        """Character probabilities, used to draw the first character of an empty prompt."""
        return self.counts / self.counts.sum()

    def stats(self, top: int = 10, preview_chars: int = 400) -> CorpusStats:
        probs = self.unigram()
        entropy = float(-(probs * np.log2(probs)).sum())
        order = np.argsort(-self.counts, kind="stable")[:top]
        most_common = [(self.vocab.chars[i], int(self.counts[i])) for i in order]
        preview = self.vocab.decode(np.asarray(self.ids[:preview_chars]).tolist())
        return CorpusStats(
            chars=len(self),
            vocab_size=len(self.vocab),
            entropy_bits=round(entropy, 4) if math.isfinite(entropy) else 0.0,
            most_common=most_common,
            preview=preview,
            files=len(self.files),
            skipped_binary=self.skipped_binary,
            skipped_undecodable=self.skipped_undecodable,
        )

    def require_length(self, window: int, val_fraction: float = DEFAULT_VAL_FRACTION) -> None:
        """Fail clearly when either split is too short for one training window."""
        train, val = self.split(val_fraction)
        shortest = min(len(train), len(val))
        if shortest < window + 1:
            raise CorpusError(
                f"corpus '{self.name}' is too short: {len(self)} chars gives a "
                f"{shortest}-char split, and one training window needs {window + 1}"
            )


def _text_files(directory: Path) -> list[Path]:
    """Files under a directory, recursively, in a stable order, hidden ones left out."""
    files = []
    for path in sorted(directory.rglob("*")):
        relative = path.relative_to(directory)
        if any(part.startswith(".") for part in relative.parts):
            continue
        if path.is_file():
            files.append(path)
    return files


def _from_encoded(name: str, encoded: EncodedText) -> Corpus:
    return Corpus(
        name=name,
        vocab=Vocab(encoded.chars),
        ids=encoded.ids,
        counts=encoded.counts,
        files=encoded.files,
        skipped_binary=encoded.skipped_binary,
        skipped_undecodable=encoded.skipped_undecodable,
        content_key=encoded.content_key,
    )


def resolve_files(
    spec: str, download_progress: DownloadProgress | None = None
) -> tuple[str, list[Path], bool]:
    """(display name, files, strict) for a corpus spec: a path or a sample name."""
    path = user_path(spec)
    if path.is_file():
        return path.name, [path], True
    if path.is_dir():
        files = _text_files(path)
        if not files:
            raise CorpusError(f"{path}: the directory has no files")
        return path.name or str(path), files, False
    sample = find_sample(spec)
    if sample is not None:
        return sample.name, sample_files(sample, download_progress), sample.kind != "builtin"
    if path.exists():
        raise CorpusError(f"{path}: not a regular file or directory")
    raise CorpusError(
        f"no corpus '{spec}': not a file, a directory or a sample name "
        "(see `charlm-tui corpus list`)"
    )


def load_corpus(
    spec: str,
    encoding: str = "utf-8",
    *,
    progress: ProgressFn | None = None,
    download_progress: DownloadProgress | None = None,
    use_cache: bool = True,
) -> Corpus:
    """Load a corpus by sample name, file or directory; encodings are cached on disk."""
    name, files, strict = resolve_files(spec, download_progress)
    try:
        encoded = encode_files(
            files, encoding, strict=strict, use_cache=use_cache, progress=progress
        )
    except PermissionError as exc:
        raise CorpusError(f"{exc.filename}: permission denied") from None
    if not strict and not encoded.files:
        raise CorpusError(f"{spec}: no text files found")
    return _from_encoded(name, encoded)
