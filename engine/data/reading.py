"""Reading text files in bounded pieces: codecs, binary sniffing, and the byte fast path.

A corpus can be far larger than memory, so text is decoded in chunks and never
held whole. UTF-8, ASCII and Latin-1 text is never turned into str at all (see
"the fast path" below): that is what takes encoding from ~40 MB/s to well over
100 MB/s. `engine.data.encoding` builds the id arrays and the cache from these pieces.

Every corpus file is opened through `engine.files.open_regular`: without blocking
(a named pipe swapped in for a file is refused at once, never waited on), checked
to be a regular file on the open descriptor (a link to a device is refused), and
at most `MAX_CORPUS_BYTES` (32 GB, all files of a corpus together: generous, since
the ids are memory-mapped from the cache and never held whole, yet a sparse
terabyte file is refused instead of read). Each is a one-line CorpusError.
"""

from __future__ import annotations

import codecs
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np

from engine.errors import CorpusError
from engine.files import open_regular

CHUNK_BYTES = 4 << 20  # measured: smaller chunks keep numpy temporaries in cache
BINARY_SNIFF_BYTES = 8192
MAX_CORPUS_BYTES = 32 << 30  # all files of one corpus together


def ids_dtype(vocab_size: int) -> np.dtype:
    """The smallest unsigned dtype that holds every id of a vocabulary."""
    if vocab_size <= 1 << 8:
        return np.dtype(np.uint8)
    if vocab_size <= 1 << 16:
        return np.dtype(np.uint16)
    return np.dtype(np.uint32)


def text_codec_name(encoding: str) -> str:
    """The codec's canonical name; an unknown or non-text codec is a CorpusError."""
    try:
        info = codecs.lookup(encoding)
    except LookupError:
        raise CorpusError(f"unknown text encoding '{encoding}'") from None
    if not getattr(info, "_is_text_encoding", True):  # rot13, base64, zlib, ...
        raise CorpusError(f"'{encoding}' is not a text encoding (try utf-8 or latin-1)")
    return info.name


def open_corpus_file(path: Path) -> BinaryIO:
    """A corpus file opened for reading: a regular file of at most MAX_CORPUS_BYTES."""
    fd, _ = open_regular(path, MAX_CORPUS_BYTES, "corpus file", CorpusError)
    return os.fdopen(fd, "rb")


def looks_binary(path: Path) -> bool:
    """NUL bytes do not occur in text encoded as UTF-8 or latin-1."""
    with open_corpus_file(path) as handle:
        return b"\x00" in handle.read(BINARY_SNIFF_BYTES)


def _raw_chunks(
    path: Path, chunk_bytes: int, on_raw: Callable[[bytes], object] | None
) -> Iterator[bytes]:
    """The file's bytes chunk by chunk (each shown to `on_raw`), then b"": the final call."""
    with open_corpus_file(path) as handle:
        while raw := handle.read(chunk_bytes):
            if on_raw is not None:
                on_raw(raw)
            yield raw
    yield b""


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
    for raw in _raw_chunks(path, chunk_bytes, on_raw):
        final = not raw
        try:
            text = decoder.decode(raw, final=final)
        except UnicodeDecodeError as exc:
            raise _invalid(path, encoding, offset + max(exc.start, 0)) from None
        except UnicodeError as exc:  # utf-16/utf-32 without a byte order mark
            hint = "name the byte order, e.g. utf-16-le" if "BOM" in str(exc) else str(exc)
            raise CorpusError(f"{path}: not valid {encoding} ({hint})") from None
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


def code_points(text: str) -> np.ndarray:
    return np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32)


def grow_counts(counts: np.ndarray, size: int) -> np.ndarray:
    if size <= counts.size:
        return counts
    grown = np.zeros(max(size, counts.size * 2), dtype=np.int64)
    grown[: counts.size] = counts
    return grown


# ----- the fast path: UTF-8, ASCII and Latin-1 stay bytes -----------------------------
#
# Decoding to str and re-encoding as UTF-32 costs more than everything else in
# encoding put together (about 40 MB/s). For the codecs almost every corpus uses,
# text can stay bytes: one byte is one character, except UTF-8's multi-byte
# characters, which are few and are decoded (and validated) with a handful of
# numpy operations on just those bytes. Counting is then a byte histogram, and
# mapping to ids is one `bytes.translate` that also deletes continuation bytes.

