"""Word-level tokens: the top words of the training text, with every character as fallback.

The rules, which make a word model comparable to a character model:

- Text is cut by `TOKEN_PATTERN` into runs of word characters (`\\w+`), single
  punctuation characters and single whitespace characters, so every character of
  the text lies in exactly one piece and joining the pieces gives the text back.
- The vocabulary is every single character of the corpus (ids 0..C-1, in code
  point order: the same ids a character model gives them) followed by the
  `max_words` most frequent words of two or more characters of the *training*
  split (most frequent first, ties alphabetical). Held-out text never chooses
  a word, so the split stays held out.
- A piece that is a token is that token; any other piece (a rare or unseen word)
  is spelled in its characters. Hence decode(encode(text)) == text for any text
  made of the corpus's characters, and nothing is unrepresentable.
- A word corpus splits the *text* where the character corpus splits it, then
  tokenizes each side on its own: a word model is scored on exactly the
  characters a character model is scored on, and its loss per character
  (`token_lengths` turns a loss per token into one) compares directly.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from engine.data.corpus import DEFAULT_VAL_FRACTION, Corpus, Vocab, unknown_characters
from engine.data.items import decode_ids
from engine.data.reading import ids_dtype
from engine.errors import CorpusError

TOKEN_PATTERN = re.compile(r"\w+|\S|\s")
WORD_PATTERN = re.compile(r"\w\w+")
HAS_WORD_CHAR = re.compile(r"\w")
DEFAULT_WORDS = 2000
MAX_WORDS = 1_000_000


class WordVocab(Vocab):
    """Single characters (ids 0..C-1, sorted) then words; id i is the i-th token."""

    kind = "word"

    def __init__(self, tokens: Iterable[str]) -> None:
        self.chars: tuple[str, ...] = tuple(tokens)
        singles = [t for t in self.chars if len(t) == 1]
        if any(not isinstance(t, str) or not t for t in self.chars):
            raise ValueError("word tokens must be non-empty strings")
        if len(set(self.chars)) != len(self.chars):
            raise ValueError("a word vocabulary lists a token twice")
        if list(self.chars[: len(singles)]) != sorted(singles):
            raise ValueError("a word vocabulary starts with its characters, sorted")
        self.char_count = len(singles)
        self.index = {t: i for i, t in enumerate(self.chars)}
        if any(c not in self.index for word in self.words for c in word):
            raise ValueError("a word of the vocabulary has a character that is not a token")

    def __eq__(self, other: object) -> bool:
        return isinstance(other, WordVocab) and other.chars == self.chars

    def __hash__(self) -> int:
        return hash(("word", self.chars))

    @property
    def dtype(self) -> np.dtype:
        return ids_dtype(len(self.chars))

    @property
    def words(self) -> tuple[str, ...]:
        return self.chars[self.char_count :]

    def token_lengths(self) -> np.ndarray:
        """Characters per token, by id: turns a sum over tokens into one over characters."""
        return np.fromiter((len(t) for t in self.chars), dtype=np.int64, count=len(self.chars))

    def difference(self, other: Vocab) -> str:
        if not isinstance(other, WordVocab):
            return f"a word vocabulary of {len(self)} tokens vs a character vocabulary"
        words = len(set(self.words) ^ set(other.words))
        return f"{len(self)} tokens vs {len(other)}; {words} words differ; " + Vocab(
            self.chars[: self.char_count]
        ).difference(Vocab(other.chars[: other.char_count]))

    def missing(self, text: str) -> list[str]:
        return sorted(c for c in set(text) if len(c) != 1 or c not in self.index)

    def encode(self, text: str, *, drop_unknown: bool = False) -> np.ndarray:
        """Ids of `text` (int64): known words whole, other pieces spelled in characters."""
        missing = self.missing(text)
        if missing:
            if not drop_unknown:
                raise unknown_characters(missing)
            gone = set(missing)
            text = "".join(c for c in text if c not in gone)
        index = self.index
        out: list[int] = []
        for piece in TOKEN_PATTERN.findall(text):
            token = index.get(piece)
            if token is not None:
                out.append(token)
            else:
                out.extend(index[c] for c in piece)
        return np.asarray(out, dtype=np.int64)

    def decode(self, ids: Iterable[int]) -> str:
        chars = self.chars
        return "".join(chars[int(i)] for i in ids)


def check_word_count(max_words: object) -> int:
    if isinstance(max_words, bool) or not isinstance(max_words, int):
        raise CorpusError(f"--word-vocab must be a whole number, got {max_words!r}")
    if not 1 <= max_words <= MAX_WORDS:
        raise CorpusError(f"--word-vocab must be between 1 and {MAX_WORDS:,}, got {max_words}")
    return max_words


def build_word_vocab(
    train_text: str, chars: Sequence[str], max_words: int = DEFAULT_WORDS
) -> WordVocab:
    """The corpus's characters plus the `max_words` most frequent words of `train_text`."""
    check_word_count(max_words)
    if not HAS_WORD_CHAR.search(train_text):
        raise CorpusError(
            "--tokens word needs text with words (letters or digits); this text has none"
        )
    counts = Counter(WORD_PATTERN.findall(train_text))
    top = sorted(counts.items(), key=lambda item: (-item[1], item[0]))[:max_words]
    return WordVocab([*sorted(chars), *(word for word, _ in top)])


