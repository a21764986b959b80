"""Turning text files into compact integer arrays, fast and with bounded memory.

A corpus can be far larger than memory, so text is decoded in chunks and never
held whole. Pass 1 hashes the raw bytes, validates and counts characters (that
fixes the vocabulary and the cache key); pass 2 maps characters to ids and
appends them to a file in the cache, which later loads are memory-mapped from.
Small inputs skip the second read by keeping their decoded chunks from pass 1.
Reading the files in pieces (and the byte fast path) is `engine.data.reading`.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
import warnings
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from engine.data.reading import (
    Piece,
    grow_counts,
    ids_dtype,
    iter_pieces,
    looks_binary,
    text_codec_name,
)
from engine.errors import CorpusError, EngineWarning
from engine.paths import cache_dir

KEEP_IN_MEMORY_BYTES = 48 << 20
CACHE_FORMAT = 2

ProgressFn = Callable[[int, int], None]


@dataclass
class EncodedText:
    """The encoding of one or more files: vocabulary, counts and the id array."""

    chars: list[str]
    counts: np.ndarray
    ids: np.ndarray
    files: list[Path]
    skipped_binary: int
    skipped_undecodable: int
    content_key: str


def _scan(
    files: Sequence[Path],
    encoding: str,
    strict: bool,
    keep_points: bool,
    progress: ProgressFn | None,
    total_bytes: int,
) -> tuple[np.ndarray, list[Path], int, int, str, list[Piece] | None]:
    """Pass 1: hash, validate, count, and (for small inputs) keep the decoded chunks."""
    digest = hashlib.blake2b(digest_size=16)
    digest.update(f"format={CACHE_FORMAT};encoding={encoding}".encode())
    counts = np.zeros(256, dtype=np.int64)
    accepted: list[Path] = []
    kept: list[Piece] | None = [] if keep_points else None
    skipped_binary = skipped_undecodable = 0
    done_bytes = 0
    check_binary = text_codec_name(encoding) in ("utf-8", "utf-8-sig", "ascii")
    for path in files:
        size = path.stat().st_size
        if check_binary and looks_binary(path):
            if strict:
                raise CorpusError(f"{path}: looks like a binary file, not text")
            skipped_binary += 1
            done_bytes += size
            continue
        file_counts = np.zeros(256, dtype=np.int64)
        file_points: list[Piece] = []
        file_digest = hashlib.blake2b(digest_size=16)
        try:
            for piece in iter_pieces(path, encoding, on_raw=file_digest.update):
                file_counts = piece.add_counts(file_counts)
                if kept is not None:
                    file_points.append(piece)
        except CorpusError:
            if strict:
                raise
            skipped_undecodable += 1
            done_bytes += size
            continue
        if not file_counts.any():
            if strict:
                raise CorpusError(f"{path}: the file is empty")
            done_bytes += size
            continue
        counts = grow_counts(counts, file_counts.size)
        counts[: file_counts.size] += file_counts
        accepted.append(path)
        digest.update(file_digest.digest())
        if kept is not None:
            kept.extend(file_points)
        done_bytes += size
        if progress:
            progress(done_bytes, total_bytes)
    return counts, accepted, skipped_binary, skipped_undecodable, digest.hexdigest(), kept


def _stat_signature(files: Sequence[Path], encoding: str) -> str:
    digest = hashlib.blake2b(digest_size=16)
    digest.update(f"format={CACHE_FORMAT};encoding={encoding}".encode())
    for path in files:
        stat = path.stat()
        # ctime and inode too: `cp -p`, `rsync -t` and tar restore the mtime of new content.
        digest.update(
            f"{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}|{stat.st_ctime_ns}|"
            f"{stat.st_ino}\n".encode()
        )
    return digest.hexdigest()


def _encoded_root() -> Path:
    root = cache_dir() / "encoded"
    root.mkdir(parents=True, exist_ok=True)
    return root


def _load_cached(key: str) -> EncodedText | None:
    try:
        entry = _encoded_root() / key
        meta = json.loads((entry / "meta.json").read_text(encoding="utf-8"))
        if meta.get("format") != CACHE_FORMAT:
            return None
        dtype = np.dtype(meta["dtype"])
        ids_path = entry / "ids.bin"
        length = int(meta["length"])
        if ids_path.stat().st_size != length * dtype.itemsize:
            return None
        ids = (
            np.memmap(ids_path, dtype=dtype, mode="r", shape=(length,))
            if length
            else np.zeros(0, dtype)
        )
    except (OSError, ValueError, KeyError):
        return None
    return EncodedText(
        chars=list(meta["chars"]),
        counts=np.asarray(meta["counts"], dtype=np.int64),
        ids=ids,
        files=[Path(p) for p in meta["files"]],
        skipped_binary=int(meta["skipped_binary"]),
        skipped_undecodable=int(meta["skipped_undecodable"]),
        content_key=key,
    )


def _write_index(signature: str, key: str, encoded: EncodedText) -> None:
    """Map these paths (as they are now) to a content key and to what they contributed."""
    index_dir = _encoded_root() / "by-stat"
    index_dir.mkdir(exist_ok=True)
    sources = {
        "key": key,
        "files": [str(p) for p in encoded.files],
        "skipped_binary": encoded.skipped_binary,
        "skipped_undecodable": encoded.skipped_undecodable,
    }
    _atomic_write_text(index_dir / signature, json.dumps(sources, ensure_ascii=False))


def _load_indexed(index: Path) -> EncodedText | None:
    try:
        sources = json.loads(index.read_text(encoding="utf-8"))
        cached = _load_cached(str(sources["key"]))
        if cached is None:
            return None
        return _with_sources(
            cached,
            [Path(p) for p in sources["files"]],
            int(sources["skipped_binary"]),
            int(sources["skipped_undecodable"]),
        )
    except (OSError, ValueError, KeyError, TypeError):  # an index from an older release
        return None


def _with_sources(
    cached: EncodedText, files: list[Path], skipped_binary: int, skipped_undecodable: int
) -> EncodedText:
    """A cache entry is shared by equal content: report this load's own files and skips."""
    cached.files = list(files)
    cached.skipped_binary = skipped_binary
    cached.skipped_undecodable = skipped_undecodable
    return cached


