"""Labelled corpora: text in several named styles, for conditional models.

Two layouts are read as labelled:

- a directory whose top-level entries are the labels: a file `shakespeare.txt`
  is the label `shakespeare` (its name without the suffix), a subdirectory
  `code/` the label `code` with every text file under it;
- a text file of `label<TAB>text` lines, one item per line (the items of a
  label are joined with newlines, in file order).

Labels are sorted by name. The corpus is the labels' texts one after another,
over one vocabulary (the union of theirs); `segments` says which span belongs
to which label, so training windows never straddle two labels. A label set is
usable only with at least two labels, each non-empty, each named by printable
characters without `,` `=` or surrounding spaces (`--condition a=0.7,b=0.3`
must be able to name it); anything else is a CorpusError.

Plain (unlabelled) corpora do not come through here: reading a corpus as
labelled is asked for (`train --conditional`, `corpus info --labels`, a
conditional checkpoint), never guessed, so they work exactly as before. The
labelled text is held in memory (a concatenation of the labels' encodings), so a
label<TAB>text file may be at most `MAX_TSV_BYTES` (1 GB); its files are opened as
every corpus file is (`engine.data.reading`: regular files only, never waited on).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from engine.data.corpus import Corpus, Vocab, load_corpus
from engine.data.encoding import EncodedText, encode_files, ids_dtype
from engine.data.reading import iter_text_chunks, open_corpus_file
from engine.errors import CorpusError
from engine.files import show_path, size_text, user_path

MAX_TSV_BYTES = 1 << 30  # a label<TAB>text file is held whole in memory
SNIFF_BYTES = 1 << 20  # looks_labelled reads at most this much of a file


def _check_name(name: str, where: str) -> None:
    if not name:
        raise CorpusError(f"{where}: an empty label name")
    if not name.isprintable() or name != name.strip() or any(c in name for c in ",=\t"):
        raise CorpusError(
            f"{where}: label {name!r} is not a usable name "
            "(printable, no ',' '=' or surrounding spaces)"
        )
    if name.lower() == "none":
        raise CorpusError(f"{where}: 'none' is reserved for the no-label condition")


def _check_set(spec: str, labels: list[str], sizes: list[int]) -> None:
    if len(labels) < 2:
        found = f"one label ({labels[0]!r})" if labels else "no labels"
        raise CorpusError(f"{spec}: a labelled corpus needs at least two labels, found {found}")
    for name, size in zip(labels, sizes, strict=True):
        if size == 0:
            raise CorpusError(f"{spec}: label {name!r} has no text")


def label_entries(directory: Path) -> list[tuple[str, list[Path]]]:
    """(label, files) for the top-level entries of a directory, hidden ones left out."""
    entries: dict[str, list[Path]] = {}
    for entry in sorted(directory.iterdir()):
        if entry.name.startswith("."):
            continue
        name = entry.name if entry.is_dir() else entry.stem
        where = str(entry)
        _check_name(name, where)
        if name in entries:
            raise CorpusError(f"{directory}: two entries are both the label {name!r}")
        if entry.is_dir():
            files = [
                p
                for p in sorted(entry.rglob("*"))
                if p.is_file() and not any(s.startswith(".") for s in p.relative_to(entry).parts)
            ]
        else:
            files = [entry]
        entries[name] = files
    return sorted(entries.items())


def looks_labelled(spec: str) -> bool:
    """Can this corpus be read as labelled? (Cheap: the TUI asks it to offer the switch.)"""
    path = user_path(spec)
    try:
        if path.is_dir():
            return sum(1 for p in path.iterdir() if not p.name.startswith(".")) >= 2
        if path.is_file():
            with open_corpus_file(path) as handle:
                raw = handle.read(SNIFF_BYTES)
            whole = raw.decode("utf-8", "replace").split("\n")
            if len(raw) == SNIFF_BYTES:
                whole.pop()  # a line the head cuts is not judged
            lines = [line for line in whole[:5] if line.strip()]
            return bool(lines) and all("\t" in line[1:] for line in lines)
    except (OSError, CorpusError):
        return False
    return False


def _read_tsv(path: Path, encoding: str) -> dict[str, list[str]]:
    size = path.stat().st_size
    if size > MAX_TSV_BYTES:
        raise CorpusError(
            f"{show_path(path)}: a label<TAB>text file is held in memory and this one is too "
            f"large ({size_text(size)}; at most {size_text(MAX_TSV_BYTES)}): use a directory "
            "with one entry per label"
        )
    items: dict[str, list[str]] = {}
    text = "".join(iter_text_chunks(path, encoding))
    for number, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        if "\t" not in line:
            raise CorpusError(
                f"{path}:{number}: expected label<TAB>text (a labelled corpus is a directory "
                "with one entry per label, or a file of label<TAB>text lines)"
            )
        label, item = line.split("\t", 1)
        _check_name(label, f"{path}:{number}")
        items.setdefault(label, []).append(item)
    return items


def _merge(name: str, parts: list[tuple[str, EncodedText]], files: list[Path]) -> Corpus:
    """One corpus over the union vocabulary, the labels' ids one after another."""
    chars = sorted({c for _, enc in parts for c in enc.chars})
    vocab = Vocab(chars)
    dtype = ids_dtype(len(chars))
    counts = np.zeros(len(chars), dtype=np.int64)
    pieces, segments = [], []
    start = 0
    digest = hashlib.blake2b(digest_size=16)
    for label_index, (label, enc) in enumerate(parts):
        remap = np.array([vocab.index[c] for c in enc.chars], dtype=dtype)
        ids = remap[np.asarray(enc.ids)]
        np.add.at(counts, remap.astype(np.int64), np.asarray(enc.counts, dtype=np.int64))
        pieces.append(ids)
        segments.append((start, start + len(ids), label_index))
        start += len(ids)
        digest.update(f"{label}\0{enc.content_key}\0".encode())
    return Corpus(
        name=name,
        vocab=vocab,
        ids=np.concatenate(pieces),
        counts=counts,
        files=files,
        content_key="labelled-" + digest.hexdigest(),
        labels=tuple(label for label, _ in parts),
        segments=np.asarray(segments, dtype=np.int64).reshape(-1, 3),
    )


