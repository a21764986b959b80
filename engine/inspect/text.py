"""The text an inspection runs over: its limit, its ids, labels for its characters.

Every inspection keeps a value per character of the text, so the text is
bounded: at most `MAX_TEXT_CHARS` characters (about 20k). A longer text is an
error that says so; it is never silently cut.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from engine.data.corpus import Corpus, Vocab, load_corpus
from engine.data.samples import find_sample
from engine.errors import CorpusError, UserError

MAX_TEXT_CHARS = 20_000

# How control characters show in a label (tables, the character map, unit views).
_LABELS = {"\n": "\\n", "\t": "\\t", "\r": "\\r", " ": "␣", "\0": "\\0"}


def char_label(char: str) -> str:
    """A visible one- or two-character label: newline is `\\n`, space is `␣`."""
    if char in _LABELS:
        return _LABELS[char]
    return char if char.isprintable() else f"\\x{ord(char):02x}"


def require_char_model(vocab: Vocab) -> None:
    """Inspection keeps a value per character: a word-token model has none (one line)."""
    if vocab.kind != "char":
        raise UserError(
            f"inspect works on character models: this one uses {vocab.kind} tokens "
            "(train with --tokens char to inspect a model)"
        )


def encode_text(vocab: Vocab, text: str, *, drop_unknown: bool = False) -> tuple[str, np.ndarray]:
    """(text, ids) of a text to inspect; too long, empty or unknown characters are user errors.

    With `drop_unknown`, characters outside the vocabulary are left out and the
    returned text is the text that was actually inspected (positions refer to it).
    """
    require_char_model(vocab)
    if len(text) > MAX_TEXT_CHARS:
        raise UserError(
            f"the text has {len(text):,} characters; inspect reads at most "
            f"{MAX_TEXT_CHARS:,} (give a shorter text or excerpt)"
        )
    missing = vocab.missing(text)
    if missing:
        if not drop_unknown:
            shown = "".join(missing)[:20]
            raise CorpusError(
                f"the text has characters the model does not know: {shown!r} "
                "(use --drop-unknown to leave them out)"
            )
        text = "".join(c for c in text if c in vocab.index)
    if not text:
        raise UserError("the text to inspect is empty")
    return text, vocab.encode(text)


def held_out_excerpt(corpus: Corpus, chars: int, offset: int = 0) -> str:
    """`chars` characters of the corpus's held-out split (the tail it validates on)."""
    if chars < 1:
        raise UserError(f"an excerpt needs at least 1 character, got {chars}")
    if chars > MAX_TEXT_CHARS:
        raise UserError(f"an excerpt of {chars:,} characters is over the {MAX_TEXT_CHARS:,} limit")
    _, val = corpus.split()
    if offset < 0 or offset >= len(val):
        raise UserError(f"offset {offset} is outside the held-out split ({len(val):,} chars)")
    return corpus.vocab.decode(np.asarray(val[offset : offset + chars]).tolist())


def training_corpus(meta: dict, spec: str | None = None) -> Corpus:
    """The corpus `spec`, else the one a checkpoint was trained on while it is still at hand.

    The checkpoint's corpus is found by its sample name or its single file, and
    only if the content is the very one it trained on (its content key matches).
    """
    if spec is not None:
        return load_corpus(spec)
    trained_on = meta.get("corpus", {}) or {}
    key = trained_on.get("content_key")
    sample = find_sample(str(trained_on.get("name", "")))
    if sample is not None and sample.available_offline:
        corpus = load_corpus(sample.name)
        if corpus.content_key == key:
            return corpus
    for file in trained_on.get("files", []) or []:
        if Path(file).is_file():
            corpus = load_corpus(file)
            if corpus.content_key == key:
                return corpus
    raise UserError(
        "the checkpoint's training corpus is not at hand: give --corpus C (or --text FILE)"
    )