def _atomic_write_text(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)
    os.replace(tmp, path)


def encode_files(
    files: Sequence[Path],
    encoding: str = "utf-8",
    *,
    strict: bool = True,
    use_cache: bool = True,
    progress: ProgressFn | None = None,
) -> EncodedText:
    """Encode files (joined in order) into ids, reusing the on-disk cache.

    With `strict`, a binary, empty or undecodable file is an error; without it
    (directories), such files are skipped and counted.
    """
    signature = _stat_signature(files, encoding)
    if use_cache:
        cached = None
        with contextlib.suppress(OSError):  # an unusable cache dir is only slower
            index = _encoded_root() / "by-stat" / signature
            cached = _load_indexed(index) if index.exists() else None
        if cached is not None:
            return cached

    total_bytes = sum(p.stat().st_size for p in files)
    keep = total_bytes <= KEEP_IN_MEMORY_BYTES
    counts, accepted, skipped_bin, skipped_dec, key, kept = _scan(
        files, encoding, strict, keep, progress, total_bytes
    )
    if not accepted:
        raise CorpusError(
            f"no readable text found (skipped {skipped_bin} binary and "
            f"{skipped_dec} undecodable files)"
        )
    if use_cache:
        cached = _load_cached(key)
        if cached is not None:
            cached = _with_sources(cached, accepted, skipped_bin, skipped_dec)
            _write_index(signature, key, cached)
            return cached

    present = np.flatnonzero(counts)
    chars = [chr(int(cp)) for cp in present]
    dtype = ids_dtype(len(chars))
    lookup = np.zeros(int(present[-1]) + 1, dtype=dtype)
    lookup[present] = np.arange(len(present), dtype=dtype)

    # Code points below 256 have ids below 256 (the vocabulary is sorted by code point).
    byte_table = np.zeros(256, dtype=np.uint8)
    byte_table[: min(256, lookup.size)] = lookup[:256]
    table = byte_table.tobytes()

    def chunks() -> Iterator[np.ndarray]:
        pieces: Iterable[Piece] = (
            kept
            if kept is not None
            else (piece for path in accepted for piece in iter_pieces(path, encoding))
        )
        for piece in pieces:
            try:
                yield piece.to_ids(lookup, table)
            except IndexError:  # a character pass 1 did not see
                raise CorpusError("a corpus file changed while it was being encoded") from None

    length = int(counts.sum())
    meta = {
        "format": CACHE_FORMAT,
        "encoding": encoding,
        "dtype": dtype.name,
        "length": length,
        "chars": chars,
        "counts": counts[present].tolist(),
        "files": [str(p) for p in accepted],
        "skipped_binary": skipped_bin,
        "skipped_undecodable": skipped_dec,
    }
    if not use_cache:
        ids = np.concatenate(list(chunks())) if length else np.zeros(0, dtype)
        return EncodedText(chars, counts[present], ids, accepted, skipped_bin, skipped_dec, key)

    try:
        cached = _write_cache(key, meta, chunks, length)
    except OSError as exc:
        # A full or read-only cache disk costs speed next time, never this load.
        warnings.warn(
            f"encoding cache skipped ({exc.strerror or type(exc).__name__}: {exc.filename}): "
            "the corpus is encoded in memory",
            EngineWarning,
            stacklevel=2,
        )
        ids = np.concatenate(list(chunks())) if length else np.zeros(0, dtype)
        return EncodedText(chars, counts[present], ids, accepted, skipped_bin, skipped_dec, key)
    cached = _with_sources(cached, accepted, skipped_bin, skipped_dec)
    with contextlib.suppress(OSError):  # the index only saves a rescan next time
        _write_index(signature, key, cached)
    return cached


def _write_cache(
    key: str, meta: dict, chunks: Callable[[], Iterator[np.ndarray]], length: int
) -> EncodedText:
    """Write one cache entry (staged, then renamed); an OSError leaves nothing behind."""
    entry = _encoded_root() / key
    staging = Path(tempfile.mkdtemp(dir=_encoded_root(), prefix=f".{key}."))
    try:
        written = 0
        with open(staging / "ids.bin", "wb") as out:
            for ids_chunk in chunks():
                out.write(memoryview(ids_chunk))  # no tobytes() copy
                written += ids_chunk.size
        if written != length:
            raise CorpusError("a corpus file changed while it was being encoded")
        (staging / "meta.json").write_text(json.dumps(meta, ensure_ascii=False), encoding="utf-8")
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    try:
        os.replace(staging, entry)
    except OSError:
        if _load_cached(key) is None:  # a damaged entry (entries appear whole): replace it
            shutil.rmtree(entry, ignore_errors=True)
            os.replace(staging, entry)
        else:  # another process cached the same content first: theirs is as good as ours
            shutil.rmtree(staging, ignore_errors=True)
    cached = _load_cached(key)
    if cached is None:  # pragma: no cover - the cache dir vanished under us
        raise CorpusError(f"could not read back the encoding cache in {entry}")
    return cached