@dataclass
class WordCorpus(Corpus):
    """A corpus as word-token ids: the text split by characters, each side tokenized alone.

    `split()` hands back the two sides for the fraction it was built with (another
    fraction re-tokenizes the text). `len()` counts tokens; `text_chars` characters.
    """

    source: Corpus | None = None
    val_fraction: float = DEFAULT_VAL_FRACTION
    cut: int = 0
    text_chars: int = 0

    def split(self, val_fraction: float = DEFAULT_VAL_FRACTION) -> tuple[np.ndarray, np.ndarray]:
        if val_fraction == self.val_fraction or self.source is None:
            return self.ids[: self.cut], self.ids[self.cut :]
        assert isinstance(self.vocab, WordVocab)
        other = to_word_corpus(self.source, self.vocab, val_fraction)
        return other.ids[: other.cut], other.ids[other.cut :]


def split_text(corpus: Corpus, val_fraction: float) -> tuple[str, str]:
    """The training and held-out text of a character corpus (its own split)."""
    if corpus.segments is not None:
        raise CorpusError("--tokens word does not support labelled (conditional) corpora yet")
    train, val = corpus.split(val_fraction)
    chars = corpus.vocab.chars
    return decode_ids(chars, np.asarray(train)), decode_ids(chars, np.asarray(val))


def to_word_corpus(corpus: Corpus, vocab: WordVocab, val_fraction: float) -> WordCorpus:
    """`corpus` (characters) as word tokens of `vocab`, split where the characters split."""
    train_text, val_text = split_text(corpus, val_fraction)
    train_ids, val_ids = vocab.encode(train_text), vocab.encode(val_text)
    ids = np.concatenate([train_ids, val_ids]).astype(vocab.dtype)
    return WordCorpus(
        name=corpus.name,
        vocab=vocab,
        ids=ids,
        counts=np.bincount(ids, minlength=len(vocab)).astype(np.int64),
        files=list(corpus.files),
        skipped_binary=corpus.skipped_binary,
        skipped_undecodable=corpus.skipped_undecodable,
        content_key=corpus.content_key,
        source=corpus,
        val_fraction=val_fraction,
        cut=int(train_ids.size),
        text_chars=len(train_text) + len(val_text),
    )


def word_corpus(
    corpus: Corpus, max_words: int = DEFAULT_WORDS, val_fraction: float = DEFAULT_VAL_FRACTION
) -> WordCorpus:
    """A new word vocabulary from `corpus`'s training split, and the corpus in its tokens."""
    check_word_count(max_words)
    train_text, _ = split_text(corpus, val_fraction)
    vocab = build_word_vocab(train_text, corpus.vocab.chars, max_words)
    return to_word_corpus(corpus, vocab, val_fraction)


def tokenizer_meta(vocab: Vocab) -> dict:
    """What a checkpoint's state.json records about its tokens (the list is its `vocab`)."""
    if isinstance(vocab, WordVocab):
        return {"kind": "word", "chars": vocab.char_count, "words": len(vocab.words)}
    return {"kind": "char"}


def vocab_from_state(tokens: list[str], tokenizer: object) -> Vocab:
    """The vocabulary of a checkpoint: a character one unless its tokenizer says words."""
    kind = tokenizer.get("kind", "char") if isinstance(tokenizer, dict) else "char"
    if tokenizer is not None and not isinstance(tokenizer, dict):
        raise ValueError(f"tokenizer must be an object, got {tokenizer!r}")
    if kind == "word":
        return WordVocab(tokens)
    if kind != "char":
        raise ValueError(f"unknown tokenizer kind {kind!r}")
    return Vocab(tokens)


def char_vocab(vocab: Vocab) -> Vocab:
    """The characters of a vocabulary: itself for characters, a word vocabulary's fallbacks."""
    if isinstance(vocab, WordVocab):
        return Vocab(vocab.chars[: vocab.char_count])
    return vocab
