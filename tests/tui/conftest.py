"""TUI test fixtures: a private data directory for every test (runs, recent corpora)."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(autouse=True)
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "charlm-data"
    monkeypatch.setenv("CHARLM_DATA_DIR", str(path))
    return path
