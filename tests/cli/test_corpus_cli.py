"""`charlm-tui corpus list / info` through the real entry point (`python -m charlm_tui`)."""

from __future__ import annotations

import json
import math
from collections import Counter
from pathlib import Path

import pytest

from tests.helpers import MANIFEST_PATH, assert_user_error, cli_json, run_cli


def test_corpus_list_json() -> None:
    payload = cli_json(run_cli("corpus", "list", "--json"))
    manifest = json.loads(MANIFEST_PATH.read_text(encoding="utf-8"))
    rows = payload["corpora"]
    assert [row["name"] for row in rows] == [entry["name"] for entry in manifest["corpora"]]
    for row in rows:
        assert set(row) >= {"name", "kind", "description", "available_offline", "default"}
        assert row["kind"] in ("file", "download", "builtin")
    assert [row["name"] for row in rows if row["default"]] == [manifest["default"]]
    kinds = {row["name"]: row["kind"] for row in rows}
    assert kinds["tinyshakespeare"] == "download"
    assert kinds["python-stdlib"] == "builtin"
    assert kinds["markov"] == "file"
    # The session's cache is fresh: tinyshakespeare has not been downloaded.
    assert not next(r for r in rows if r["name"] == "tinyshakespeare")["available_offline"]


def test_corpus_list_for_people_goes_to_stdout() -> None:
    """Data the user asked for, in human form: on stdout, so `corpus list | less` shows it."""
    proc = run_cli("corpus", "list")
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    assert "markov" in proc.stdout and "tinyshakespeare" in proc.stdout


def test_corpus_info_json_on_a_file(tmp_path: Path) -> None:
    text = "hello world, hello corpus\n" * 40
    path = tmp_path / "hello.txt"
    path.write_text(text, encoding="utf-8")
    info = cli_json(run_cli("corpus", "info", path, "--json"))
    counts = Counter(text)
    entropy = -sum(n / len(text) * math.log2(n / len(text)) for n in counts.values())
    assert info["name"] == "hello.txt"
    assert info["chars"] == len(text)
    assert info["vocab_size"] == len(counts)
    assert info["entropy_bits"] == pytest.approx(entropy, abs=1e-4)
    assert info["most_common"][0] == [counts.most_common(1)[0][0], counts.most_common(1)[0][1]]
    assert info["preview"] == text[:400]
    assert info["files"] == 1


def test_corpus_info_json_on_a_sample_and_a_directory(tmp_path: Path) -> None:
    info = cli_json(run_cli("corpus", "info", "markov", "--json"))
    assert (info["name"], info["chars"], info["vocab_size"]) == ("markov", 200_000, 10)
    assert 2.0 < info["entropy_bits"] < math.log2(10)

    (tmp_path / "sub").mkdir()
    (tmp_path / "a.txt").write_text("aaa\n", encoding="utf-8")
    (tmp_path / "sub" / "b.txt").write_text("bbb\n", encoding="utf-8")
    (tmp_path / "img.bin").write_bytes(b"\x00\x01\x02\x03")
    info = cli_json(run_cli("corpus", "info", tmp_path, "--json"))
    assert (info["chars"], info["files"], info["skipped_binary"]) == (8, 2, 1)


def test_corpus_info_for_people_goes_to_stdout(text_file: Path) -> None:
    proc = run_cli("corpus", "info", text_file)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    assert "20,000 chars" in proc.stdout
    assert "entropy" in proc.stdout


def test_latin1_encoding_option(tmp_path: Path) -> None:
    path = tmp_path / "latin.txt"
    path.write_bytes("d\u00e9j\u00e0 vu\r\n".encode("latin-1"))
    assert_user_error(run_cli("corpus", "info", path, "--json"), "latin.txt", "--encoding")
    info = cli_json(run_cli("corpus", "info", path, "--encoding", "latin-1", "--json"))
    assert info["chars"] == len("d\u00e9j\u00e0 vu\n")
    assert info["preview"] == "d\u00e9j\u00e0 vu\n"


def _text(tmp_path: Path) -> Path:
    path = tmp_path / "plain.txt"
    path.write_text("plain text\n", encoding="utf-8")
    return path


def _binary(tmp_path: Path) -> Path:
    path = tmp_path / "image.png"
    path.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\x0dIHDR" + bytes(100))
    return path


def _empty(tmp_path: Path) -> Path:
    path = tmp_path / "empty.txt"
    path.write_bytes(b"")
    return path


def _no_text_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "blobs"
    folder.mkdir()
    (folder / "a.bin").write_bytes(b"\x00\xff" * 10)
    return folder


def _cp1252(tmp_path: Path) -> Path:
    path = tmp_path / "windows.txt"
    path.write_bytes("smart \u201cquotes\u201d\n".encode("cp1252"))
    return path


@pytest.mark.parametrize(
    ("make", "extra", "fragments"),
    [
        (lambda tmp: tmp / "missing.txt", [], ["missing.txt"]),
        (_binary, [], ["image.png", "binary"]),
        (_empty, [], ["empty.txt", "empty"]),
        (_no_text_dir, [], ["no readable text", "1 binary"]),
        (_cp1252, [], ["windows.txt", "--encoding"]),
        (_text, ["--encoding", "klingon"], ["klingon"]),
    ],
    ids=["missing", "binary", "empty", "no-text-dir", "not-utf8", "bad-encoding"],
)
def test_corpus_info_errors_are_one_line(tmp_path: Path, make, extra, fragments) -> None:
    target = make(tmp_path)
    assert_user_error(run_cli("corpus", "info", target, "--json", *extra), *fragments)


def test_unknown_option_is_a_usage_error() -> None:
    proc = run_cli("corpus", "info", "markov", "--frobnicate")
    assert_user_error(proc, "frobnicate")


def test_an_internal_error_keeps_its_own_traceback(monkeypatch, cli_main) -> None:
    """A bug is not bad input: it propagates as itself (exit 1 with its traceback)."""
    import engine.data.corpus
    import engine.data.labels  # imported now, it keeps the real load_corpus

    def broken(*args, **kwargs):
        raise RuntimeError("boom: a bug, not bad input")

    monkeypatch.setattr(engine.data.corpus, "load_corpus", broken)
    with pytest.raises(RuntimeError, match="boom"):
        cli_main("corpus", "info", "markov", "--json")


def test_end_of_input_is_an_interruption(monkeypatch, cli_main) -> None:
    import engine.data.corpus
    import engine.data.labels  # imported now, it keeps the real load_corpus

    def eof(*args, **kwargs):
        raise EOFError

    monkeypatch.setattr(engine.data.corpus, "load_corpus", eof)
    proc = cli_main("corpus", "info", "markov", "--json")
    assert proc.returncode == 130
    assert proc.stderr.strip() == "charlm-tui: interrupted"
