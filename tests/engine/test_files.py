"""engine/files.py: the one reader and writer every hostile case goes through."""

from __future__ import annotations

import os
import threading

import pytest

from engine.errors import CheckpointError, UserError
from engine.files import (
    describe_write_error,
    open_for_write,
    parse_json,
    read_bytes,
    read_json,
    read_text,
    show_path,
    write_atomic,
)


def test_reads_a_regular_file_within_its_cap(tmp_path):
    path = tmp_path / "a.txt"
    path.write_text("héllo", encoding="utf-8")
    assert read_text(path, 100) == "héllo"
    assert read_bytes(path, None) == "héllo".encode()


def test_refuses_a_file_over_its_cap_without_reading_it(tmp_path):
    path = tmp_path / "sparse.json"
    with open(path, "wb") as handle:
        handle.truncate(2 << 30)  # a sparse 2 GB file: reading it whole would take 2 GB
    with pytest.raises(UserError, match="too large"):
        read_json(path, 1 << 20, "state")


def test_a_fifo_is_refused_at_once_not_waited_on(tmp_path):
    fifo = tmp_path / "state.json"
    os.mkfifo(fifo)
    done = threading.Event()
    errors: list[Exception] = []

    def read() -> None:
        try:
            read_json(fifo, 1 << 20, "state")
        except UserError as exc:
            errors.append(exc)
        done.set()

    threading.Thread(target=read, daemon=True).start()
    assert done.wait(5), "reading a FIFO hung"
    assert "named pipe" in str(errors[0])


def test_a_link_to_a_device_or_a_directory_is_refused(tmp_path):
    link = tmp_path / "model.safetensors"
    link.symlink_to("/dev/zero")
    with pytest.raises(CheckpointError, match="device"):
        read_bytes(link, 1 << 20, "weights", CheckpointError)
    with pytest.raises(UserError, match="directory"):
        read_bytes(tmp_path, 10)


def test_deep_json_is_one_line_not_a_recursion_error(tmp_path):
    path = tmp_path / "deep.json"
    path.write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(UserError, match="nested too deeply"):
        read_json(path, 1 << 20, "metrics")
    with pytest.raises(UserError, match="not valid JSON"):
        parse_json("{nope")


def test_undecodable_text_names_the_byte(tmp_path):
    path = tmp_path / "bad.txt"
    path.write_bytes(b"ok\xff")
    with pytest.raises(UserError, match="byte 2"):
        read_text(path, 10)


def test_writing_never_follows_a_planted_link(tmp_path):
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    link = tmp_path / ".lock"
    link.symlink_to(victim)
    with pytest.raises(OSError) as caught:
        os.close(open_for_write(link))
    assert victim.read_text() == "precious"
    assert "symbolic link" in describe_write_error(link, caught.value)
    dangling = tmp_path / ".metrics.tmp"
    dangling.symlink_to(tmp_path / "not-yet")
    with pytest.raises(OSError):
        os.close(open_for_write(dangling))
    assert not (tmp_path / "not-yet").exists()


def test_atomic_write_replaces_a_link_instead_of_writing_through_it(tmp_path):
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    target = tmp_path / "state.json"
    target.symlink_to(victim)
    write_atomic(target, "{}")
    assert victim.read_text() == "precious"
    assert not target.is_symlink() and target.read_text() == "{}"
    assert [p.name for p in tmp_path.iterdir() if ".tmp-" in p.name] == []


def test_a_newline_in_a_path_stays_on_one_line(tmp_path):
    odd = tmp_path / "two\nlines"
    with pytest.raises(UserError) as caught:
        read_text(odd, 10, "corpus")
    assert "\n" not in str(caught.value)
    assert "\n" not in show_path(odd)