BYTE_CODECS = ("utf-8", "ascii", "iso8859-1")  # canonical names, as codecs.lookup gives them
HISTOGRAM_BLOCK = 1 << 20  # bincount's intp temporary stays in the CPU cache
UTF8_CONTINUATION = bytes(range(0x80, 0xC0))
_UTF8_MIN_POINT = np.array([0, 0, 0x80, 0x800, 0x10000], dtype=np.uint32)  # by length


def byte_histogram(data: np.ndarray) -> np.ndarray:
    """Counts of the 256 byte values (int64).

    np.bincount on bytes is slow; on byte *pairs* (a uint16 view, 65,536 bins) it
    does half the element visits, and the pair table's row and column sums are
    the byte counts (whatever the machine's byte order).
    """
    total = np.zeros(1 << 16, dtype=np.int64)
    for start in range(0, data.size - 1, HISTOGRAM_BLOCK):
        block = data[start : start + HISTOGRAM_BLOCK]
        even = block.size // 2 * 2
        total += np.bincount(block[:even].view(np.uint16), minlength=1 << 16)
    pairs = total.reshape(256, 256)
    counts = pairs.sum(axis=0) + pairs.sum(axis=1)
    if data.size % 2:
        counts[data[-1]] += 1
    return counts


def utf8_boundary(data: bytes) -> int:
    """The length of the longest prefix of `data` that does not end inside a character.

    Malformed tails are left in place for validation to report.
    """
    end = len(data)
    for back in range(1, min(4, end) + 1):
        byte = data[end - back]
        if byte < 0x80:
            return end
        if byte >= 0xC0:  # a lead byte: how long is its character?
            size = 2 if byte < 0xE0 else 3 if byte < 0xF0 else 4
            return end if back >= size else end - back
    return end


