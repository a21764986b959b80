"""The byte-level encoding fast path gives exactly what decoding with Python would.

Every case is checked against a reference built the slow, obvious way (decode
the whole file, drop a BOM, turn CRLF into LF), with chunks small enough that
every boundary case (a character or a CRLF pair split across chunks, a BOM
split across reads) happens.
"""

from __future__ import annotations

import codecs
from pathlib import Path

import numpy as np
import pytest

from engine.data import encoding, reading
from engine.errors import CorpusError


def reference(raw: bytes, codec: str) -> tuple[list[str], np.ndarray]:
    text = raw.decode(codec)
    if text.startswith("\ufeff"):
        text = text[1:]
    text = text.replace("\r\n", "\n")
    chars = sorted(set(text))
    index = {c: i for i, c in enumerate(chars)}
    return chars, np.array([index[c] for c in text], dtype=np.int64)


SAMPLES = {
    "ascii-crlf": ("ascii", b"line one\r\nline two\r\n\r\nend\r"),
    "utf8-mixed": (
        "utf-8",
        codecs.BOM_UTF8
        + "caf\u00e9 \u2014 \u65e5\u672c \U0001f600!\r\nna\u00efve \u00fcber\r\n".encode() * 3,
    ),
    "utf8-lone-cr": ("utf-8", "a\rb\r\r\nc\u00e9\r".encode()),
    "latin1": ("latin-1", bytes(range(1, 256)) + b"\r\n" + bytes(range(255, 0, -1))),
    "utf16": ("utf-16", "h\u00e9llo\r\nw\u00f6rld \u2603".encode("utf-16")),
}


@pytest.mark.parametrize("name", sorted(SAMPLES))
@pytest.mark.parametrize("chunk", [1, 2, 3, 5, 64])
@pytest.mark.parametrize("keep", [True, False])
def test_encoding_matches_python_decoding(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str, chunk: int, keep: bool
) -> None:
    codec, raw = SAMPLES[name]
    path = tmp_path / "text.txt"
    path.write_bytes(raw)
    monkeypatch.setattr(reading, "CHUNK_BYTES", chunk)
    monkeypatch.setattr(encoding, "KEEP_IN_MEMORY_BYTES", 1 << 20 if keep else 0)
    for use_cache in (False, True):
        encoded = encoding.encode_files([path], codec, use_cache=use_cache)
        chars, ids = reference(raw, codec)
        assert encoded.chars == chars
        np.testing.assert_array_equal(np.asarray(encoded.ids, dtype=np.int64), ids)
        assert encoded.counts.tolist() == np.bincount(ids, minlength=len(chars)).tolist()


def test_wide_vocabulary_uses_uint16_ids(tmp_path: Path) -> None:
    text = "".join(chr(0x4E00 + i) for i in range(400)) + "abc\u00e9\n"
    path = tmp_path / "cjk.txt"
    path.write_text(text * 2, encoding="utf-8")
    encoded = encoding.encode_files([path], use_cache=False)
    chars, ids = reference((text * 2).encode(), "utf-8")
    assert encoded.ids.dtype == np.uint16
    assert encoded.chars == chars
    np.testing.assert_array_equal(encoded.ids.astype(np.int64), ids)


