"""Turning text files into compact integer arrays, fast and with bounded memory.

A corpus can be far larger than memory, so text is decoded in chunks and never
held whole. Pass 1 hashes the raw bytes, validates and counts characters (that
fixes the vocabulary and the cache key); pass 2 maps characters to ids and
appends them to a file in the cache, which later loads are memory-mapped from.
Small inputs skip the second read by keeping their decoded chunks from pass 1.
Reading the files in pieces (and the byte fast path) is `engine.data.reading`.

The cache is keyed on what was actually encoded, never on what a file held at
some other moment: the key hashes the bytes pass 1 read; pass 2 hashes the bytes
it reads again and the entry is discarded unless every file's hash matches pass
1's; and the stat signature (the index from paths to a key) is taken before and
after, so a file changed in place while it is encoded (even with its mtime put
back) is a one-line CorpusError and leaves nothing behind, never ids of new
content under the old content's key. Cache files are read through
`engine.files` (bounded, regular files only) and written atomically.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from stat import S_ISREG

import numpy as np

from engine.data import reading
from engine.data.reading import (
    Piece,
    grow_counts,
    ids_dtype,
    iter_pieces,
    looks_binary,
    text_codec_name,
)
from engine.errors import CorpusError, EngineWarning, UserError
from engine.files import read_json, show_path, size_text, write_atomic
from engine.paths import cache_dir

KEEP_IN_MEMORY_BYTES = 48 << 20
CACHE_FORMAT = 2
INDEX_MAX_BYTES = 1 << 20  # one by-stat index file: a key and the file list

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


@dataclass
class _Scan:
    """What pass 1 found: counts, the files kept and what each one's bytes hashed to."""

    counts: np.ndarray
    accepted: list[Path]
    digests: list[bytes]
    skipped_binary: int
    skipped_undecodable: int
    key: str
    kept: list[Piece] | None


def _scan(
    files: Sequence[Path],
    encoding: str,
    strict: bool,
    keep_points: bool,
    progress: ProgressFn | None,
    total_bytes: int,
) -> _Scan:
    """Pass 1: hash, validate, count, and (for small inputs) keep the decoded chunks."""
    digest = hashlib.blake2b(digest_size=16)
    digest.update(f"format={CACHE_FORMAT};encoding={encoding}".encode())
    counts = np.zeros(256, dtype=np.int64)
    accepted: list[Path] = []
    digests: list[bytes] = []
    kept: list[Piece] | None = [] if keep_points else None
    skipped_binary = skipped_undecodable = 0
    done_bytes = 0
    check_binary = text_codec_name(encoding) in ("utf-8", "utf-8-sig", "ascii")
    for path in files:
        size = path.stat().st_size
        file_counts = np.zeros(256, dtype=np.int64)
        file_points: list[Piece] = []
        file_digest = hashlib.blake2b(digest_size=16)
        try:
            if check_binary and looks_binary(path):
                if strict:
                    raise CorpusError(f"{show_path(path)}: looks like a binary file, not text")
                skipped_binary += 1
                done_bytes += size
                continue
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
        digests.append(file_digest.digest())
        digest.update(digests[-1])
        if kept is not None:
            kept.extend(file_points)
        done_bytes += size
        if progress:
            progress(done_bytes, total_bytes)
    return _Scan(
        counts, accepted, digests, skipped_binary, skipped_undecodable, digest.hexdigest(), kept
    )


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
        meta = read_json(entry / "meta.json", what="encoding cache entry")
        if not isinstance(meta, dict) or meta.get("format") != CACHE_FORMAT:
            return None
        dtype = np.dtype(meta["dtype"])
        ids_path = entry / "ids.bin"
        length = int(meta["length"])
        stat = ids_path.stat()
        if not S_ISREG(stat.st_mode) or stat.st_size != length * dtype.itemsize:
            return None
        ids = (
            np.memmap(ids_path, dtype=dtype, mode="r", shape=(length,))
            if length
            else np.zeros(0, dtype)
        )
    except (OSError, ValueError, KeyError, TypeError, UserError):
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
    write_atomic(index_dir / signature, json.dumps(sources, ensure_ascii=False), durable=False)


def _load_indexed(index: Path) -> EncodedText | None:
    try:
        sources = read_json(index, INDEX_MAX_BYTES, "encoding cache index")
        cached = _load_cached(str(sources["key"]))
        if cached is None:
            return None
        return _with_sources(
            cached,
            [Path(p) for p in sources["files"]],
            int(sources["skipped_binary"]),
            int(sources["skipped_undecodable"]),
        )
    except (OSError, ValueError, KeyError, TypeError, UserError):  # older or damaged
        return None


def _with_sources(
    cached: EncodedText, files: list[Path], skipped_binary: int, skipped_undecodable: int
) -> EncodedText:
    """A cache entry is shared by equal content: report this load's own files and skips."""
    cached.files = list(files)
    cached.skipped_binary = skipped_binary
    cached.skipped_undecodable = skipped_undecodable
    return cached


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
    if total_bytes > reading.MAX_CORPUS_BYTES:
        raise CorpusError(
            f"the corpus is too large ({size_text(total_bytes)} in {len(files)} files; at most "
            f"{size_text(reading.MAX_CORPUS_BYTES)})"
        )
    keep = total_bytes <= KEEP_IN_MEMORY_BYTES
    scan = _scan(files, encoding, strict, keep, progress, total_bytes)
    counts, accepted, skipped_bin, skipped_dec, key, kept = (
        scan.counts,
        scan.accepted,
        scan.skipped_binary,
        scan.skipped_undecodable,
        scan.key,
        scan.kept,
    )
    _same_signature(files, encoding, signature)  # nothing changed while pass 1 read
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
        for piece in kept if kept is not None else _reread(scan, encoding):
            try:
                yield piece.to_ids(lookup, table)
            except IndexError:  # a character pass 1 did not see
                raise CorpusError(CHANGED) from None

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


CHANGED = "a corpus file changed while it was being encoded: nothing was cached (load it again)"


def _reread(scan: _Scan, encoding: str) -> Iterator[Piece]:
    """Pass 2 over the files pass 1 accepted; the bytes must hash as they did in pass 1."""
    for path, expected in zip(scan.accepted, scan.digests, strict=True):
        digest = hashlib.blake2b(digest_size=16)
        yield from iter_pieces(path, encoding, on_raw=digest.update)
        if digest.digest() != expected:
            raise CorpusError(f"{show_path(path)}: {CHANGED}")


def _same_signature(files: Sequence[Path], encoding: str, before: str) -> None:
    """Raise unless the files' stat signature is still `before`."""
    try:
        after = _stat_signature(files, encoding)
    except OSError:
        after = ""
    if after != before:
        raise CorpusError(CHANGED)


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
