"""Issue 19, downloads through the real entry point (`corpus info tinyshakespeare` on first
use, the URL moved by CHARLM_URL_TINYSHAKESPEARE): a size cap (the sample's known size), an
overall deadline (CHARLM_DOWNLOAD_DEADLINE_S, small here), and no temporary file left, not
even by a download that was killed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.helpers import REPO, assert_user_error, cli_env, run_cli

SIZE = 1_115_394  # the manifest's size of tinyshakespeare


class _Server:
    """Serves `mode`: "huge" (says 3 GB), "endless" (no length, never ends), "slow" (1 byte/s)."""

    def __init__(self) -> None:
        self.mode = "huge"
        self.stop = threading.Event()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self.send_response(200)
                if server.mode == "huge":
                    self.send_header("Content-Length", str(3 << 30))
                elif server.mode == "slow":
                    self.send_header("Content-Length", str(SIZE))
                self.end_headers()
                try:
                    while not server.stop.is_set():
                        self.wfile.write(b"a" if server.mode == "slow" else b"a" * 65536)
                        self.wfile.flush()
                        if server.mode == "slow":
                            server.stop.wait(1.0)
                except OSError:
                    pass
                self.close_connection = True

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/input.txt"


@pytest.fixture
def server() -> Iterator[_Server]:
    srv = _Server()
    thread = threading.Thread(target=srv.httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield srv
    srv.stop.set()
    srv.httpd.shutdown()
    srv.httpd.server_close()


def _env(cache: Path, url: str, deadline: float = 60) -> dict[str, str]:
    return cli_env(cache, CHARLM_URL_TINYSHAKESPEARE=url, CHARLM_DOWNLOAD_DEADLINE_S=str(deadline))


def _left(cache: Path) -> list[str]:
    folder = cache / "downloads"
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def _info(cache: Path, url: str, deadline: float = 60):
    return run_cli("corpus", "info", "tinyshakespeare", "--json", env=_env(cache, url, deadline))


def test_an_endless_file_url_stops_at_the_samples_size(tmp_path: Path) -> None:
    started = time.monotonic()
    proc = _info(tmp_path, "file:///dev/zero")
    assert_user_error(proc, "tinyshakespeare", "larger than", "nothing was kept")
    assert time.monotonic() - started < 30 and _left(tmp_path) == []


@pytest.mark.parametrize("mode", ["huge", "endless"])
def test_an_oversized_body_stops_at_the_samples_size(
    server: _Server, tmp_path: Path, mode: str
) -> None:
    server.mode = mode
    assert_user_error(_info(tmp_path, server.url), "larger than", "nothing was kept")
    assert _left(tmp_path) == []


def test_a_one_byte_a_second_server_meets_the_deadline(server: _Server, tmp_path: Path) -> None:
    server.mode = "slow"
    started = time.monotonic()
    proc = _info(tmp_path, server.url, deadline=3)
    assert_user_error(proc, "tinyshakespeare", "3 s", "CHARLM_DOWNLOAD_DEADLINE_S")
    assert time.monotonic() - started < 20 and _left(tmp_path) == []


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM])
def test_a_killed_download_leaves_no_temporary_file(
    server: _Server, tmp_path: Path, sig: signal.Signals
) -> None:
    server.mode = "slow"
    proc = subprocess.Popen(
        [sys.executable, "-m", "charlm_tui", "corpus", "info", "tinyshakespeare"],
        env=_env(tmp_path, server.url),
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 30
    while not _left(tmp_path) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _left(tmp_path), "the download never started"
    os.kill(proc.pid, sig)
    proc.wait(30)
    # The next download (here one that fails at once) clears what the dead one left.
    assert_user_error(_info(tmp_path, "file:///dev/zero"), "larger than")
    assert _left(tmp_path) == []