def random_utf8ish(rng: np.random.Generator) -> bytes:
    """Valid characters of every length with, sometimes, a corrupted byte."""
    pieces = []
    for _ in range(int(rng.integers(1, 12))):
        kind = int(rng.integers(0, 5))
        point = [
            int(rng.integers(0, 0x80)),
            int(rng.integers(0x80, 0x800)),
            int(rng.integers(0x800, 0xD800)),
            int(rng.integers(0xE000, 0x10000)),
            int(rng.integers(0x10000, 0x110000)),
        ][kind]
        pieces.append(chr(point).encode("utf-8", "surrogatepass"))
    data = bytearray(b"".join(pieces))
    if rng.random() < 0.6:
        data[int(rng.integers(0, len(data)))] = int(rng.integers(0x80, 0x100))
    if rng.random() < 0.2:  # known traps: overlong, surrogate, beyond U+10FFFF, bad lead
        trap = [b"\xc0\xaf", b"\xe0\x80\xaf", b"\xed\xa0\x80", b"\xf4\x90\x80\x80", b"\xf8\x88"]
        data[len(data) // 2 : len(data) // 2] = trap[int(rng.integers(0, len(trap)))]
    return bytes(data)


def test_utf8_validation_agrees_with_python() -> None:
    rng = np.random.default_rng(5)
    rejected = 0
    for _ in range(3000):
        data = random_utf8ish(rng)
        wide = reading.utf8_wide(np.frombuffer(data, np.uint8))
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            assert wide is None, data
            rejected += 1
            continue
        assert wide is not None, data
        at, points = wide
        expected = [(i, ord(c)) for i, c in enumerate(text) if ord(c) >= 0x80]
        assert list(zip(at.tolist(), points.tolist(), strict=True)) == expected
    assert 500 < rejected < 2500  # both outcomes were exercised


@pytest.mark.parametrize("chunk", [2, 3, 1 << 20])
def test_invalid_utf8_reports_the_byte(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, chunk: int
) -> None:
    monkeypatch.setattr(reading, "CHUNK_BYTES", chunk)
    path = tmp_path / "bad.txt"
    path.write_bytes(codecs.BOM_UTF8 + "ok \u00e9\r\n".encode() + b"x\xe9y z")
    with pytest.raises(CorpusError, match=r"not valid utf-8 \(byte 11\)"):
        encoding.encode_files([path], use_cache=False)
    truncated = tmp_path / "truncated.txt"
    truncated.write_bytes(b"abc\xe2\x82")
    with pytest.raises(CorpusError, match=r"byte 3\)"):
        encoding.encode_files([truncated], use_cache=False)


def test_non_ascii_byte_is_invalid_ascii(tmp_path: Path) -> None:
    path = tmp_path / "a.txt"
    path.write_bytes(b"hello\xa0world")
    with pytest.raises(CorpusError, match=r"not valid ascii \(byte 5\)"):
        encoding.encode_files([path], "ascii", use_cache=False)


@pytest.mark.parametrize("size", [0, 1, 2, 7, 64, 65, 1000])
def test_byte_histogram(monkeypatch: pytest.MonkeyPatch, size: int) -> None:
    monkeypatch.setattr(reading, "HISTOGRAM_BLOCK", 16)
    data = np.random.default_rng(size).integers(0, 256, size, dtype=np.uint8)
    np.testing.assert_array_equal(reading.byte_histogram(data), np.bincount(data, minlength=256))


def test_cpu_batches_are_gathered_from_the_memory_map(text_file: Path) -> None:
    """On the CPU the ids stay a memory map of the cache: no int32 copy of the corpus."""
    import torch

    from engine.config.train import TrainConfig
    from engine.data.corpus import load_corpus
    from engine.training.batches import BatchSource

    train_ids, _ = load_corpus(str(text_file)).split(0.1)
    assert isinstance(train_ids, np.memmap)
    config = TrainConfig(batch_size=4, seq_len=16, device="cpu")
    source = BatchSource(train_ids, config, torch.device("cpu"), seed=9)
    assert source.device_ids is None and source.host_ids is train_ids
    starts = torch.randint(
        0, len(train_ids) - 16, (4,), generator=torch.Generator().manual_seed(9)
    ).tolist()
    inputs, targets, _ = source.next()
    expected = np.stack([np.asarray(train_ids[s : s + 17], dtype=np.int64) for s in starts])
    np.testing.assert_array_equal(inputs.numpy(), expected[:, :-1])
    np.testing.assert_array_equal(targets.numpy(), expected[:, 1:])
    assert inputs.dtype == torch.long
