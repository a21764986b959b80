"""TUI test fixtures: a private data directory for every test (runs, recent corpora)."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(autouse=True)
def _cpu_engine(monkeypatch: pytest.MonkeyPatch) -> None:
    """The engine on the CPU on every host: snapshots show `engine ready (cpu)` on a GPU
    machine too, and thread- and process-mode engines both read this."""
    monkeypatch.setenv("CHARLM_DEVICE", "cpu")


@pytest.fixture(autouse=True)
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "charlm-data"
    monkeypatch.setenv("CHARLM_DATA_DIR", str(path))
    return path
