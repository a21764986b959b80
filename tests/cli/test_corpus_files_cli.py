"""Issue 19, corpus files through the real entry point: a file changed in place while it
is encoded never poisons the encoding cache, and no corpus file (a named pipe or a device
swapped in, a file over the stated cap) hangs a command or is read unbounded."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from engine.data import encoding, reading
from engine.data.corpus import load_corpus
from tests.helpers import assert_user_error, cli_json

TEXT_A = "abcd efgh\n" * 4000  # 40,000 bytes: ten 4 KB chunks
TEXT_B = "hgfe dcba\n" * 4000  # the same characters, the same size, another text


def decoded(corpus) -> str:
    return "".join(corpus.vocab.chars[int(i)] for i in corpus.ids)


def _change_during_the_second_pass(
    monkeypatch: pytest.MonkeyPatch, path: Path, new_text: str
) -> list[int]:
    """Rewrite `path` in place (its mtime restored) after the first chunk of pass 2."""
    real = encoding.iter_pieces
    passes: list[int] = []

    def hooked(source, enc, **kwargs):
        passes.append(1)
        for number, piece in enumerate(real(source, enc, **kwargs)):
            yield piece
            if len(passes) == 2 and number == 0 and Path(source) == path:
                stat = path.stat()
                with open(path, "r+b") as handle:  # in place: same inode, same size
                    handle.write(new_text.encode())
                os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))

    monkeypatch.setattr(encoding, "iter_pieces", hooked)
    monkeypatch.setattr(reading, "CHUNK_BYTES", 4096)
    monkeypatch.setattr(encoding, "KEEP_IN_MEMORY_BYTES", 0)  # two passes over the file
    return passes


def test_a_file_changed_while_encoded_never_poisons_the_cache(
    cli_main, tmp_path: Path, fresh_cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "big.txt"
    path.write_text(TEXT_A, encoding="utf-8")
    passes = _change_during_the_second_pass(monkeypatch, path, TEXT_B)
    proc = cli_main("corpus", "info", path, "--json")
    assert len(passes) == 2, "the hook never ran"
    assert_user_error(proc, "changed while it was being encoded")
    monkeypatch.undo()
    monkeypatch.setenv("CHARLM_CACHE_DIR", str(fresh_cache))
    # The old content, from another file: a cache hit must decode to it, not to TEXT_B.
    same = tmp_path / "same.txt"
    same.write_text(TEXT_A, encoding="utf-8")
    assert decoded(load_corpus(str(same))) == TEXT_A
    assert decoded(load_corpus(str(path))) == TEXT_B  # the file as it is now
    assert cli_json(cli_main("corpus", "info", path, "--json"))["chars"] == len(TEXT_B)


def test_a_corpus_over_the_stated_cap_is_one_line(
    cli_main, tmp_path: Path, fresh_cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "sparse.txt"
    with open(path, "wb") as handle:
        handle.truncate(3 << 30)  # 3 GB of NULs: latin-1 text, read whole without a cap
    monkeypatch.setattr(reading, "MAX_CORPUS_BYTES", 1 << 30)
    proc = cli_main("corpus", "info", path, "--encoding", "latin-1", "--json")
    assert_user_error(proc, "too large", "at most 1.0 GB")


def test_a_corpus_file_swapped_for_a_pipe_is_one_line(
    cli_main, tmp_path: Path, fresh_cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The path was a file when listed, a named pipe when opened: never waited on."""
    folder = tmp_path / "texts"
    folder.mkdir()
    (folder / "a.txt").write_text(TEXT_A, encoding="utf-8")
    pipe = folder / "b.txt"
    real = reading.looks_binary

    def swap_then_sniff(path: Path) -> bool:
        if path == pipe and pipe.is_file():
            pipe.unlink()
            os.mkfifo(pipe)
        return real(path)

    monkeypatch.setattr(encoding, "looks_binary", swap_then_sniff)
    pipe.write_text(TEXT_B, encoding="utf-8")
    assert_user_error(cli_main("corpus", "info", pipe, "--json"), "named pipe", "b.txt")
    pipe.unlink()
    pipe.write_text(TEXT_B, encoding="utf-8")
    proc = cli_main("corpus", "info", folder, "--json")  # the folder changed under it
    assert_user_error(proc, "changed while it was being encoded")
    assert cli_json(cli_main("corpus", "info", folder, "--json"))["chars"] == len(TEXT_A)


def test_a_huge_labelled_file_is_refused_before_it_is_held_in_memory(
    cli_main, tmp_path: Path, fresh_cache: Path
) -> None:
    path = tmp_path / "labels.tsv"
    with open(path, "wb") as handle:
        handle.write(b"a\tfirst\nb\tsecond\n")
        handle.truncate(3 << 30)  # a labelled corpus is held whole: 3 GB would be read
    proc = cli_main("corpus", "info", path, "--labels", "--json")
    assert_user_error(proc, "too large", "at most 1.0 GB")


def test_the_labelled_layout_sniff_reads_a_bounded_head(tmp_path: Path) -> None:
    """`corpus info` asks whether a plain file looks labelled: one 3 GB line is not read."""
    import time

    from engine.data.labels import looks_labelled

    path = tmp_path / "one-line.txt"
    with open(path, "wb") as handle:
        handle.write(b"a\tb")
        handle.truncate(3 << 30)
    started = time.monotonic()
    assert looks_labelled(str(path)) is False
    assert time.monotonic() - started < 5
    os.mkfifo(tmp_path / "pipe.tsv")
    assert looks_labelled(str(tmp_path / "pipe.tsv")) is False