def utf8_wide(data: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """The multi-byte characters of UTF-8 bytes, or None if the bytes are not valid UTF-8.

    Returns each one's position among the characters (continuation bytes do not
    count) and its code point. Only bytes >= 0x80 are visited after one compare,
    so this costs little on mostly-ASCII text. Validation matches Python's strict
    decoder: every continuation byte belongs to a lead byte, no overlong forms,
    no surrogates, nothing above U+10FFFF.
    """
    high = np.flatnonzero(data >= 0x80)
    values = data[high]
    is_lead = values >= 0xC0
    at = high[is_lead]
    lead = values[is_lead].astype(np.uint32)
    size = 2 + (lead >= 0xE0).astype(np.intp) + (lead >= 0xF0)
    tails = size - 1
    before = np.cumsum(tails) - tails  # continuation bytes before each lead
    continuation = high[~is_lead]
    if continuation.size != int(tails.sum()) or (lead > 0xF4).any():
        return None
    # Where continuation bytes must be: right after their lead, `tails` of them.
    step = np.arange(continuation.size) - np.repeat(before, tails)
    if not np.array_equal(np.repeat(at, tails) + 1 + step, continuation):
        return None
    points = lead & np.where(size == 2, 0x1F, np.where(size == 3, 0x0F, 0x07)).astype(np.uint32)
    for k in (1, 2, 3):
        more = size > k
        if not more.any():
            break
        points[more] = (points[more] << 6) | (data[at[more] + k] & 0x3F)
    if (
        (points < _UTF8_MIN_POINT[size]).any()
        or (points > 0x10FFFF).any()
        or ((points >= 0xD800) & (points <= 0xDFFF)).any()
    ):
        return None
    return at - before, points


@dataclass
class BytesPiece:
    """A chunk of text kept as bytes: one byte per character, or UTF-8.

    In UTF-8, the multi-byte characters are at `wide_at` (positions among the
    characters) with code points `wide_points`; their continuation bytes are
    deleted when mapping to ids.
    """

    data: bytes
    utf8: bool
    wide_at: np.ndarray | None = None
    wide_points: np.ndarray | None = None

    def add_counts(self, counts: np.ndarray) -> np.ndarray:
        histogram = byte_histogram(np.frombuffer(self.data, np.uint8))
        single = 128 if self.utf8 else 256  # UTF-8 bytes >= 128 are not characters
        counts = grow_counts(counts, 256)
        counts[:single] += histogram[:single]
        if self.wide_points is not None and self.wide_points.size:
            values, numbers = np.unique(self.wide_points, return_counts=True)
            counts = grow_counts(counts, int(values[-1]) + 1)
            counts[values] += numbers
        return counts

    def to_ids(self, lookup: np.ndarray, byte_table: bytes) -> np.ndarray:
        """Ids of the characters; `byte_table` maps code points below 256 to their ids."""
        if self.wide_at is None:
            ids = np.frombuffer(self.data.translate(byte_table), np.uint8)
            return ids if lookup.dtype == np.uint8 else ids.astype(lookup.dtype)
        mapped = self.data.translate(byte_table, UTF8_CONTINUATION)
        ids = np.frombuffer(mapped, np.uint8).astype(lookup.dtype)  # writable, wide enough
        ids[self.wide_at] = lookup[self.wide_points]
        return ids


@dataclass
class PointsPiece:
    """A chunk of text in any other codec, as code points."""

    points: np.ndarray

    def add_counts(self, counts: np.ndarray) -> np.ndarray:
        top = int(self.points.max()) + 1
        counts = grow_counts(counts, top)
        counts[:top] += np.bincount(self.points)
        return counts

    def to_ids(self, lookup: np.ndarray, byte_table: bytes) -> np.ndarray:
        return lookup[self.points]


Piece = BytesPiece | PointsPiece


def _invalid(path: Path, encoding: str, where: int) -> CorpusError:
    return CorpusError(
        f"{path}: not valid {encoding} (byte {where}); "
        "pass --encoding (for example --encoding latin-1)"
    )


def _byte_piece(body: bytes, codec: str, path: Path, offset: int, encoding: str) -> BytesPiece:
    """Validate `body` (which starts at file `offset`), normalise CRLF, make a piece."""
    ascii_only = body.isascii()
    if codec == "ascii" and not ascii_only:
        where = int(np.argmax(np.frombuffer(body, np.uint8) >= 0x80))
        raise _invalid(path, encoding, offset + where)
    text = body.replace(b"\r\n", b"\n") if b"\r" in body else body
    if codec != "utf-8" or ascii_only:
        return BytesPiece(text, codec == "utf-8")
    wide = utf8_wide(np.frombuffer(text, np.uint8))
    if wide is None:  # invalid: let Python's decoder say where
        try:
            codecs.utf_8_decode(body, "strict", True)
        except UnicodeDecodeError as exc:
            raise _invalid(path, encoding, offset + max(exc.start, 0)) from None
        raise _invalid(path, encoding, offset)  # pragma: no cover - the checks agree
    return BytesPiece(text, True, *wide)


def _iter_byte_pieces(
    path: Path,
    codec: str,
    encoding: str,
    chunk_bytes: int,
    on_raw: Callable[[bytes], object] | None,
) -> Iterator[BytesPiece]:
    """Chunks of a UTF-8 / ASCII / Latin-1 file: BOM dropped, CRLF turned into LF.

    A chunk never ends inside a UTF-8 character or between the CR and LF of a
    pair: such a tail is carried over to the next chunk.
    """
    utf8 = codec == "utf-8"
    bom = codecs.BOM_UTF8
    strip_bom = utf8
    pending = b""
    pending_at = 0  # file offset of pending's first byte
    for raw in _raw_chunks(path, chunk_bytes, on_raw):
        final = not raw
        data = pending + raw if pending else raw
        start = pending_at
        if strip_bom:
            if not final and len(data) < len(bom) and bom.startswith(data):
                pending = data  # too short to tell yet
                continue
            strip_bom = False
            if data.startswith(bom):
                data, start = data[len(bom) :], start + len(bom)
        cut = utf8_boundary(data) if utf8 and not final else len(data)
        if not final and data[:cut].endswith(b"\r"):
            cut -= 1  # its LF may start the next chunk
        body, pending, pending_at = data[:cut], data[cut:], start + cut
        if body:
            yield _byte_piece(body, codec, path, start, encoding)


def iter_pieces(
    path: Path,
    encoding: str,
    *,
    on_raw: Callable[[bytes], object] | None = None,
    chunk_bytes: int | None = None,
) -> Iterator[Piece]:
    """A file's text in validated chunks ready to count and map, as bytes where possible.

    `on_raw` sees every raw byte read (the content hash).
    """
    codec = text_codec_name(encoding)
    size = chunk_bytes or CHUNK_BYTES
    if codec in BYTE_CODECS:
        yield from _iter_byte_pieces(path, codec, encoding, size, on_raw)
        return
    for text in iter_text_chunks(path, encoding, size, on_raw):
        yield PointsPiece(code_points(text))
