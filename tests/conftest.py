"""Shared fixtures: an isolated cache, few threads, small corpora on disk."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# Tests run side by side on small machines: one intra-op thread each keeps them fair and
# deterministic. Set before torch is imported anywhere.
os.environ.setdefault("OMP_NUM_THREADS", "1")


@pytest.fixture(autouse=True, scope="session")
def _isolated_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Every test session gets its own encoding/download cache, never the user's."""
    cache = tmp_path_factory.mktemp("charlm-cache")
    os.environ["CHARLM_CACHE_DIR"] = str(cache)
    return cache


@pytest.fixture(autouse=True, scope="session")
def _torch_threads() -> None:
    import torch

    torch.set_num_threads(1)


@pytest.fixture
def markov_text() -> str:
    from engine.data.markov import generate_markov

    return generate_markov(20_000, seed=3)[0]


@pytest.fixture
def text_file(tmp_path: Path, markov_text: str) -> Path:
    path = tmp_path / "corpus.txt"
    path.write_text(markov_text, encoding="utf-8")
    return path


@pytest.fixture
def fresh_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A cache of this test's own (downloads, encodings), for tests that inspect it."""
    cache = tmp_path / "fresh-cache"
    cache.mkdir()
    monkeypatch.setenv("CHARLM_CACHE_DIR", str(cache))
    return cache


@pytest.fixture
def cli_main(capsys: pytest.CaptureFixture[str]):
    """Run the CLI's `main()` in this process: returns (returncode, stdout, stderr)."""
    from tests.helpers import run_main

    def call(*args: object):
        capsys.readouterr()
        proc = run_main(*args)  # type: ignore[arg-type]
        captured = capsys.readouterr()
        proc.stdout, proc.stderr = captured.out, captured.err
        return proc

    return call
