"""The sample registry: shipped files, the verified download, the built-in corpus."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from engine.data import samples
from engine.data.corpus import load_corpus
from engine.data.markov import MarkovSource, generate_markov
from engine.errors import CorpusError
from tests.helpers import assert_one_line

MANIFEST = Path(samples.__file__).resolve().parents[2] / "sample_corpora" / "manifest.json"
WRITTEN_FOR_THE_PROJECT = {"verse", "code"}  # shipped texts (verse is the default corpus)

PAYLOAD = ("First Citizen:\nBefore we proceed any further, hear me speak.\n\n" * 40).encode()
PAYLOAD_SHA = hashlib.sha256(PAYLOAD).hexdigest()


def manifest() -> dict:
    return json.loads(MANIFEST.read_text(encoding="utf-8"))


# ----- the manifest ---------------------------------------------------------------------


def test_every_manifest_entry_resolves() -> None:
    entries = manifest()["corpora"]
    listed = samples.list_samples()
    assert [s.name for s in listed] == [e["name"] for e in entries]
    assert len({s.name for s in listed}) == len(listed), "names are unique"
    for entry in entries:
        sample = samples.find_sample(entry["name"])
        assert sample is not None, entry["name"]
        assert sample.description
        expected_kind = (
            "download" if "url" in entry else "builtin" if "builtin" in entry else "file"
        )
        assert sample.kind == expected_kind
        if sample.kind == "download":
            assert sample.url and sample.url.startswith("https://")
            assert sample.sha256 and len(sample.sha256) == 64
    assert samples.find_sample("no-such-sample") is None
    assert samples.find_sample(samples.default_sample_name()) is not None


def test_shipped_files_exist_and_are_text() -> None:
    for sample in samples.list_samples():
        if sample.kind != "file":
            continue
        (path,) = samples.sample_files(sample)
        assert path.is_file(), path
        assert path.stat().st_size > 10_000, path
        path.read_bytes().decode("utf-8")  # valid UTF-8
        assert sample.available_offline


@pytest.mark.parametrize("name", sorted(WRITTEN_FOR_THE_PROJECT))
def test_shipped_texts_load(name: str) -> None:
    sample = samples.find_sample(name)
    assert sample is not None
    (path,) = samples.sample_files(sample)
    assert path.is_file(), f"{path.name} is missing"
    corpus = load_corpus(name)
    assert len(corpus) > 10_000
    assert len(corpus.vocab) > 20


def test_markov_sample_matches_its_generator_and_entropy_rate() -> None:
    sample = samples.find_sample("markov")
    assert sample is not None and sample.entropy_rate_bits is not None
    (path,) = samples.sample_files(sample)
    text, rate = generate_markov()
    assert path.read_text(encoding="utf-8") == text
    assert rate == pytest.approx(sample.entropy_rate_bits, abs=1e-6)
    assert MarkovSource(seed=0).entropy_rate_bits() == pytest.approx(rate)


def test_python_stdlib_builtin_loads() -> None:
    corpus = load_corpus("python-stdlib")
    assert corpus.name == "python-stdlib"
    assert len(corpus.files) > 50
    assert all(path.suffix == ".py" for path in corpus.files)
    assert len(corpus) > 500_000
    assert {"d", "e", "f", ":", "(", ")", "\n", " "} <= set(corpus.vocab.chars)


# ----- the download, against a local server ---------------------------------------------


class _Server:
    def __init__(self) -> None:
        self.requests: list[str] = []
        self.body = PAYLOAD
        self.status = 200
        self.truncate = False
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                server.requests.append(self.path)
                if server.status != 200:
                    self.send_error(server.status)
                    return
                self.send_response(200)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", str(len(server.body)))
                self.end_headers()
                body = server.body[: len(server.body) // 2] if server.truncate else server.body
                self.wfile.write(body)
                if server.truncate:
                    self.wfile.flush()
                    self.close_connection = True

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/input.txt"


@pytest.fixture
def server() -> Iterator[_Server]:
    srv = _Server()
    thread = threading.Thread(target=srv.httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield srv
    srv.httpd.shutdown()
    srv.httpd.server_close()


@pytest.fixture
def shakespeare() -> samples.SampleCorpus:
    sample = samples.find_sample("tinyshakespeare")
    assert sample is not None and sample.kind == "download"
    return dataclasses.replace(sample, sha256=PAYLOAD_SHA, size=len(PAYLOAD))


def downloads(cache: Path) -> list[Path]:
    folder = cache / "downloads"
    return sorted(folder.iterdir()) if folder.exists() else []


def test_download_with_good_sha_lands_in_the_cache(
    server: _Server, shakespeare: samples.SampleCorpus, fresh_cache: Path
) -> None:
    assert not shakespeare.available_offline
    progress: list[tuple[int, int | None]] = []
    path = samples.download(
        shakespeare, url=server.url, progress=lambda d, t: progress.append((d, t))
    )
    assert path == fresh_cache / "downloads" / "tinyshakespeare.txt"
    assert path.read_bytes() == PAYLOAD
    assert downloads(fresh_cache) == [path], "no temporary files left"
    assert progress and progress[-1] == (len(PAYLOAD), len(PAYLOAD))
    assert shakespeare.available_offline
    # A second call uses the cached file and does not touch the network.
    assert samples.download(shakespeare, url=server.url) == path
    assert len(server.requests) == 1


def test_download_with_wrong_sha_keeps_nothing(
    server: _Server, shakespeare: samples.SampleCorpus, fresh_cache: Path
) -> None:
    wrong = dataclasses.replace(shakespeare, sha256="0" * 64)
    with pytest.raises(CorpusError) as info:
        samples.download(wrong, url=server.url)
    assert_one_line(info.value, "tinyshakespeare", "sha256", "nothing was kept")
    assert downloads(fresh_cache) == []
    assert not wrong.available_offline


def test_download_from_a_server_that_is_down(
    shakespeare: samples.SampleCorpus, fresh_cache: Path
) -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"http://127.0.0.1:{port}/input.txt"
    with pytest.raises(CorpusError) as info:
        samples.download(shakespeare, url=url, timeout=5)
    assert_one_line(info.value, "could not download", "tinyshakespeare", f":{port}")
    assert downloads(fresh_cache) == []


def test_download_offline_says_so_and_how_to_use_a_local_copy(
    shakespeare: samples.SampleCorpus, fresh_cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import urllib.error
    import urllib.request

    def offline(*args: object, **kwargs: object) -> None:
        raise urllib.error.URLError(socket.gaierror(-2, "Name or service not known"))

    monkeypatch.setattr(urllib.request, "urlopen", offline)
    with pytest.raises(CorpusError) as info:
        samples.download(shakespeare)
    assert_one_line(info.value, "offline", "open its path", "CHARLM_URL_TINYSHAKESPEARE=file://")
    assert "Errno" not in str(info.value)


def test_download_of_a_missing_file(
    server: _Server, shakespeare: samples.SampleCorpus, fresh_cache: Path
) -> None:
    server.status = 404
    with pytest.raises(CorpusError) as info:
        samples.download(shakespeare, url=server.url)
    assert_one_line(info.value, "could not download", "not found")
    assert downloads(fresh_cache) == []


def test_download_cut_short_by_the_server(
    server: _Server, shakespeare: samples.SampleCorpus, fresh_cache: Path
) -> None:
    server.truncate = True
    unverified = dataclasses.replace(shakespeare, sha256=None)  # the length still catches it
    with pytest.raises(CorpusError) as info:
        samples.download(unverified, url=server.url)
    assert_one_line(info.value, "tinyshakespeare", "cut short", "nothing was kept")
    assert downloads(fresh_cache) == []


def test_download_from_a_malformed_url(
    shakespeare: samples.SampleCorpus, fresh_cache: Path
) -> None:
    with pytest.raises(CorpusError) as info:
        samples.download(shakespeare, url="not a url at all")
    assert_one_line(info.value, "could not download")
    assert downloads(fresh_cache) == []


def test_load_corpus_downloads_through_the_env_url(
    server: _Server,
    shakespeare: samples.SampleCorpus,
    fresh_cache: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The whole path a user takes: `corpus info tinyshakespeare` on first use."""
    real = samples.list_samples()
    monkeypatch.setattr(
        samples,
        "list_samples",
        lambda: [shakespeare if s.name == "tinyshakespeare" else s for s in real],
    )
    monkeypatch.setenv("CHARLM_URL_TINYSHAKESPEARE", server.url)
    corpus = load_corpus("tinyshakespeare")
    assert corpus.name == "tinyshakespeare"
    assert corpus.vocab.decode(corpus.ids[:14].tolist()) == "First Citizen:"
    assert len(corpus) == len(PAYLOAD)
    assert server.requests == ["/input.txt"]
    load_corpus("tinyshakespeare")
    assert len(server.requests) == 1, "downloaded once"


def test_load_corpus_refuses_a_download_with_the_wrong_sha(
    server: _Server, fresh_cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The manifest's real sha256 does not match our small payload: nothing is kept."""
    monkeypatch.setenv("CHARLM_URL_TINYSHAKESPEARE", server.url)
    with pytest.raises(CorpusError) as info:
        load_corpus("tinyshakespeare")
    assert_one_line(info.value, "sha256")
    assert downloads(fresh_cache) == []
