"""Decoding text files into ids: BOM, CRLF, chunk boundaries, dtypes and the on-disk cache."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from engine.data import encoding, reading
from engine.data.corpus import load_corpus
from engine.data.reading import ids_dtype, iter_text_chunks
from engine.errors import CorpusError
from tests.helpers import assert_one_line

# Every awkward thing at once: a BOM, CRLFs (one at the very end), a lone CR,
# 2-, 3- and 4-byte UTF-8 characters, a combining accent.
AWKWARD = "\ufeffline one\r\nzwei é\r\n三行目\r\r\nemoji 🙂🚀 e\u0301\rlast\r\n"
EXPECTED = "line one\nzwei é\n三行目\r\nemoji 🙂🚀 e\u0301\rlast\n"


def decoded(corpus) -> str:
    return corpus.vocab.decode(np.asarray(corpus.ids).tolist())


def cache_entries(cache: Path) -> list[Path]:
    root = cache / "encoded"
    if not root.exists():
        return []
    return sorted(p for p in root.iterdir() if p.is_dir() and p.name not in ("by-stat",))


def visible_entries(cache: Path) -> list[Path]:
    return [p for p in cache_entries(cache) if not p.name.startswith(".")]


# ----- dtypes ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("vocab", "dtype"),
    [(1, np.uint8), (256, np.uint8), (257, np.uint16), (65536, np.uint16), (65537, np.uint32)],
)
def test_ids_dtype_is_the_smallest_that_fits(vocab: int, dtype: type) -> None:
    assert ids_dtype(vocab) == np.dtype(dtype)


def test_small_vocabulary_is_stored_as_uint8(tmp_path: Path) -> None:
    path = tmp_path / "a.txt"
    path.write_text("hello world " * 50, encoding="utf-8")
    corpus = load_corpus(str(path))
    assert corpus.ids.dtype == np.uint8
    assert decoded(corpus) == "hello world " * 50


def test_large_vocabulary_is_stored_as_uint16(tmp_path: Path) -> None:
    chars = [chr(0x4E00 + i) for i in range(300)]  # 300 CJK ideographs: more than a byte
    text = "".join(chars) * 3 + "abc\n"
    path = tmp_path / "cjk.txt"
    path.write_text(text, encoding="utf-8")
    corpus = load_corpus(str(path))
    assert len(corpus.vocab) == 304
    assert corpus.ids.dtype == np.uint16
    assert decoded(corpus) == text


# ----- the chunked decoder --------------------------------------------------------------


def test_iter_text_chunks_drops_bom_and_normalises_crlf(tmp_path: Path) -> None:
    path = tmp_path / "awkward.txt"
    path.write_bytes(AWKWARD.encode("utf-8"))
    assert "".join(iter_text_chunks(path, "utf-8")) == EXPECTED


@pytest.mark.parametrize("chunk", [1, 2, 3, 4, 5, 7, 11])
def test_iter_text_chunks_handles_every_chunk_boundary(tmp_path: Path, chunk: int) -> None:
    """A CRLF, a BOM or a multi-byte character split between two reads is still right."""
    path = tmp_path / "awkward.txt"
    path.write_bytes(AWKWARD.encode("utf-8"))
    pieces = list(iter_text_chunks(path, "utf-8", chunk_bytes=chunk))
    assert "".join(pieces) == EXPECTED
    assert all(pieces), "no empty chunks"


def test_crlf_split_exactly_at_the_chunk_boundary(tmp_path: Path) -> None:
    path = tmp_path / "crlf.txt"
    path.write_bytes(b"abc\r\ndef\r\n")  # the CR is byte 3: chunks of 4 end right after it
    pieces = list(iter_text_chunks(path, "utf-8", chunk_bytes=4))
    assert "".join(pieces) == "abc\ndef\n"
    assert "\r" not in "".join(pieces)


def test_utf16_bom_and_crlf(tmp_path: Path) -> None:
    path = tmp_path / "u16.txt"
    path.write_bytes("ab\r\ncd🙂\r\n".encode("utf-16"))  # with its BOM
    assert "".join(iter_text_chunks(path, "utf-16", chunk_bytes=3)) == "ab\ncd🙂\n"


@pytest.mark.parametrize("chunk", [1, 2, 3, 5, 8, 64])
@pytest.mark.parametrize("keep_in_memory", [True, False])
def test_loading_with_small_chunks_gives_the_same_text(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    fresh_cache: Path,
    chunk: int,
    keep_in_memory: bool,
) -> None:
    """The whole pipeline (count pass, id pass, cache) at tiny chunk sizes, both id paths."""
    monkeypatch.setattr(reading, "CHUNK_BYTES", chunk)
    if not keep_in_memory:  # force the second read of the files
        monkeypatch.setattr(encoding, "KEEP_IN_MEMORY_BYTES", 0)
    path = tmp_path / "awkward.txt"
    path.write_bytes(AWKWARD.encode("utf-8"))
    corpus = load_corpus(str(path))
    assert decoded(corpus) == EXPECTED
    assert len(corpus) == len(EXPECTED)
    assert corpus.vocab.chars == tuple(sorted(set(EXPECTED)))
    counts = {c: EXPECTED.count(c) for c in corpus.vocab.chars}
    assert corpus.counts.tolist() == [counts[c] for c in corpus.vocab.chars]


@pytest.mark.parametrize("codec", ["utf-16", "cp1252", "latin-1"])
def test_other_codecs_with_small_chunks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, codec: str
) -> None:
    monkeypatch.setattr(reading, "CHUNK_BYTES", 3)
    text = "Caf\u00e9 na\u00efve\r\nsecond line\r\n\r\nend\r"
    path = tmp_path / f"{codec}.txt"
    path.write_bytes(text.encode(codec))
    corpus = load_corpus(str(path), encoding=codec)
    assert decoded(corpus) == "Caf\u00e9 na\u00efve\nsecond line\n\nend\r"


# ----- bad input ------------------------------------------------------------------------


def test_non_utf8_file_names_the_file_and_suggests_encoding(tmp_path: Path) -> None:
    path = tmp_path / "latin.txt"
    path.write_bytes("caf\u00e9 cr\u00e8me\n".encode("latin-1"))
    with pytest.raises(CorpusError) as info:
        load_corpus(str(path))
    assert_one_line(info.value, "latin.txt", "--encoding", "utf-8")


def test_non_utf8_byte_far_into_a_file_is_reported(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(reading, "CHUNK_BYTES", 16)
    path = tmp_path / "late.txt"
    path.write_bytes(b"a" * 100 + b"\xff" + b"b" * 10)
    with pytest.raises(CorpusError) as info:
        load_corpus(str(path))
    assert_one_line(info.value, "late.txt", "byte 100", "--encoding")


def test_latin1_encoding_option_reads_the_file(tmp_path: Path) -> None:
    path = tmp_path / "latin.txt"
    path.write_bytes("caf\u00e9 cr\u00e8me br\u00fbl\u00e9e\r\n".encode("latin-1"))
    corpus = load_corpus(str(path), encoding="latin-1")
    assert decoded(corpus) == "caf\u00e9 cr\u00e8me br\u00fbl\u00e9e\n"
    assert "\u00e9" in corpus.vocab.chars


@pytest.mark.parametrize("name", ["no-such-codec", "rot13", "base64"])
def test_unknown_or_non_text_encoding_is_a_corpus_error(tmp_path: Path, name: str) -> None:
    path = tmp_path / "a.txt"
    path.write_text("hello\n", encoding="utf-8")
    with pytest.raises(CorpusError) as info:
        load_corpus(str(path), encoding=name)
    assert_one_line(info.value, name)


# ----- the on-disk cache ----------------------------------------------------------------


def test_second_load_hits_the_cache_without_encoding_again(
    tmp_path: Path, fresh_cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "text.txt"
    path.write_text("the quick brown fox\n" * 200, encoding="utf-8")
    first = load_corpus(str(path))
    entries = visible_entries(fresh_cache)
    assert len(entries) == 1
    assert isinstance(first.ids, np.memmap)
    assert Path(first.ids.filename).resolve() == (entries[0] / "ids.bin").resolve()

    def no_encoding(*args, **kwargs):
        raise AssertionError("the file was scanned again")

    monkeypatch.setattr(encoding, "_scan", no_encoding)
    second = load_corpus(str(path))
    assert isinstance(second.ids, np.memmap)
    assert Path(second.ids.filename).resolve() == (entries[0] / "ids.bin").resolve()
    assert decoded(second) == decoded(first)
    assert second.vocab == first.vocab
    assert second.content_key == first.content_key
    assert second.files == [path]


def test_cache_is_keyed_by_content_not_path(tmp_path: Path, fresh_cache: Path) -> None:
    text = "same words, another place\n" * 100
    a, b = tmp_path / "a.txt", tmp_path / "sub" / "b.txt"
    b.parent.mkdir()
    a.write_text(text, encoding="utf-8")
    b.write_text(text, encoding="utf-8")
    first = load_corpus(str(a))
    second = load_corpus(str(b))
    assert len(visible_entries(fresh_cache)) == 1, "equal content is encoded once"
    assert second.content_key == first.content_key
    assert Path(second.ids.filename).resolve() == Path(first.ids.filename).resolve()
    # Each load still reports its own file, not the one that filled the cache first.
    assert first.files == [a]
    assert second.files == [b]
    assert load_corpus(str(b)).files == [b]  # from the path index this time


def test_changed_content_is_encoded_again(tmp_path: Path, fresh_cache: Path) -> None:
    path = tmp_path / "text.txt"
    path.write_text("abcd" * 50, encoding="utf-8")
    first = load_corpus(str(path))
    path.write_text("wxyz" * 50, encoding="utf-8")  # same size
    second = load_corpus(str(path))
    assert decoded(second) == "wxyz" * 50
    assert second.content_key != first.content_key
    assert len(visible_entries(fresh_cache)) == 2


def test_changed_content_with_restored_mtime_is_encoded_again(
    tmp_path: Path, fresh_cache: Path
) -> None:
    """`cp -p` / `rsync -t` put new content in place with the old size and mtime."""
    path = tmp_path / "text.txt"
    path.write_text("abcd" * 50, encoding="utf-8")
    before = path.stat()
    assert decoded(load_corpus(str(path))) == "abcd" * 50
    replacement = tmp_path / "incoming.txt"
    replacement.write_text("wxyz" * 50, encoding="utf-8")
    os.utime(replacement, ns=(before.st_atime_ns, before.st_mtime_ns))
    os.replace(replacement, path)
    assert path.stat().st_mtime_ns == before.st_mtime_ns
    assert path.stat().st_size == before.st_size
    assert decoded(load_corpus(str(path))) == "wxyz" * 50


def test_encoding_is_part_of_the_cache_key(tmp_path: Path, fresh_cache: Path) -> None:
    path = tmp_path / "text.txt"
    path.write_bytes("na\u00efve\n".encode())
    as_utf8 = load_corpus(str(path))
    as_latin1 = load_corpus(str(path), encoding="latin-1")
    assert decoded(as_utf8) == "na\u00efve\n"
    assert decoded(as_latin1) == "na\u00c3\u00afve\n"
    assert as_utf8.content_key != as_latin1.content_key


def test_damaged_cache_entry_is_rebuilt(tmp_path: Path, fresh_cache: Path) -> None:
    path = tmp_path / "text.txt"
    path.write_text("some text to cache\n" * 100, encoding="utf-8")
    first = load_corpus(str(path))
    (entry,) = visible_entries(fresh_cache)
    expected = decoded(first)
    del first
    ids_file = entry / "ids.bin"
    ids_file.write_bytes(ids_file.read_bytes()[:10])  # truncated behind our back
    again = load_corpus(str(path))
    assert decoded(again) == expected
    assert ids_file.stat().st_size == len(expected)


def test_use_cache_false_writes_nothing(tmp_path: Path, fresh_cache: Path) -> None:
    path = tmp_path / "text.txt"
    path.write_text("not cached\n", encoding="utf-8")
    corpus = load_corpus(str(path), use_cache=False)
    assert decoded(corpus) == "not cached\n"
    assert not isinstance(corpus.ids, np.memmap)
    assert visible_entries(fresh_cache) == []


def test_no_staging_directories_are_left_behind(tmp_path: Path, fresh_cache: Path) -> None:
    for i in range(3):
        path = tmp_path / f"t{i}.txt"
        path.write_text(f"file number {i}\n" * 20, encoding="utf-8")
        load_corpus(str(path))
    hidden = [p for p in cache_entries(fresh_cache) if p.name.startswith(".")]
    assert hidden == []
    shutil.rmtree(fresh_cache / "encoded")  # a deleted cache is simply rebuilt
    assert decoded(load_corpus(str(tmp_path / "t0.txt"))) == "file number 0\n" * 20


def test_progress_callback_reaches_the_total(tmp_path: Path, fresh_cache: Path) -> None:
    path = tmp_path / "text.txt"
    path.write_text("progress\n" * 1000, encoding="utf-8")
    calls: list[tuple[int, int]] = []
    load_corpus(str(path), progress=lambda done, total: calls.append((done, total)))
    assert calls
    assert calls[-1][0] == calls[-1][1] == path.stat().st_size
