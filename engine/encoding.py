"""Turning text files into compact integer arrays, fast and with bounded memory.

A corpus can be far larger than memory, so text is decoded in chunks and never
held whole. Pass 1 hashes the raw bytes and counts characters (that fixes the
vocabulary and the cache key); pass 2 maps code points to ids with a numpy
lookup table and appends them to a file in the cache, which later loads are
memory-mapped from. Small inputs skip the second read by keeping their code
points from pass 1.
"""

from __future__ import annotations

import codecs
import hashlib
import json
import os
import tempfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from engine.errors import CorpusError
from engine.paths import cache_dir

CHUNK_BYTES = 16 << 20
KEEP_IN_MEMORY_BYTES = 48 << 20
BINARY_SNIFF_BYTES = 8192
CACHE_FORMAT = 2

ProgressFn = Callable[[int, int], None]


def ids_dtype(vocab_size: int) -> np.dtype:
    """The smallest unsigned dtype that holds every id of a vocabulary."""
    if vocab_size <= 1 << 8:
        return np.dtype(np.uint8)
    if vocab_size <= 1 << 16:
        return np.dtype(np.uint16)
    return np.dtype(np.uint32)


def looks_binary(path: Path) -> bool:
    """NUL bytes do not occur in text encoded as UTF-8 or latin-1."""
    with open(path, "rb") as handle:
        return b"\x00" in handle.read(BINARY_SNIFF_BYTES)


def iter_text_chunks(
    path: Path,
    encoding: str,
    chunk_bytes: int = CHUNK_BYTES,
    on_raw: Callable[[bytes], object] | None = None,
) -> Iterator[str]:
    """Decode a file chunk by chunk: BOM dropped, CRLF turned into LF.

    A CR at the end of a chunk is held back so that a CRLF pair split across two
    chunks is still normalised.
    """
    try:
        decoder = codecs.getincrementaldecoder(encoding)(errors="strict")
    except LookupError:
        raise CorpusError(f"unknown text encoding '{encoding}'") from None
    offset = 0
    first = True
    carry = ""
    with open(path, "rb") as handle:
        while True:
            raw = handle.read(chunk_bytes)
            final = not raw
            if on_raw is not None and raw:
                on_raw(raw)
            try:
                text = decoder.decode(raw, final=final)
            except UnicodeDecodeError as exc:
                where = offset + max(exc.start, 0)
                raise CorpusError(
                    f"{path}: not valid {encoding} (byte {where}); "
                    "pass --encoding (for example --encoding latin-1)"
                ) from None
            offset += len(raw)
            if first and text:
                first = False
                if text.startswith("\ufeff"):
                    text = text[1:]
            text = carry + text
            carry = ""
            if not final and text.endswith("\r"):
                carry, text = "\r", text[:-1]
            text = text.replace("\r\n", "\n")
            if text:
                yield text
            if final:
                return


def code_points(text: str) -> np.ndarray:
    return np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32)


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


def _grow_counts(counts: np.ndarray, size: int) -> np.ndarray:
    if size <= counts.size:
        return counts
    grown = np.zeros(max(size, counts.size * 2), dtype=np.int64)
    grown[: counts.size] = counts
    return grown


def _scan(
    files: Sequence[Path],
    encoding: str,
    strict: bool,
    keep_points: bool,
    progress: ProgressFn | None,
    total_bytes: int,
) -> tuple[np.ndarray, list[Path], int, int, str, list[np.ndarray] | None]:
    """Pass 1: hash, count, and (for small inputs) keep the code points."""
    digest = hashlib.blake2b(digest_size=16)
    digest.update(f"format={CACHE_FORMAT};encoding={encoding}".encode())
    counts = np.zeros(256, dtype=np.int64)
    accepted: list[Path] = []
    kept: list[np.ndarray] | None = [] if keep_points else None
    skipped_binary = skipped_undecodable = 0
    done_bytes = 0
    check_binary = codecs.lookup(encoding).name in ("utf-8", "utf-8-sig", "ascii")
    for path in files:
        size = path.stat().st_size
        if check_binary and looks_binary(path):
            if strict:
                raise CorpusError(f"{path}: looks like a binary file, not text")
            skipped_binary += 1
            done_bytes += size
            continue
        file_counts = np.zeros(256, dtype=np.int64)
        file_points: list[np.ndarray] = []
        file_digest = hashlib.blake2b(digest_size=16)
        try:
            for text in iter_text_chunks(path, encoding, on_raw=file_digest.update):
                points = code_points(text)
                file_counts = _grow_counts(file_counts, int(points.max()) + 1)
                file_counts[: points.max() + 1] += np.bincount(points)
                if kept is not None:
                    file_points.append(points)
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
        counts = _grow_counts(counts, file_counts.size)
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
        digest.update(f"{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()


def _encoded_root() -> Path:
    root = cache_dir() / "encoded"
    root.mkdir(parents=True, exist_ok=True)
    return root


def _load_cached(key: str) -> EncodedText | None:
    entry = _encoded_root() / key
    try:
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


def _write_index(signature: str, key: str) -> None:
    index_dir = _encoded_root() / "by-stat"
    index_dir.mkdir(exist_ok=True)
    _atomic_write_text(index_dir / signature, key)


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
        index = _encoded_root() / "by-stat" / signature
        if index.exists():
            cached = _load_cached(index.read_text(encoding="utf-8").strip())
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
            _write_index(signature, key)
            return cached

    present = np.flatnonzero(counts)
    chars = [chr(int(cp)) for cp in present]
    dtype = ids_dtype(len(chars))
    lookup = np.zeros(int(present[-1]) + 1, dtype=dtype)
    lookup[present] = np.arange(len(present), dtype=dtype)

    def chunks() -> Iterator[np.ndarray]:
        if kept is not None:
            for points in kept:
                yield lookup[points]
            return
        for path in accepted:
            for text in iter_text_chunks(path, encoding):
                yield lookup[code_points(text)]

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

    entry = _encoded_root() / key
    staging = Path(tempfile.mkdtemp(dir=_encoded_root(), prefix=f".{key}."))
    with open(staging / "ids.bin", "wb") as out:
        for ids_chunk in chunks():
            out.write(ids_chunk.tobytes())
    (staging / "meta.json").write_text(json.dumps(meta, ensure_ascii=False), encoding="utf-8")
    try:
        os.replace(staging, entry)
    except OSError:
        # Another process cached the same content first: theirs is as good as ours.
        for leftover in staging.iterdir():
            leftover.unlink()
        staging.rmdir()
    _write_index(signature, key)
    cached = _load_cached(key)
    if cached is None:  # pragma: no cover - the cache dir vanished under us
        raise CorpusError(f"could not read back the encoding cache in {entry}")
    return cached
