"""The layering in pyproject.toml's import-linter contracts holds (run as CI runs it)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_import_contracts_are_kept() -> None:
    lint = shutil.which("lint-imports", path=str(Path(sys.executable).parent))
    assert lint, "import-linter is a dev dependency: pip install -e '.[dev]'"
    proc = subprocess.run([lint], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    assert "0 broken" in proc.stdout


def test_contracts_cover_the_engine_layers() -> None:
    """A contract list that silently lost a layer would pass: check what it names."""
    import tomllib

    contracts = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
    kinds = {c["type"] for c in contracts["contracts"]}
    assert {"forbidden", "layers", "acyclic_siblings"} <= kinds
    layers = _layers(contracts, "engine")
    assert layers[:9] == [
        "worker",
        "inspect",
        "decoding",
        "training",
        "runs",
        "config",
        "models",
        "machine",
        "data",
    ]
    # every engine folder of modules is a package (without __init__.py it would import as
    # a namespace package, which import-linter cannot see) and named, so none slips past
    folders = {p for p in (ROOT / "engine").iterdir() if p.is_dir() and any(p.glob("*.py"))}
    assert all((p / "__init__.py").exists() for p in folders), sorted(map(str, folders))
    packages = {p.name for p in folders}
    assert packages <= set(layers), packages - set(layers)


def test_contracts_cover_the_ui_layers() -> None:
    """The UI's layers: entry points over panes and screens over widgets over state."""
    import tomllib

    contracts = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
    layers = [
        {name.strip() for name in layer.split("|")} for layer in _layers(contracts, "charlm_tui")
    ]
    assert layers[0] == {"cli"}
    assert "app" in layers[1]
    assert {"panes", "screens"} <= layers[2]
    assert layers[3] == {"widgets"}
    assert {"state", "messages"} <= layers[4]
    # every UI package is named somewhere, so a new folder cannot slip past the contract
    named = set().union(*layers)
    packages = {p.name for p in (ROOT / "charlm_tui").iterdir() if (p / "__init__.py").exists()}
    assert packages <= named, packages - named


def _layers(contracts: dict, container: str) -> list[str]:
    return next(
        c
        for c in contracts["contracts"]
        if c["type"] == "layers" and c.get("containers") == [container]
    )["layers"]