def load_labelled_corpus(spec: str, encoding: str = "utf-8") -> Corpus:
    """A directory of labels or a label<TAB>text file, as one labelled Corpus."""
    path = user_path(spec)
    if path.is_dir():
        parts: list[tuple[str, EncodedText]] = []
        files: list[Path] = []
        entries = label_entries(path)
        if len(entries) < 2:
            _check_set(spec, [n for n, _ in entries], [1] * len(entries))
        for label, label_files in entries:
            if not label_files:
                raise CorpusError(f"{spec}: label {label!r} has no text")
            try:
                encoded = encode_files(label_files, encoding, strict=False)
            except CorpusError:
                raise CorpusError(f"{spec}: label {label!r} has no readable text") from None
            parts.append((label, encoded))
            files.extend(encoded.files)
        _check_set(spec, [n for n, _ in parts], [len(e.ids) for _, e in parts])
        return _merge(path.name or str(path), parts, files)
    if path.is_file():
        items = _read_tsv(path, encoding)
        labels = sorted(items)
        texts = ["\n".join(items[label]) for label in labels]
        _check_set(spec, labels, [len(t) for t in texts])
        parts = []
        for label, text in zip(labels, texts, strict=True):
            chars = sorted(set(text))
            vocab = Vocab(chars)
            ids = vocab.encode(text)
            counts = np.bincount(ids, minlength=len(chars))
            key = hashlib.blake2b(text.encode("utf-8"), digest_size=16).hexdigest()
            parts.append((label, EncodedText(chars, counts, ids, [path], 0, 0, key)))
        return _merge(path.name, parts, [path])
    raise CorpusError(
        f"{spec}: a labelled corpus is a directory (one entry per label) "
        "or a file of label<TAB>text lines"
    )


def require_label_length(corpus: Corpus, window: int, val_fraction: float) -> None:
    """Every label must give one training window and something to validate."""
    train, val = corpus.label_split(val_fraction)
    pairs = list(zip(train.segments.tolist(), val.segments.tolist(), strict=True))
    longest_fit = min(t1 - t0 for (t0, t1, _), _ in pairs) - 1
    for (t0, t1, label), (v0, v1, _) in pairs:
        if t1 - t0 < window + 1 or v1 - v0 < 2:
            fits = (
                f", or train shorter windows (seq_len {longest_fit} fits every label)"
                if longest_fit >= 2 and v1 - v0 >= 2
                else ""
            )
            raise CorpusError(
                f"label {corpus.labels[label]!r} is too short: {t1 - t0 + v1 - v0} chars, "
                f"and one training window needs {window + 1} (plus a held-out tail): "
                f"add text to it or leave it out{fits}"
            )


def label_sizes(corpus: Corpus) -> list[dict]:
    """[{name, chars}] in label order."""
    if corpus.segments is None:
        return []
    return [
        {"name": corpus.labels[label], "chars": int(end - start)}
        for start, end, label in corpus.segments.tolist()
    ]


def load_corpus_as(spec: str, encoding: str = "utf-8", labelled: bool = False) -> Corpus:
    """The corpus read as labelled when asked (a conditional run), plainly otherwise."""
    return load_labelled_corpus(spec, encoding) if labelled else load_corpus(spec, encoding)
